"""The error types every layer raises. Only ucloud_api/errors.py maps them to HTTP status codes;
storage and driver code never speaks HTTP."""

import click


class UcloudError(Exception):
    """Base class; the message is safe to show to the caller. `reason`, when a class sets it, is
    a stable word for programs (the API answers it next to the message, which may be reworded)."""

    reason: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(UcloudError):
    """The request or record is malformed (bad field, bad unit, wrong type)."""


class Unauthenticated(UcloudError):
    """Missing, unknown or wrong credentials."""


class TokenReused(Unauthenticated):
    """A TOTP code that was accepted once already (RFC 6238 5.2): the client takes the next one."""

    reason = "token_reused"


class Forbidden(UcloudError):
    """The caller is known but may not do this."""


class NotFound(UcloudError):
    """The named thing does not exist (or is not visible to the caller)."""


class Conflict(UcloudError):
    """The request clashes with the current state (already exists, in use, race lost)."""


class TooManyAttempts(UcloudError):
    """Too many failed logins of an identity or an address: refused for `retry_after` s."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(UcloudError):
    """A dependency (etcd, the OTP server) cannot be reached right now; retrying may help."""


# Both bases keep the same `message`; click's stubs declare theirs Final, which the type checker
# reads as a clash.
class ConfigError(UcloudError, click.UsageError):  # type: ignore[misc]
    """The configuration names something that does not exist (an unknown driver, say). Raised
    inside a daemon's click command, it ends the daemon with the message and exit status 2."""
