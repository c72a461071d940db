"""Dense embedders and the registry that names and loads them (the one place models load)."""
