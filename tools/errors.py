"""The errors the tools raise on purpose; the edges translate them (ToolError, exit codes)."""

from __future__ import annotations


class ArborError(Exception):
    """Base for every deliberate error of the tools."""


class InputError(ArborError, ValueError):
    """Bad input: nothing was started or changed."""


class ProvisionError(ArborError):
    """The default target (llama-server build or model) could not be made ready."""


class ProcessError(ArborError):
    """A child process could not be started or stopped."""


class LaunchError(ArborError):
    """An inference server failed to become ready; `failure` says how."""

    def __init__(self, message: str, failure: object | None = None) -> None:
        super().__init__(message)
        self.failure = failure


class BenchError(ArborError):
    """A benchmark could not run or its results cannot be used."""


class FingerprintMismatch(BenchError):
    """Two results measure different workloads and must not be compared."""
