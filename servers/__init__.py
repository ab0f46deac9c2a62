"""arbor.servers"""
