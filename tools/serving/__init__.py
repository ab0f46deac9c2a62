"""Serving control."""
