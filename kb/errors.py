"""Errors of the knowledge base."""

from arbor.tools.errors import ArborError, InputError


class KBError(ArborError):
    """The knowledge base cannot be opened or used as asked."""


class KBInputError(KBError, InputError):
    """A record or query is malformed; nothing was written."""
