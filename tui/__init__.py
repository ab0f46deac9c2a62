"""arbor.tui"""
