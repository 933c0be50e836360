"""What a client value must look like before it may reach a codec's command line.

tshell quotes string values with ``"`` and ends a command at the line end; a value with a
quote, a line break or a control character could close the string and append a second
command (``x" \\nxCommand SystemUnit FactoryReset``). Such values are refused here, before
any transport sees them, with the parameter named. The same rules apply to the JSON form
so a dial string means the same thing whichever way it is sent.
"""

from __future__ import annotations

import re

from drivers.errors import InvalidParams

# SIP URIs (sip:user@host;transport=tls), H.323 IDs and E.164 numbers (+8657212345678),
# IP##extension, DTMF-style suffixes (*, #) and the usual URI punctuation. Nothing else:
# no quotes, no spaces, no backslashes, no control characters. ``\Z``, not ``$``: ``$``
# also matches before a trailing line break, which would end the tshell command early.
DIAL_STRING = re.compile(r"^[A-Za-z0-9@.:_+\-*#/=;!~%]{1,255}\Z")
# Command and status path elements: ``Dial``, ``Audio``, ``Microphones``.
NODE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}\Z")
MAX_TEXT = 255


def check_dial_string(value: object, field: str = "number") -> str:
    if not isinstance(value, str):
        raise InvalidParams(f"{field} must be a string", field)
    if not value:
        raise InvalidParams(f"{field} must not be empty", field)
    if len(value) > 255:
        raise InvalidParams(f"{field} must be at most 255 characters", field)
    if not DIAL_STRING.match(value):
        bad = next((c for c in value if not DIAL_STRING.match(c)), "?")
        raise InvalidParams(
            f"{field} may hold only letters, digits and @ . : _ + - * # / = ; ! ~ % "
            f"(found {bad!r})",
            field,
        )
    return value


def check_text(value: object, field: str, max_len: int = MAX_TEXT) -> str:
    """A free-text value (a display name, a label): printable, no quote, no backslash."""
    if not isinstance(value, str):
        raise InvalidParams(f"{field} must be a string", field)
    if len(value) > max_len:
        raise InvalidParams(f"{field} must be at most {max_len} characters", field)
    for c in value:
        if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029":
            raise InvalidParams(f"{field} must not contain control characters", field)
        if c in '"\\':
            raise InvalidParams(f"{field} must not contain {c!r}", field)
    return value


def check_node(value: object, field: str = "path") -> str:
    if not isinstance(value, str) or not NODE.match(value):
        raise InvalidParams(f"{field}: {value!r} is not an xAPI path element", field)
    return value


def check_int(value: object, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParams(f"{field} must be an integer", field)
    if not lo <= value <= hi:
        raise InvalidParams(f"{field} must be within {lo}..{hi}", field)
    return value
