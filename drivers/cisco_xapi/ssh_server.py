"""The simulated codec's tshell on an SSH server (asyncssh), as RoomOS serves it on port 22.

What a client meets, as on a codec:

- a host key of the type the codec is configured for (RoomOS offers RSA, ECDSA or
  Ed25519: ``xConfiguration NetworkServices SSH HostKeyAlgorithm``), generated at start
  or read from an OpenSSH private key file so its fingerprint can be pinned;
- password authentication, and keyboard-interactive with one ``Password:`` prompt
  (what Cisco's own jsxapi answers), for the model's user; a codec without a password
  (a factory-new ``admin``) lets the user in without one;
- tshell straight on the shell session: ``Welcome to``, the release lines,
  ``*r Login successful`` and ``OK``, no ``login:`` prompt; what the client types is
  echoed until it sends ``echo off``; a terminal (``ssh -t``) sends CR, read as a line end;
- a limited number of sessions: one over the limit is closed at once, without a word (an
  OpenSSH client reports the connection closed by the remote host).

The tshell grammar is the simulator's own (:class:`~drivers.cisco_xapi.simulator.TshellSession`),
shared with the telnet and RS-232 faces; this module only moves bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import asyncssh

from drivers.cisco_xapi.model import CiscoModel
from drivers.cisco_xapi.simulator import TshellSession
from wallctl.logs import get_logger

log = get_logger("drivers.cisco_xapi.ssh_server")

KeyType = Literal["rsa", "ecdsa", "ed25519"]
KEY_ALGORITHMS: dict[str, str] = {
    "rsa": "ssh-rsa",
    "ecdsa": "ecdsa-sha2-nistp256",
    "ed25519": "ssh-ed25519",
}
DEFAULT_MAX_SESSIONS = 10


def generate_host_key(key_type: KeyType = "rsa") -> asyncssh.SSHKey:
    if key_type not in KEY_ALGORITHMS:
        raise ValueError(f"host key type must be one of {', '.join(KEY_ALGORITHMS)}")
    if key_type == "rsa":
        return asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    return asyncssh.generate_private_key(KEY_ALGORITHMS[key_type])


def read_host_key(path: str | Path) -> asyncssh.SSHKey:
    """An OpenSSH (or PEM) private key file; ValueError with the reason otherwise."""
    try:
        return asyncssh.read_private_key(str(path))
    except OSError as e:
        raise ValueError(f"ssh host key {path}: {e.strerror or e}") from None
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as e:
        raise ValueError(f"ssh host key {path}: {e}") from None


class _Server(asyncssh.SSHServer):
    def __init__(self, sim: CiscoSshSimulator) -> None:
        self._sim = sim
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._sim.connections.add(conn)
        self._sim.accepted += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._sim.connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        # A codec whose user has no password lets it in on the user name alone.
        return bool(self._sim.model.password)

    def _ok(self, username: str, password: str) -> bool:
        model = self._sim.model
        ok = hmac.compare_digest(username.encode(), model.user.encode()) and hmac.compare_digest(
            password.encode(), model.password.encode()
        )
        if ok:
            self._sim.logins += 1
        else:
            self._sim.auth_failures += 1
        return ok

    def password_auth_supported(self) -> bool:
        return self._sim.password_auth

    def validate_password(self, username: str, password: str) -> bool:
        return self._ok(username, password)

    def kbdint_auth_supported(self) -> bool:
        return True

    def get_kbdint_challenge(
        self, username: str, lang: str, submethods: str
    ) -> tuple[str, str, str, list[tuple[str, bool]]]:
        return "", "", "", [("Password: ", False)]

    def validate_kbdint_response(self, username: str, responses: Sequence[str]) -> bool:
        return len(responses) == 1 and self._ok(username, responses[0])


class CiscoSshSimulator:
    """tshell over SSH for one :class:`CiscoModel` (shared with its other faces)."""

    def __init__(
        self,
        model: CiscoModel,
        host_key: asyncssh.SSHKey | None = None,
        *,
        key_type: KeyType = "rsa",
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        password_auth: bool = True,
        host_key_algs: Sequence[str] | None = None,
    ) -> None:
        if not 1 <= max_sessions <= 1000:
            raise ValueError("ssh max sessions must be within 1..1000")
        self.model = model
        self._key = host_key
        self.key_type = key_type
        self.max_sessions = max_sessions
        # False: keyboard-interactive only (a codec, or a PAM set-up, that offers no
        # plain password method).
        self.password_auth = password_auth
        # The signature algorithms offered for the host key; ("ssh-rsa",) plays an older
        # CE release that signs with SHA-1 only (OpenSSH 8.8 and later refuse it unless
        # told `-o HostKeyAlgorithms=+ssh-rsa`; asyncssh still accepts it).
        self.host_key_algs = tuple(host_key_algs) if host_key_algs else None
        self.host = ""
        self.port = 0
        self.sessions = 0
        # Counters the tests read: TCP connections accepted, logins, refused logins,
        # sessions turned away.
        self.accepted = 0
        self.logins = 0
        self.auth_failures = 0
        self.turned_away = 0
        self.connections: set[asyncssh.SSHServerConnection] = set()
        # A hung codec: SSH still answers (the kernel and sshd), tshell says nothing.
        self.mute = False
        self._server: asyncssh.SSHAcceptor | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def host_key(self) -> asyncssh.SSHKey:
        if self._key is None:
            raise RuntimeError("the simulator has not started")
        return self._key

    @property
    def fingerprint(self) -> str:
        return str(self.host_key.get_fingerprint("sha256"))

    def describe(self) -> str:
        return f"tshell over ssh on {self.host}:{self.port} (host key {self.fingerprint})"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._key is None:
            # RSA generation takes a moment: off the loop.
            self._key = await asyncio.to_thread(generate_host_key, self.key_type)
        keypairs = asyncssh.load_keypairs([self._key])
        if self.host_key_algs:
            for keypair in keypairs:
                keypair.host_key_algorithms = [a.encode() for a in self.host_key_algs]
        self._server = await asyncssh.create_server(
            lambda: _Server(self),
            host,
            port,
            server_host_keys=keypairs,
            process_factory=self._session,
            encoding=None,
            line_editor=False,
            allow_pty=True,
            x11_forwarding=False,
            agent_forwarding=False,
            allow_scp=False,
            # (Port forwarding is refused by asyncssh.SSHServer's defaults.)
            keepalive_interval=0,
        )
        sock = self._server.sockets[0].getsockname()
        self.host, self.port = str(sock[0]), int(sock[1])

    def drop_sessions(self) -> None:
        """Close every client connection (a codec rebooting, a network cut)."""
        for conn in list(self.connections):
            conn.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.drop_sessions()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)

    async def _session(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(process)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _serve(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        if self.sessions >= self.max_sessions:
            # Over the codec's limit: closed at once, without a word.
            self.turned_away += 1
            log.info("ssh session turned away", sessions=self.sessions, limit=self.max_sessions)
            process.exit(255)
            return
        if process.command is not None:
            process.stdout.write(b"Command not recognized.\r\n\r\nERROR\r\n")
            process.exit(1)
            return
        self.sessions += 1
        terminal = process.term_type is not None
        stdout = process.stdout

        def write(data: bytes) -> None:
            if self.mute or stdout.is_closing() or process.is_closing():
                return
            with contextlib.suppress(asyncssh.Error, BrokenPipeError, ConnectionError):
                stdout.write(data)

        tshell = TshellSession(self.model, write, login=False, welcome=True, echo=True)
        try:
            while not tshell.closed:
                try:
                    data = await process.stdin.read(4096)
                except (asyncssh.TerminalSizeChanged, asyncssh.BreakReceived):
                    continue
                except (asyncssh.SignalReceived, asyncssh.Error, ConnectionError):
                    break
                if not data:
                    break
                if terminal:
                    # A terminal's Enter is CR (or CR LF): one line end either way.
                    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                tshell.feed(data)
        finally:
            tshell.close()
            self.sessions -= 1
            with contextlib.suppress(asyncssh.Error, OSError):
                process.exit(0)
