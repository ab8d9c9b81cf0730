"""Stand-in for sd-scripts' networks/lora.py: only its module path matters (--network_module)."""
