"""Errors of the host; the CLI turns them into a message and an exit code."""


class HostError(Exception):
    """A campaign step failed in a way the user should read."""
