"""Chat models: the OpenAI-compatible client, a local GGUF server, and which model answers."""
