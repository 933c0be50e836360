"""A simulated Cisco collaboration endpoint: the xAPI over WebSocket and tshell.

One device model (:class:`CiscoModel`: status tree, calls with a real life cycle through
:class:`~drivers.cisco_xapi.farend.FarEnd`, presets, presentation) served three ways:

- ``/ws`` on an HTTP port: JSON-RPC 2.0, authenticated by an HTTP Basic header or an
  ``auth-<base64url>`` subprotocol, as RoomOS does;
- tshell on a TCP port, behind a telnet-style ``login:``/``Password:`` prompt;
- tshell on a pseudo-terminal, as on the codec's RS-232 port (no login by default).

The command-line reader here is the simulator's own (it tokenises what an operator
types), not the driver's reply parser, so a bug in one cannot hide behind the other.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from drivers.cisco_xapi import jsonrpc as rpc
from drivers.cisco_xapi.model import PRODUCT, SOFTWARE, CiscoModel, CommandFailed
from drivers.cisco_xapi.tshell import Literal_, Path, Scalar, write_records, write_result
from drivers.simulator import DeviceSimulator, SimServer, SimSession, serve_pty, serve_tcp

# The release date line of the SSH banner.
RELEASE_DATE = "2024-06-12"

__all__ = ["CiscoModel", "CiscoSimulator", "CiscoTshellSimulator", "CommandFailed"]

# --- tshell ------------------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(?:"(?P<q>[^"]*)"|(?P<w>[^\s"]+))')


def tokenize(line: str) -> list[str | tuple[str]]:
    """Words of a command line; a quoted string comes back as a 1-tuple."""
    out: list[str | tuple[str]] = []
    pos = 0
    line = line.rstrip()
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        if not m or m.end() == pos:
            raise ValueError("unterminated quote")
        out.append((m["q"],) if m["q"] is not None else m["w"])
        pos = m.end()
    return out


class TshellSession:
    """One tshell conversation: bytes in from the line, bytes out through ``write``."""

    def __init__(
        self,
        model: CiscoModel,
        write: Callable[[bytes], None],
        *,
        login: bool,
        welcome: bool = False,
        echo: bool = False,
    ) -> None:
        self.model = model
        self.write = write
        self._buf = b""
        self._stage = "login" if login else "ready"
        self._user = ""
        self._failures = 0
        self._feedback: list[tuple[str, ...]] = []
        # What the operator types comes back (an interactive SSH session, until `echo off`).
        self.echo = echo
        self.closed = False
        self._unsub = [model.on_status(self._status), model.on_event(self._event_cb)]
        if login:
            write(b"\r\nlogin: ")
        elif welcome:
            # SSH authenticated already: the codec greets and is ready at once.
            write(self.welcome())
        else:
            write(b"\r\n")

    @staticmethod
    def welcome() -> bytes:
        banner = (
            f"Welcome to\r\n{PRODUCT} Release {SOFTWARE}\r\nSW Release Date: {RELEASE_DATE}\r\n"
        )
        return (banner + "*r Login successful\r\n\r\nOK\r\n\r\n").encode()

    def close(self) -> None:
        for u in self._unsub:
            try:
                u()
            except ValueError:
                pass
        self._unsub = []
        self.closed = True

    def _registered(self, root: str, path: Path) -> bool:
        full = (root, *(str(p) for p in path))
        return any(
            tuple(x.lower() for x in full[: len(f)]) == tuple(x.lower() for x in f)
            for f in self._feedback
        )

    def _status(self, changes: list[tuple[Path, Scalar]]) -> None:
        if self._stage != "ready":
            return
        pairs = [(p, v) for p, v in changes if self._registered("Status", p)]
        if pairs:
            self.write(write_records("s", pairs))

    def _event_cb(self, name: str, pairs: list[tuple[Path, Scalar]]) -> None:
        if self._stage == "ready" and self._registered("Event", (name,)):
            self.write(write_records("e", [((name, *p), v) for p, v in pairs]))

    def feed(self, data: bytes) -> None:
        if self.echo and self._stage == "ready":
            self.write(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        self._buf += data
        if len(self._buf) > 8192 and b"\n" not in self._buf:
            self._buf = b""
            self.write(b"Line too long\r\n\r\nERROR\r\n")
            return
        while not self.closed:
            nl = self._buf.find(b"\n")
            if nl < 0:
                return
            raw, self._buf = self._buf[:nl], self._buf[nl + 1 :]
            self._line(raw.rstrip(b"\r").decode("utf-8", "replace"))

    def _line(self, line: str) -> None:
        if self._stage == "login":
            self._user = line.strip()
            self._stage = "password"
            self.write(b"Password: ")
            return
        if self._stage == "password":
            if self._user == self.model.user and line == self.model.password:
                self._stage = "ready"
                banner = f"Welcome to {PRODUCT}\r\nSW Release {SOFTWARE}\r\n"
                self.write((banner + "*r Login successful\r\n\r\nOK\r\n").encode())
                return
            self._failures += 1
            self.write(b"Login incorrect\r\n\r\n")
            if self._failures >= 3:
                self.closed = True
                return
            self._stage = "login"
            self.write(b"login: ")
            return
        self._handle(line.strip())

    def _handle(self, line: str) -> None:
        if not line:
            return
        try:
            words = tokenize(line)
        except ValueError:
            self.write(b"Parse error: unterminated string\r\n\r\nERROR\r\n")
            return
        verb = words[0] if isinstance(words[0], str) else ""
        verb_l = verb.lower()
        if verb_l in ("bye", "exit", "quit"):
            self.write(b"Bye.\r\n")
            self.closed = True
            return
        if verb_l == "xpreferences":
            self.write(b"OK\r\n")
            return
        if verb_l == "echo":
            arg = str(words[1]).lower() if len(words) == 2 else ""
            if arg not in ("on", "off"):
                self.write(b"Usage: echo <on|off>\r\n\r\nERROR\r\n")
                return
            self.echo = arg == "on"
            self.write(b"\r\nOK\r\n")
            return
        if verb_l == "xfeedback":
            self._feedback_cmd(words[1:])
            return
        if verb_l == "xstatus":
            path = tuple(_node(w) for w in words[1:] if isinstance(w, str))
            pairs = self._lookup(path)
            self.write(write_records("s", pairs) + b"\r\nOK\r\n")
            return
        if verb_l == "xcommand":
            self._command(words[1:])
            return
        if verb_l == "xconfiguration":
            self._configuration(words[1:])
            return
        self.write(b"Command not recognized.\r\n\r\nERROR\r\n")

    def _lookup(self, path: tuple[str | int, ...]) -> list[tuple[Path, Scalar]]:
        low = tuple(str(p).lower() for p in path)
        return [
            (p, v)
            for p, v in self.model.query(())
            if tuple(str(x).lower() for x in p[: len(low)]) == low
        ]

    def _feedback_cmd(self, words: list[str | tuple[str]]) -> None:
        if len(words) == 2 and words[0] in ("register", "deregister") and isinstance(words[1], str):
            expr = tuple(x for x in words[1].strip("/").split("/") if x)
            if not expr or expr[0].lower() not in ("status", "event", "configuration"):
                self.write(b"Invalid path\r\n\r\nERROR\r\n")
                return
            expr = (expr[0].capitalize(), *expr[1:])
            if words[0] == "register":
                if expr not in self._feedback:
                    self._feedback.append(expr)
            elif expr in self._feedback:
                self._feedback.remove(expr)
            self.write(b"** end\r\n\r\nOK\r\n")
            return
        if words == ["list"]:
            body = "".join(f"/{'/'.join(f)}\r\n" for f in self._feedback)
            self.write((body + "** end\r\n\r\nOK\r\n").encode())
            return
        self.write(b"Usage: xFeedback register|deregister <path>\r\n\r\nERROR\r\n")

    def _command(self, words: list[str | tuple[str]]) -> None:
        path: list[str] = []
        params: dict[str, Any] = {}
        i = 0
        while i < len(words) and isinstance(words[i], str) and not str(words[i]).endswith(":"):
            path.append(str(words[i]))
            i += 1
        while i < len(words):
            key = words[i]
            if not isinstance(key, str) or not key.endswith(":") or i + 1 >= len(words):
                self.write(b"Parse error: expected Key: value\r\n\r\nERROR\r\n")
                return
            value = words[i + 1]
            params[key[:-1]] = value[0] if isinstance(value, tuple) else _bare(value)
            i += 2
        try:
            name, pairs = self.model.command(tuple(path), params)
        except CommandFailed as e:
            self.write(write_result(e.result, False, [(("Reason",), e.reason)]))
            return
        self.write(write_result(name, True, pairs))

    def _configuration(self, words: list[str | tuple[str]]) -> None:
        keyed = [i for i, w in enumerate(words) if isinstance(w, str) and w.endswith(":")]
        if keyed:
            i = keyed[0]
            if i + 1 >= len(words):
                self.write(b"Parse error: missing value\r\n\r\nERROR\r\n")
                return
            path = tuple(_node(str(w).rstrip(":")) for w in words[: i + 1])
            value = words[i + 1]
            self.model.configuration[path] = value[0] if isinstance(value, tuple) else _bare(value)
            self.write(b"** end\r\n\r\nOK\r\n")
            return
        low = tuple(str(w).lower() for w in words if isinstance(w, str))
        pairs = [
            (k, v)
            for k, v in self.model.configuration.items()
            if tuple(str(x).lower() for x in k[: len(low)]) == low
        ]
        self.write(write_records("c", pairs) + b"\r\nOK\r\n")


def _node(word: str) -> str | int:
    return int(word) if word.isdigit() else word


def _bare(word: str) -> Scalar:
    return int(word) if re.fullmatch(r"-?\d+", word) else Literal_(word)


# --- WebSocket (JSON-RPC) ------------------------------------------------------------------


class WsSession:
    def __init__(self, model: CiscoModel, ws: web.WebSocketResponse) -> None:
        self.model = model
        self.ws = ws
        self.subs: dict[int, tuple[str, ...]] = {}
        self._next_sub = 0
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1024)
        self._unsub = [model.on_status(self._status), model.on_event(self._event_cb)]

    def close(self) -> None:
        for u in self._unsub:
            try:
                u()
            except ValueError:
                pass

    def _push(self, sub: int, tree: dict[str, Any]) -> None:
        msg = {"jsonrpc": "2.0", "method": "xFeedback/Event", "params": {**tree, "Id": sub}}
        try:
            self._queue.put_nowait(json.dumps(msg))
        except asyncio.QueueFull:
            pass  # a client that does not read loses feedback, as on a real codec

    def _matching(self, root: str, path: Path) -> list[int]:
        full = tuple(str(p).lower() for p in (root, *path))
        return [sid for sid, q in self.subs.items() if full[: len(q)] == q[: len(full)]]

    def _status(self, changes: list[tuple[Path, Scalar]]) -> None:
        by_sub: dict[int, list[tuple[Path, Scalar]]] = {}
        for p, v in changes:
            for sid in self._matching("Status", p):
                by_sub.setdefault(sid, []).append((("Status", *p), v))
        for sid, pairs in by_sub.items():
            self._push(sid, rpc.nest(pairs))

    def _event_cb(self, name: str, pairs: list[tuple[Path, Scalar]]) -> None:
        for sid in self._matching("Event", (name,)):
            self._push(sid, rpc.nest([(("Event", name, *p), v) for p, v in pairs]))

    async def writer(self) -> None:
        while True:
            text = await self._queue.get()
            await self.ws.send_str(text)

    def handle(self, text: str) -> dict[str, Any] | None:
        try:
            msg = json.loads(text)
        except ValueError:
            return _rpc_error(None, rpc.PARSE_ERROR, "Parse error")
        if (
            not isinstance(msg, dict)
            or msg.get("jsonrpc") != "2.0"
            or not isinstance(msg.get("method"), str)
        ):
            return _rpc_error(
                msg.get("id") if isinstance(msg, dict) else None,
                rpc.INVALID_REQUEST,
                "Invalid request",
            )
        rid = msg.get("id")
        method: str = msg["method"]
        params = msg.get("params", {})
        if not isinstance(params, dict):
            return _rpc_error(rid, rpc.INVALID_PARAMS, "params must be an object")
        try:
            result = self._dispatch(method, params)
        except CommandFailed as e:
            return _rpc_error(
                rid, rpc.COMMAND_ERROR, "Command returned an error.", {"Reason": e.reason}
            )
        except _RpcFault as e:
            return _rpc_error(rid, e.code, e.message)
        if rid is None:
            return None
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        if method.startswith("xCommand/"):
            path = tuple(method.split("/")[1:])
            if not all(re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", p) for p in path):
                raise _RpcFault(rpc.METHOD_NOT_FOUND, "Method not found")
            _, pairs = self.model.command(path, params)
            return rpc.nest(pairs) if pairs else {"status": "OK"}
        if method in ("xGet", "xQuery"):
            query = params.get("Path", params.get("Query"))
            if (
                not isinstance(query, list)
                or not query
                or not all(isinstance(p, str | int) for p in query)
            ):
                raise _RpcFault(rpc.INVALID_PARAMS, "Path must be a list")
            root, rest = str(query[0]), tuple(_node(str(p)) for p in query[1:])
            source = (
                self.model.status
                if root == "Status"
                else self.model.configuration
                if root == "Configuration"
                else None
            )
            if source is None:
                raise _RpcFault(rpc.INVALID_PARAMS, f"No such path root {root}")
            low = tuple(str(p).lower() for p in rest)
            pairs = [
                (k, v)
                for k, v in source.items()
                if tuple(str(x).lower() for x in k[: len(low)]) == low
            ]
            if not pairs:
                raise _RpcFault(rpc.INVALID_PARAMS, "No match on Path argument")
            exact = [v for k, v in pairs if len(k) == len(rest)]
            if exact and method == "xGet":
                return exact[0]
            tree = rpc.nest([(k[len(rest) :], v) for k, v in pairs])
            return tree
        if method == "xSet":
            target, value = params.get("Path"), params.get("Value")
            if not isinstance(target, list) or len(target) < 2 or target[0] != "Configuration":
                raise _RpcFault(rpc.INVALID_PARAMS, "xSet takes a Configuration path")
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise _RpcFault(rpc.INVALID_PARAMS, "Value must be a string or integer")
            self.model.configuration[tuple(_node(str(p)) for p in target[1:])] = value
            return True
        if method == "xFeedback/Subscribe":
            query = params.get("Query")
            if (
                not isinstance(query, list)
                or not query
                or str(query[0]) not in ("Status", "Event", "Configuration")
            ):
                raise _RpcFault(rpc.INVALID_PARAMS, "Query must be a path list")
            sid = self._next_sub
            self._next_sub += 1
            self.subs[sid] = tuple(str(p).lower() for p in query)
            if params.get("NotifyCurrentValue") and query[0] == "Status":
                rest = tuple(str(p).lower() for p in query[1:])
                pairs = [
                    (("Status", *k), v)
                    for k, v in self.model.status.items()
                    if tuple(str(x).lower() for x in k[: len(rest)]) == rest
                ]
                if pairs:
                    asyncio.get_running_loop().call_soon(self._push, sid, rpc.nest(pairs))
            return {"Id": sid}
        if method == "xFeedback/Unsubscribe":
            unsub = params.get("Id")
            if not isinstance(unsub, int) or unsub not in self.subs:
                raise _RpcFault(rpc.INVALID_PARAMS, "No such subscription")
            del self.subs[unsub]
            return True
        raise _RpcFault(rpc.METHOD_NOT_FOUND, "Method not found")


class _RpcFault(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _rpc_error(rid: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": rid, "error": err}


class CiscoTshellSimulator(DeviceSimulator):
    """tshell on the framework's TCP/pty hosting (pacing, mute, reboot come with it)."""

    protocol = "cisco-xapi"

    def __init__(self, model: CiscoModel, *, login: bool, reply_delay_s: float = 0.0) -> None:
        super().__init__(password=model.password, reply_delay_s=reply_delay_s)
        self.model = model
        self.login = login

    def on_connect(self, session: SimSession) -> None:
        def write(data: bytes) -> None:
            if session.closed:
                # The client went away: stop hearing the model for it.
                tshell = session.vars.get("tshell")
                if isinstance(tshell, TshellSession):
                    tshell.close()
                return
            session.send(data)

        old = session.vars.get("tshell")
        if isinstance(old, TshellSession):
            old.close()
        session.vars["tshell"] = TshellSession(self.model, write, login=self.login)

    def on_data(self, session: SimSession, data: bytes) -> None:
        tshell = session.vars.get("tshell")
        if not isinstance(tshell, TshellSession):
            return
        self.commands += data.count(b"\n")
        tshell.feed(data)
        if tshell.closed:
            tshell.close()
            if session.kind == "tcp":
                session.close()


# --- hosting -------------------------------------------------------------------------------


class CiscoSimulator:
    """The model on an HTTP port (``/ws``), optionally tshell on TCP and on a pty."""

    def __init__(self, model: CiscoModel | None = None) -> None:
        self.model = model or CiscoModel()
        self.port: int | None = None
        self.tshell_port: int | None = None
        self.pty_path: str | None = None
        self.connections = 0
        self._runner: web.AppRunner | None = None
        self._tcp: SimServer | None = None
        self._pty: SimServer | None = None
        self._ws: set[web.WebSocketResponse] = set()

    def _authorised(self, request: web.Request) -> tuple[bool, str | None]:
        creds = rpc.parse_basic_auth(request.headers.get("Authorization"))
        if creds is not None:
            return creds == (self.model.user, self.model.password), None
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        for proto in offered:
            creds = rpc.parse_auth_subprotocol(proto)
            if creds is not None:
                return creds == (self.model.user, self.model.password), proto
        return False, None

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        ok, proto = self._authorised(request)
        if not ok:
            has_creds = "Authorization" in request.headers or "auth-" in request.headers.get(
                "Sec-WebSocket-Protocol", ""
            )
            # Missing credentials: 401 with a challenge; wrong ones: 403 (what xows expects).
            if not has_creds:
                return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="xapi"'})
            return web.Response(status=403, text="Forbidden")
        ws = web.WebSocketResponse(
            protocols=(proto,) if proto else (), heartbeat=None, max_msg_size=rpc.MAX_MESSAGE
        )
        await ws.prepare(request)
        self.connections += 1
        self._ws.add(ws)
        session = WsSession(self.model, ws)
        writer = asyncio.create_task(session.writer())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    answer = session.handle(msg.data)
                    if answer is not None:
                        await ws.send_str(json.dumps(answer))
                elif msg.type == WSMsgType.BINARY:
                    await ws.send_str(json.dumps(_rpc_error(None, rpc.PARSE_ERROR, "Parse error")))
        finally:
            session.close()
            writer.cancel()
            self._ws.discard(ws)
        return ws

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: Any = None
    ) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._ws_handler)
        app.router.add_get("/ws/", self._ws_handler)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def start_tshell(
        self, host: str = "127.0.0.1", port: int = 0, *, login: bool = True
    ) -> None:
        """tshell on a TCP port, behind the telnet-style login."""
        self._tcp = await serve_tcp(CiscoTshellSimulator(self.model, login=login), host, port)
        self.tshell_port = self._tcp.port

    async def start_pty(self, *, login: bool = False, baud: int | None = 115200) -> str:
        """tshell on a pseudo-terminal, as on the codec's serial port; returns its path."""
        self._pty = await serve_pty(CiscoTshellSimulator(self.model, login=login), baud)
        self.pty_path = self._pty.path
        return self.pty_path

    async def stop(self) -> None:
        for ws in list(self._ws):
            await ws.close()
        for server in (self._tcp, self._pty):
            if server is not None:
                await server.close()
        self._tcp = self._pty = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for call_id in list(self.model.calls):
            self.model.hangup_remote(call_id)
