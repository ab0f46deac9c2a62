"""Errors of the host; the CLI turns them into a message and an exit code, the TUI into a notice."""


class HostError(Exception):
    """A campaign step failed in a way the user should read."""


class SpecError(HostError):
    """A campaign file or an override is invalid; nothing was created."""


class ProposalError(HostError, ValueError):
    """A proposed action (a model's, the operator's) is refused; the message says why and goes back to the proposer."""


class SteeringError(HostError):
    """A steering command is refused; the message is the command's recorded answer."""


class ServiceError(HostError):
    """An MCP tool failed, or answered with something the host cannot use."""


class StoreError(HostError):
    """A campaign store cannot be opened, or holds what this Arbor cannot read."""


def first_cause(exc: BaseException) -> BaseException:
    """The first non-group exception inside nested exception groups (task groups wrap what failed)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
