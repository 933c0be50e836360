"""What a driver call can end in; the host maps each class to one stable API error.

``DeviceOffline`` and ``DeviceTimeout`` are worth retrying later; ``DeviceRejected`` carries
the device's own error code (``E13``, ``ERR003``, ``NAK``) so an operator sees exactly what
the device said; ``InvalidParams`` names the parameter at fault before anything is sent.
"""

from __future__ import annotations


class DriverError(Exception):
    """Base of every driver failure."""

    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DeviceOffline(DriverError):
    """No working link to the device (never connected, lost, or being re-established)."""

    retryable = True


class DeviceTimeout(DriverError):
    """The device did not answer a request in time (the link may be dropped after this)."""

    retryable = True


class QueueFull(DriverError):
    """Too many requests already wait for this device; the caller should slow down."""

    retryable = True


class DeviceRejected(DriverError):
    """The device answered with an error of its own."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.reason = message


class InvalidParams(DriverError):
    """An action's parameters failed validation; ``field`` is the path (e.g. ``outputs[2]``)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownAction(DriverError):
    """The driver declares no action of that name."""


class AuthFailed(DriverError):
    """The device refused the configured password (or asked for one none was configured)."""


class BadConfig(DriverError):
    """The configuration cannot work with this device (e.g. a size the device denies)."""
