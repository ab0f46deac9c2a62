"""Load generation, benchmark statistics, comparison and accuracy parity."""
