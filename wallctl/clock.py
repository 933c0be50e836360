"""Whether the system clock is synchronised (chrony, ntpd, systemd-timesyncd).

Recordings and the audit log are evidence, so /healthz says whether their timestamps
come from a synchronised clock. The kernel knows: adjtimex(2) returns TIME_ERROR while the
clock is unsynchronised, whichever daemon disciplines it.
"""

from __future__ import annotations

import ctypes
import ctypes.util

TIME_ERROR = 5
_libc: ctypes.CDLL | None = None


def clock_synchronized() -> bool | None:
    """True or False from the kernel; None where the call is not available."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        # struct timex is about 208 bytes on 64-bit Linux; modes = 0 only reads it.
        buf = ctypes.create_string_buffer(512)
        state = _libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return bool(state != TIME_ERROR)
