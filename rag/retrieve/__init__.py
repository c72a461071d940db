"""A question → a prepared Query → each retriever's ranking → fused hits."""
