"""The search-efficiency comparison: Arbor against Optuna (TPE and GP), random, grid and a greedy single agent."""
