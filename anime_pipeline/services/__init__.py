"""Clients for the external services the pipeline drives (ComfyUI, ...)."""
