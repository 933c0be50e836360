"""Structured logging: one line per event, ``kv`` (logfmt-like) or ``json``, on stdout.

Built on the standard ``logging`` module so records from aiohttp, aiortc, websockets and
the rest come out in the same shape, their message becoming the ``event``. Everything
printed, the event text included, goes through :mod:`wallctl.redact` first.

A line never spans two lines: device names, client messages and tracebacks may carry
newlines (or Unicode line and paragraph separators), and a log reader must not be fooled
into seeing a forged second record.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import unicodedata
from collections.abc import Mapping
from types import TracebackType
from typing import Literal, TextIO, TypeAlias

from wallctl.redact import redact, redact_value

__all__ = [
    "LogFormat",
    "StructFormatter",
    "StructLogger",
    "get_logger",
    "parse_level",
    "setup_logging",
]

LogFormat: TypeAlias = Literal["kv", "json"]
ExcInfo: TypeAlias = (
    bool
    | BaseException
    | tuple[type[BaseException], BaseException, TracebackType | None]
    | tuple[None, None, None]
    | None
)

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_FIELDS_ATTR = "wallctl_fields"
_RESERVED = frozenset({"ts", "level", "logger", "event", "exc", "stack"})


def parse_level(level: str) -> int:
    """The ``logging`` level for a config name such as ``"info"``; ValueError if unknown."""
    try:
        return _LEVELS[level.strip().lower()]
    except KeyError:
        names = ", ".join(name for name in _LEVELS if name != "warn")
        raise ValueError(f"unknown log level {level!r}; expected one of {names}") from None


class StructLogger:
    """A named logger taking an event text and typed fields instead of a format string."""

    __slots__ = ("_context", "_logger")

    def __init__(self, logger: logging.Logger, context: Mapping[str, object] | None = None):
        self._logger = logger
        self._context: dict[str, object] = dict(context or {})

    @property
    def name(self) -> str:
        return self._logger.name

    def bind(self, **fields: object) -> StructLogger:
        """A logger that adds ``fields`` to every event (a device name, a session id)."""
        return StructLogger(self._logger, {**self._context, **fields})

    def debug(self, event: str, /, *, exc_info: ExcInfo = None, **fields: object) -> None:
        self._log(logging.DEBUG, event, exc_info, fields)

    def info(self, event: str, /, *, exc_info: ExcInfo = None, **fields: object) -> None:
        self._log(logging.INFO, event, exc_info, fields)

    def warning(self, event: str, /, *, exc_info: ExcInfo = None, **fields: object) -> None:
        self._log(logging.WARNING, event, exc_info, fields)

    def error(self, event: str, /, *, exc_info: ExcInfo = None, **fields: object) -> None:
        self._log(logging.ERROR, event, exc_info, fields)

    def exception(self, event: str, /, *, exc_info: ExcInfo = True, **fields: object) -> None:
        """Log at error level with the exception being handled appended as ``exc``."""
        self._log(logging.ERROR, event, exc_info, fields)

    def _log(self, level: int, event: str, exc_info: ExcInfo, fields: dict[str, object]) -> None:
        if not self._logger.isEnabledFor(level):
            return
        if self._context:
            fields = {**self._context, **fields}
        # stacklevel 3 skips _log and the level method, so the record names the caller.
        self._logger.log(
            level, event, exc_info=exc_info, extra={_FIELDS_ATTR: fields}, stacklevel=3
        )


def get_logger(name: str) -> StructLogger:
    return StructLogger(logging.getLogger(name))


def setup_logging(level: str = "info", fmt: LogFormat = "kv", stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (stdout by default) as one structured line.

    Called again at runtime (SIGHUP reload) it changes level, format and stream in place:
    the one handler it owns is reused, never stacked. Handlers others installed on the
    root logger (a test harness's capture) are left alone, except the plain console
    handler of a library's ``basicConfig()``.
    """
    numeric_level = parse_level(level)
    if fmt not in ("kv", "json"):
        raise ValueError(f"unknown log format {fmt!r}; expected 'kv' or 'json'")
    target = stream if stream is not None else sys.stdout
    formatter = StructFormatter(fmt, journal=fmt == "kv" and _is_journal_stream(target))

    root = logging.getLogger()
    for h in list(root.handlers):
        # A library that calls logging.basicConfig() at import (onvif-zeep-async does)
        # leaves a plain stderr handler that would print every line a second time.
        if type(h) is logging.StreamHandler and h.stream in (sys.stderr, sys.stdout):
            root.removeHandler(h)
    handler = next((h for h in root.handlers if isinstance(h, _Handler)), None)
    if handler is None:
        handler = _Handler(target)
        handler.setFormatter(formatter)
        root.addHandler(handler)
    else:
        if handler.stream is not target:
            if getattr(handler.stream, "closed", False):
                # setStream() would flush the old stream first and fail on a closed one.
                handler.stream = target
            else:
                handler.setStream(target)
        handler.setFormatter(formatter)
    root.setLevel(numeric_level)
    logging.captureWarnings(True)


class _Handler(logging.StreamHandler[TextIO]):
    """The handler :func:`setup_logging` owns, told apart from anyone else's by its type."""


class StructFormatter(logging.Formatter):
    """Formats any record, ours or a library's, as one redacted ``kv`` or ``json`` line."""

    def __init__(self, fmt: LogFormat = "kv", *, journal: bool = False) -> None:
        super().__init__()
        self.fmt = fmt
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        ts = f"{ts}.{int(record.msecs):03d}Z"
        level = record.levelname.lower()
        fields = getattr(record, _FIELDS_ATTR, None)
        if isinstance(fields, dict):
            event = str(record.msg)
        else:
            fields = {}
            event = _message(record)
        # exception() called outside an except block leaves (None, None, None).
        exc_info = record.exc_info
        exc = self.formatException(exc_info) if exc_info and exc_info[0] is not None else None
        stack = self.formatStack(record.stack_info) if record.stack_info else None

        if self.fmt == "json":
            return _json_line(ts, level, record.name, event, fields, exc, stack)
        line = _kv_line(ts, level, record.name, event, fields, exc, stack)
        if self.journal:
            return f"<{_syslog_priority(record.levelno)}>{line}"
        return line


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:
        # A third-party record whose arguments do not fit its format string must still
        # be seen rather than lost in logging's own error handler.
        return f"{record.msg!s} {record.args!r}"


def _field_name(name: str) -> str:
    return f"{name}_" if name in _RESERVED else name


def _kv_line(
    ts: str,
    level: str,
    logger: str,
    event: str,
    fields: dict[str, object],
    exc: str | None,
    stack: str | None,
) -> str:
    parts = [
        f"ts={ts}",
        f"level={_kv_quote(level)}",
        f"logger={_kv_quote(logger)}",
        f"event={_kv_quote(redact(event))}",
    ]
    for name, value in fields.items():
        text = _kv_text(redact_value(name, value))
        parts.append(f"{_kv_key(_field_name(name))}={_kv_quote(text)}")
    if exc is not None:
        parts.append(f"exc={_kv_quote(redact(exc))}")
    if stack is not None:
        parts.append(f"stack={_kv_quote(redact(stack))}")
    return " ".join(parts)


def _kv_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(_json_safe(value), ensure_ascii=False)
    return redact(_object_text(value))


def _object_text(value: object) -> str:
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return str(value)


def _kv_key(name: str) -> str:
    # Names come from keyword arguments, so they are identifiers; anything else is
    # flattened so a key can never contain the separators.
    if name.isidentifier():
        return name
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in name) or "_"


def _kv_quote(text: str) -> str:
    if (
        text
        and text.isprintable()
        and " " not in text
        and '"' not in text
        and "=" not in text
        and "\\" not in text
    ):
        return text
    return '"' + "".join(_kv_escape_char(c) for c in text) + '"'


_KV_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _kv_escape_char(char: str) -> str:
    escaped = _KV_ESCAPES.get(char)
    if escaped is not None:
        return escaped
    if char.isprintable() or unicodedata.category(char) == "Zs":
        return char
    # Control, format (bidi overrides), line/paragraph separators and lone surrogates:
    # shown as escapes so they can neither break the line nor disguise it.
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _json_line(
    ts: str,
    level: str,
    logger: str,
    event: str,
    fields: dict[str, object],
    exc: str | None,
    stack: str | None,
) -> str:
    obj: dict[str, object] = {"ts": ts, "level": level, "logger": logger, "event": redact(event)}
    for name, value in fields.items():
        obj[_field_name(name)] = _json_safe(redact_value(name, value))
    if exc is not None:
        obj["exc"] = redact(exc)
    if stack is not None:
        obj["stack"] = redact(stack)
    line = json.dumps(obj, ensure_ascii=False)
    # json leaves these raw inside strings, and str.splitlines() breaks lines on them.
    return line.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _json_safe(value: object) -> object:
    """``value`` as plain JSON types; anything else is shown through ``str`` and redacted."""
    if isinstance(value, str | bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return redact(_object_text(value))


def _syslog_priority(levelno: int) -> int:
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def _is_journal_stream(stream: TextIO) -> bool:
    """Whether ``stream`` is the journald connection systemd announced in $JOURNAL_STREAM.

    systemd.exec(5) asks to compare device and inode, not merely test the variable: it is
    inherited by children whose output may go elsewhere.
    """
    announced = os.environ.get("JOURNAL_STREAM")
    if not announced:
        return False
    device, _, inode = announced.partition(":")
    try:
        st = os.fstat(stream.fileno())
        return st.st_dev == int(device) and st.st_ino == int(inode)
    except (OSError, ValueError, AttributeError):
        # io.UnsupportedOperation (a StringIO) is both an OSError and a ValueError.
        return False
