"""The production steps as plain Python: each takes config refs and backends, writes files, returns results."""
