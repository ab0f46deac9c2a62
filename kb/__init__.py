"""arbor.kb"""
