"""Notes → a new index generation: the plan, the builder, and `rag index --watch`."""
