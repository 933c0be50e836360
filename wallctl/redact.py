"""Secret redaction for every piece of text that leaves the daemon.

Logs, API responses, events, metrics labels and the systemd status line all pass through
here, so a camera password in an RTSP URL or a token in a query string is never shown.

In a well-formed URL the userinfo is everything between ``scheme://`` and the last ``@``
of the authority, which ends at the first ``/``, ``?`` or ``#`` (as ``urlsplit`` and
FFmpeg read it). Operators also paste passwords with those characters unencoded
(``admin:abc#1@cam``), so the search for the ``@`` starts past them: the password runs
from the first ``:`` to the last ``@`` before the first delimiter that follows an ``@``,
unless what precedes the ``:`` cannot be a user name (it holds a delimiter) or what
follows it is a port and a path (``host:80/users/@me``). A password made of digits and
then an unencoded delimiter (``user:12/ab@host``) reads exactly like that path and is
not recognised, nor is one holding ``://`` (taken as the start of another URL); a host
and a non-numeric "port" (``localhost:port``) is masked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["MASK", "is_secret_key", "redact", "redact_value"]

MASK = "***"

_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
# Characters that end an authority. Besides the URL delimiters, quotes and brackets end it
# so that URLs packed together in JSON or Python reprs are each seen on their own.
_AUTHORITY_END = re.compile(r"[\s/?#\\\"'<>`{}|^]")
_WHITESPACE = re.compile(r"\s")
_PORT = re.compile(r"[0-9]*")
# ``host:80/users/@me`` or ``"http://h:80","x@y"``: an '@' after a port is not userinfo's.
_PORT_THEN_DELIMITER = re.compile(r"[0-9]*[/?#\"']")

# Query-string and free-text ``name=value`` pairs. The name must not be glued to a word
# before it, so ``monkey=1`` is not mistaken for ``key=1``.
_PAIR = re.compile(r"(?<![\w.\-%])([A-Za-z_][\w.\-]*)=(\"[^\"\n]*\"?|[^&#\s\"]*)")
_QUERY_SECRET_NAMES = frozenset(
    {"password", "passwd", "pwd", "token", "access_token", "secret", "key", "auth"}
)

# ``Authorization: Bearer x`` in dumped HTTP headers, plain or inside a dict repr.
# Only the ``:`` form: ``authorization=x`` is a name-value pair and is masked as one.
_AUTH_HEADER = re.compile(
    r"(?i)\b(?:proxy-)?authorization['\"]?\s*:\s*(['\"]?)"
    r"(?:(?:basic|bearer|digest|token|negotiate|ntlm)\s+)?"
)
_LINE_END = re.compile(r"[\r\n]")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*")

_SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "authorization",
    "api_key",
    "apikey",
    "private_key",
    "psk",
)
_SECRET_KEY_NAMES = frozenset({"pwd", "pass"})

# Deeper than any real payload; it stops a self-referencing dict from recursing forever.
_MAX_DEPTH = 64


def is_secret_key(key: str) -> bool:
    """Whether a field, config key or header of this name holds a secret."""
    name = key.lower().replace("-", "_").replace(" ", "_").replace(".", "_")
    if name in _SECRET_KEY_NAMES:
        return True
    return any(part in name for part in _SECRET_KEY_PARTS)


def redact(text: str) -> str:
    """Return ``text`` with URL passwords, secret query values and credentials masked."""
    if "://" in text:
        text = _redact_urls(text)
    if "=" in text:
        text = _PAIR.sub(_mask_pair, text)
    if ":" in text:
        text = _redact_auth_headers(text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    return text


def redact_value(key: str, value: object) -> object:
    """Mask ``value`` if ``key`` names a secret; redact strings inside it otherwise."""
    return _redact_value(key, value, 0)


def _redact_value(key: str, value: object, depth: int) -> object:
    if is_secret_key(key) or depth > _MAX_DEPTH:
        return MASK
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(key, item, depth + 1) for item in value]
    if isinstance(value, tuple):
        return tuple(_redact_value(key, item, depth + 1) for item in value)
    return value


def _redact_urls(text: str) -> str:
    starts = _url_starts(text)
    edits: list[tuple[int, int]] = []
    for index, (_, authority) in enumerate(starts):
        # Nothing from one URL may be masked as part of another.
        limit = starts[index + 1][0] if index + 1 < len(starts) else len(text)
        word_end = _WHITESPACE.search(text, authority, limit)
        edit = _password_span(text, authority, word_end.start() if word_end else limit)
        if edit is not None and (not edits or edit[0] >= edits[-1][1]):
            edits.append(edit)
    if not edits:
        return text
    parts: list[str] = []
    last = 0
    for begin, stop in edits:
        parts.append(text[last:begin])
        parts.append(MASK)
        last = stop
    parts.append(text[last:])
    return "".join(parts)


def _url_starts(text: str) -> list[tuple[int, int]]:
    """``(scheme start, authority start)`` of every ``://`` in ``text``.

    Found by searching for ``://`` and stepping back over the scheme, not by a regex for
    the scheme, which takes quadratic time on a long word that is not followed by one.
    A ``://`` with no scheme before it is taken as a URL all the same.
    """
    starts: list[tuple[int, int]] = []
    found = text.find("://")
    while found >= 0:
        begin = found
        while begin > 0 and text[begin - 1] in _SCHEME_CHARS:
            begin -= 1
        starts.append((begin, found + 3))
        found = text.find("://", found + 3)
    return starts


def _password_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Offsets of the password in the URL whose authority starts at ``start``.

    ``end`` is where the URL's word ends (whitespace, the next URL, or the text's end).
    """
    first_at = text.find("@", start, end)
    if first_at < 0:
        authority_end = _AUTHORITY_END.search(text, start, end)
        stop = authority_end.start() if authority_end else end
        colon = text.find(":", start, stop)
        if colon < 0 or text.startswith("[", start) or _PORT.fullmatch(text, colon + 1, stop):
            return None
        # ``user:secret`` with no host: a truncated URL, or a host with a junk port.
        return colon + 1, stop
    delimiter = _AUTHORITY_END.search(text, first_at, end)
    last_at = text.rfind("@", start, delimiter.start() if delimiter else end)
    colon = text.find(":", start, last_at)
    if colon < 0:
        # ``scheme://user@host``: a user name alone is not a secret.
        return None
    if text.startswith("[", start) or _AUTHORITY_END.search(text, start, colon):
        # The '@' and ':' are in a path or query, or after an IPv6 host.
        return None
    if _PORT_THEN_DELIMITER.match(text, colon + 1, last_at):
        return None
    return colon + 1, last_at


def _mask_pair(match: re.Match[str]) -> str:
    name = match.group(1)
    if name.lower() in _QUERY_SECRET_NAMES or is_secret_key(name):
        return f"{name}={MASK}"
    return match.group(0)


def _redact_auth_headers(text: str) -> str:
    parts: list[str] = []
    last = 0
    for match in _AUTH_HEADER.finditer(text):
        value_start = match.end()
        if value_start < last:
            continue
        quote = match.group(1)
        if quote:
            close = text.find(quote, value_start)
            value_end = close if close >= 0 else len(text)
        else:
            newline = _LINE_END.search(text, value_start)
            value_end = newline.start() if newline else len(text)
        if value_end == value_start:
            continue
        parts.append(text[last:value_start])
        parts.append(MASK)
        last = value_end
    parts.append(text[last:])
    return "".join(parts)
