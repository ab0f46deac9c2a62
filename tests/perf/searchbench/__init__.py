"""The search-efficiency comparison: Arbor against Optuna, random, grid and a greedy single agent."""
