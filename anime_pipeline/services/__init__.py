"""Clients for the external services: ComfyUI, Ollama, Echo Brain."""
