"""Errors of the host; the CLI turns them into a message and an exit code."""


class HostError(Exception):
    """A campaign step failed in a way the user should read."""


def first_cause(exc: BaseException) -> BaseException:
    """The first non-group exception inside nested exception groups (task groups wrap what failed)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
