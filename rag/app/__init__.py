"""The front ends, thin adapters over rag.service: the `rag` CLI, the Gradio app, the MCP server."""
