"""The index store in PostgreSQL + pgvector, and a throw-away local server for tests and bench."""
