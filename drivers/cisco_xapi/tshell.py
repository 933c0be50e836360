"""The xAPI terminal protocol (tshell over SSH, telnet or RS-232), sans I/O.

Commands are single lines: ``xCommand Dial Number: "sip:a@b" CallRate: 768``,
``xStatus Call``, ``xFeedback register /Status/Call``. The codec answers with records,
each line tagged by kind -- ``*r`` command results, ``*s`` status, ``*e`` events, ``*c``
configuration -- a ``** end`` line closing each block, and ``OK`` or ``ERROR`` closing
the reply to a command. A registered feedback block arrives unprompted, ends with
``** end`` and has no ``OK``. Result and status lines look like:

    *r DialResult (status=OK):
    *r DialResult CallId: 3
    *s Call 3 Status: Connected
    *s Call 3 (ghost=True):
    *e CallDisconnect CauseType: "RemoteDisconnect"

Older software indents result members under the header instead of repeating the tag;
both are read. Quoted values are strings, bare digits integers, anything else a literal
(``Connected``, ``On``). Every record is turned into flat ``(path, value)`` pairs rooted
like the JSON form (``("Status", "Call", 3, "Status")``) so the driver keeps one state
model whichever transport it uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from drivers.cisco_xapi.values import check_node, check_text

Scalar = str | int
Path = tuple[str | int, ...]
Pair = tuple[Path, Scalar]

# A terminal session never needs lines this long; a peer that sends one is broken.
MAX_LINE = 16384
ROOTS = {"s": "Status", "e": "Event", "c": "Configuration"}

_HEADER = re.compile(r"^\*r (?P<name>[A-Za-z0-9]+) \(status=(?P<status>[A-Za-z]+)\):\s*$")
_GHOST = re.compile(r"^\*s (?P<path>.+?) \(ghost=True\):\s*$")


class Literal_(str):
    """A bare token value (``Connected``, ``On``): written back without quotes."""

    __slots__ = ()


# --- commands (client -> codec) --------------------------------------------------------


def _value(value: Scalar, field_name: str) -> str:
    if isinstance(value, bool):
        raise TypeError("xAPI has no booleans: use a literal such as On/Off")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Literal_):
        return check_node(value, field_name)
    return '"' + check_text(value, field_name) + '"'


def format_command(path: Sequence[str], params: Iterable[tuple[str, Scalar]] = ()) -> bytes:
    """``xCommand <path> <Key>: <value> ...`` as one line; values checked first."""
    words = ["xCommand", *(check_node(p, "command") for p in path)]
    for key, value in params:
        words.append(f"{check_node(key, 'parameter')}: {_value(value, key)}")
    return (" ".join(words) + "\n").encode()


def format_status(path: Sequence[str]) -> bytes:
    return (" ".join(["xStatus", *(check_node(p, "path") for p in path)]) + "\n").encode()


def format_feedback_register(path: Sequence[str]) -> bytes:
    return ("xFeedback register /" + "/".join(check_node(p, "path") for p in path) + "\n").encode()


def format_configuration(path: Sequence[str], value: Scalar) -> bytes:
    words = ["xConfiguration", *(check_node(p, "path") for p in path)]
    return (" ".join(words) + f": {_value(value, 'value')}\n").encode()


# --- replies (codec -> client) ---------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One ``** end``-terminated block: its kind, result header and pairs."""

    kind: Literal["r", "s", "e", "c"]
    pairs: tuple[Pair, ...]
    # For ``*r`` blocks: the result's name (``DialResult``) and status (``OK``, ``Error``).
    name: str = ""
    status: str = ""


@dataclass(frozen=True)
class Done:
    """``OK`` or ``ERROR``: the reply to the current command is complete."""

    ok: bool


@dataclass(frozen=True)
class Text:
    """A line that is not part of the record grammar (banner, ``Command not recognized.``)."""

    line: str


@dataclass(frozen=True)
class Prompt:
    """The telnet login asks for ``login`` or ``password`` (no line end follows)."""

    what: Literal["login", "password"]


@dataclass(frozen=True)
class Garbage:
    """An over-long line was dropped; the stream resynchronised at the next line end."""

    size: int


TshellEvent = Record | Done | Text | Prompt | Garbage


def parse_value(text: str) -> Scalar:
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    if re.fullmatch(r"-?\d{1,18}", text):
        return int(text)
    return Literal_(text)


def parse_path(words: Iterable[str]) -> Path:
    return tuple(int(w) if w.isdigit() else w for w in words)


@dataclass
class _Block:
    kind: Literal["r", "s", "e", "c"]
    pairs: list[Pair] = field(default_factory=list)
    name: str = ""
    status: str = ""


class TshellParser:
    """Bytes in, :data:`TshellEvent` out. Keeps partial lines between feeds."""

    def __init__(self) -> None:
        self._buf = b""
        self._block: _Block | None = None
        self._skipping = False

    def feed(self, data: bytes) -> list[TshellEvent]:
        out: list[TshellEvent] = []
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                break
            raw, self._buf = self._buf[:nl], self._buf[nl + 1 :]
            if self._skipping:
                self._skipping = False
                continue
            self._line(raw.rstrip(b"\r").decode("utf-8", "replace"), out)
        if len(self._buf) > MAX_LINE:
            out.append(Garbage(len(self._buf)))
            self._buf = b""
            self._skipping = True
        elif self._buf:
            tail = self._buf.decode("utf-8", "replace").strip().lower()
            if tail.endswith("login:"):
                out.append(Prompt("login"))
                self._buf = b""
            elif tail.endswith("password:"):
                out.append(Prompt("password"))
                self._buf = b""
        return out

    def _close_block(self, out: list[TshellEvent]) -> None:
        b = self._block
        if b is not None:
            out.append(Record(b.kind, tuple(b.pairs), b.name, b.status))
        self._block = None

    def _start(self, kind: Literal["r", "s", "e", "c"], out: list[TshellEvent]) -> _Block:
        if self._block is not None and self._block.kind != kind:
            self._close_block(out)
        if self._block is None:
            self._block = _Block(kind)
        return self._block

    def _line(self, line: str, out: list[TshellEvent]) -> None:
        stripped = line.strip()
        if not stripped:
            return
        if stripped in ("** end", "**end", "*r/end") or stripped.startswith("** end "):
            self._close_block(out)
            return
        if stripped in ("OK", "ERROR"):
            self._close_block(out)
            out.append(Done(stripped == "OK"))
            return
        m = _HEADER.match(stripped)
        if m:
            if self._block is not None:
                self._close_block(out)
            self._block = _Block("r", name=m["name"], status=m["status"])
            return
        g = _GHOST.match(stripped)
        if g:
            block = self._start("s", out)
            block.pairs.append(((*("Status",), *parse_path(g["path"].split()), "ghost"), "True"))
            return
        if (
            len(stripped) > 3
            and stripped[0] == "*"
            and stripped[1] in "rsec"
            and stripped[2] == " "
        ):
            kind: Literal["r", "s", "e", "c"] = stripped[1]  # type: ignore[assignment]
            body = stripped[3:]
            key, sep, value = body.partition(":")
            if not sep:
                out.append(Text(line))
                return
            words = key.split()
            if kind == "c" and words and words[0] == "xConfiguration":
                words = words[1:]
            block = self._start(kind, out)
            if kind == "r":
                # "*r DialResult CallId: 3": the first word repeats the result's name.
                if words and words[0] == block.name:
                    words = words[1:]
                elif not block.name and words:
                    block.name, words = words[0], words[1:]
                path = parse_path(words)
            else:
                path = (ROOTS[kind], *parse_path(words))
            block.pairs.append((path, parse_value(value)))
            return
        if line[:1].isspace() and self._block is not None and self._block.kind == "r":
            # Older software: result members indented under the header.
            key, sep, value = stripped.partition(":")
            if sep:
                self._block.pairs.append((parse_path(key.split()), parse_value(value)))
                return
        out.append(Text(line))


# --- writing records (the simulator's side) ----------------------------------------------


def _out_value(value: Scalar) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, Literal_):
        return str(value)
    return '"' + str(value) + '"'


def _path_words(path: Path) -> str:
    return " ".join(str(p) for p in path)


def write_result(name: str, ok: bool, pairs: Iterable[tuple[Path, Scalar]]) -> bytes:
    lines = [f"*r {name} (status={'OK' if ok else 'Error'}):"]
    lines += [f"*r {name} {_path_words(p)}: {_out_value(v)}" for p, v in pairs]
    lines += ["** end", "", "OK" if ok else "ERROR"]
    return ("\r\n".join(lines) + "\r\n").encode()


def write_records(kind: Literal["s", "e", "c"], pairs: Iterable[tuple[Path, Scalar]]) -> bytes:
    """Status/event/configuration lines (paths without their root) and ``** end``."""
    lines = []
    for path, value in pairs:
        if path and path[-1] == "ghost":
            lines.append(f"*{kind} {_path_words(path[:-1])} (ghost=True):")
        elif kind == "c":
            lines.append(f"*c xConfiguration {_path_words(path)}: {_out_value(value)}")
        else:
            lines.append(f"*{kind} {_path_words(path)}: {_out_value(value)}")
    lines.append("** end")
    return ("\r\n".join(lines) + "\r\n").encode()
