"""The knowledge base: outcomes of every evaluated action, distilled entries, priors and retrieval."""
