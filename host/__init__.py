"""arbor.host"""
