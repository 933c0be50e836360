"""The errors every face of wallctl (API, MQTT, CLI) reports, with stable codes.

A client acts on ``code``; ``message`` is for a person; ``field`` names the part of the
request at fault (a dotted path such as ``params.windows[2].x``) when there is one.
"""

from __future__ import annotations

from typing import ClassVar


class WallctlError(Exception):
    """Base of every error a request can end in."""

    code: ClassVar[str] = "internal"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "retryable": self.retryable,
        }


class MalformedMessage(WallctlError):
    code = "malformed_message"


class UnknownMethod(WallctlError):
    code = "unknown_method"


class InvalidField(WallctlError):
    code = "invalid_field"


class NotPermitted(WallctlError):
    code = "not_permitted"


class Conflict(WallctlError):
    code = "conflict"
    retryable = True


class NotFound(WallctlError):
    code = "not_found"


class DeviceNotReady(WallctlError):
    code = "device_not_ready"
    retryable = True


class DeviceError(WallctlError):
    code = "device_error"


class Unavailable(WallctlError):
    """The daemon cannot serve the request now (shutting down, store failed)."""

    code = "unavailable"
    retryable = True


class InternalError(WallctlError):
    code = "internal"


class RateLimited(WallctlError):
    """The connection sent more requests than its rate allows; retry after a pause."""

    code = "rate_limited"
    retryable = True


class Aborted(WallctlError):
    """Not run: an earlier request of the same batch failed (or an atomic batch failed)."""

    code = "aborted"
