"""Hits → a cited answer: the coverage gate, an LLM or the extractive answerer, checked citations."""
