"""Profilers for every vendor, one schema: per kernel or CPU symbol, time, share and category."""
