"""tshell over SSH: the codec's interactive session as a byte stream, and whose key it is.

A Cisco codec (RoomOS / CE) opens tshell directly on an SSH shell session: no ``login:``
prompt (SSH did the authentication, by password or keyboard-interactive with the same
password), a banner, ``*r Login successful`` and ``OK``. From there it is the same
terminal protocol as on telnet or RS-232, so :func:`open_ssh` hands the framework's
:class:`~drivers.connection.Connection` a :class:`SshTransport` and the driver feeds the
same sans-I/O :class:`~drivers.cisco_xapi.tshell.TshellParser`.

Whose key: the codec's host key is checked before the password is sent --

- ``host_key = "SHA256:..."`` (as ``ssh-keygen -lf`` prints it) pins one fingerprint;
- otherwise the first key seen is trusted and recorded (trust on first use) in an
  OpenSSH-format ``known_hosts`` file in the daemon's state directory, with a warning
  in the log naming the fingerprint so an operator can compare it with the codec's
  (without a state directory, as for a simulated device, nothing is recorded: the key
  first seen holds for the driver's life).

A key that differs from the pinned or recorded one is refused (:class:`BadConfig`, so
the link waits at the backoff cap instead of knocking): replacing a codec, or
regenerating its key, needs an operator to pin the new fingerprint or delete the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from drivers.errors import AuthFailed, BadConfig, DeviceOffline
from drivers.transport import Endpoint, TcpEndpoint, Transport
from wallctl.logs import get_logger

log = get_logger("drivers.cisco_xapi.ssh")
# asyncssh logs every connection, key exchange and login step at INFO; a daemon keeping
# codecs connected says what matters itself. An explicit level set elsewhere wins.
if logging.getLogger("asyncssh").level == logging.NOTSET:
    logging.getLogger("asyncssh").setLevel(logging.WARNING)

# ``ssh-keygen -lf`` prints SHA256 fingerprints as unpadded base64 of 32 bytes.
FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}\Z")
KNOWN_HOSTS_NAME = "known_hosts"
READ_CHUNK = 4096
# A known_hosts file is small; one that is not is not ours to parse.
MAX_KNOWN_HOSTS = 1 << 20

# asyncssh's default ciphers, AES-GCM first: with AES-NI it costs about half of
# ChaCha20-Poly1305 per message here (a command's round trip 0.20 vs 0.37 ms, both ends
# in asyncssh); the others stay for codecs that lack it.
CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)


def normalise_fingerprint(text: str) -> str:
    """``SHA256:...`` as ssh-keygen prints it (padding dropped); ValueError otherwise."""
    value = text.strip().rstrip("=")
    if not FINGERPRINT.match(value):
        raise ValueError("must be a SHA256 fingerprint as `ssh-keygen -lf` prints it (SHA256:...)")
    return value


def host_pattern(host: str, port: int) -> str:
    """The known_hosts name of ``host:port``, as OpenSSH writes it."""
    return host if port == 22 else f"[{host}]:{port}"


@dataclass(frozen=True)
class KnownKey:
    algorithm: str
    key: asyncssh.SSHKey

    @property
    def fingerprint(self) -> str:
        return str(self.key.get_fingerprint("sha256"))


class KnownHosts:
    """An OpenSSH-format known_hosts file: lookups, and records appended atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lookup(self, host: str, port: int) -> list[KnownKey]:
        pattern = host_pattern(host, port)
        try:
            if self.path.stat().st_size > MAX_KNOWN_HOSTS:
                raise BadConfig(f"{self.path} is larger than {MAX_KNOWN_HOSTS} bytes")
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        except OSError as e:
            # Unreadable records must not turn into "first use": refuse instead.
            raise BadConfig(f"cannot read {self.path}: {e.strerror or e}") from None
        found: list[KnownKey] = []
        for line in text.splitlines():
            words = line.split()
            if len(words) < 3 or words[0].startswith("#") or words[0].startswith("@"):
                continue
            if pattern not in words[0].split(","):
                continue
            try:
                key = asyncssh.import_public_key(f"{words[1]} {words[2]}")
            except (asyncssh.KeyImportError, ValueError):
                continue
            found.append(KnownKey(words[1], key))
        return found

    def add(self, host: str, port: int, key: asyncssh.SSHKey, comment: str) -> None:
        """Append a record (written to a temporary file, then renamed over the old one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            old = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = ""
        if old and not old.endswith("\n"):
            old += "\n"
        public = key.export_public_key("openssh").decode().split()
        line = f"{host_pattern(host, port)} {public[0]} {public[1]} {comment}\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".known_hosts.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(old + line)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


@dataclass
class HostKeyCheck:
    """Decides whether the key a codec presents is its key; remembers why not."""

    device_id: str
    host: str
    port: int
    # A pinned fingerprint (config ``host_key``): nothing else is accepted.
    pinned: str | None = None
    # Where first-use keys are recorded; None: no record, the key first seen is trusted
    # for this check's life (one driver: its reconnects), as for a simulated device.
    known_hosts: KnownHosts | None = None
    remembered: str | None = None
    # Filled during the handshake.
    refused: str = ""
    first_use: asyncssh.SSHKey | None = None
    recorded: list[KnownKey] = field(default_factory=list)

    def prepare(self) -> None:
        """Read the records for this host (before connecting)."""
        self.refused = ""
        self.first_use = None
        if self.pinned is None and self.known_hosts is not None:
            self.recorded = self.known_hosts.lookup(self.host, self.port)
        else:
            self.recorded = []

    def host_key_algorithms(self) -> list[str] | None:
        """Ask only for the recorded key types, so a codec that also holds keys of
        another type presents the one recorded (as OpenSSH does); None: any."""
        algs: list[str] = []
        for k in self.recorded:
            algs += [a.decode() for a in k.key.sig_algorithms if a.decode() not in algs]
        return algs or None

    def check(self, key: asyncssh.SSHKey) -> bool:
        seen = str(key.get_fingerprint("sha256"))
        if self.pinned is not None:
            if seen == self.pinned:
                return True
            self.refused = (
                f"the codec's SSH host key is {seen}, not the pinned {self.pinned}: refusing "
                "(someone may be in the way; if the codec was replaced or re-keyed, check "
                "the fingerprint on the codec and set host_key to it)"
            )
            return False
        if self.known_hosts is None:
            known = self.remembered
            if known is None:
                self.first_use = key
                return True
            if known == seen:
                return True
            self.refused = (
                f"the codec's SSH host key changed from {known} to {seen}: refusing "
                "(set host_key to pin the new one once checked on the codec)"
            )
            return False
        if not self.recorded:
            self.first_use = key
            return True
        if any(k.fingerprint == seen for k in self.recorded):
            return True
        was = ", ".join(k.fingerprint for k in self.recorded)
        self.refused = (
            f"the codec's SSH host key changed: it presents {seen}, {self.known_hosts.path} "
            f"records {was} for {host_pattern(self.host, self.port)}: refusing (someone may "
            "be in the way; if the codec was replaced or re-keyed, check the fingerprint on "
            "the codec, then delete that line or set host_key)"
        )
        return False

    def record_first_use(self) -> None:
        """After a successful login: remember the key trusted on first use, loudly."""
        key, self.first_use = self.first_use, None
        if key is None:
            return
        seen = str(key.get_fingerprint("sha256"))
        if self.known_hosts is None:
            self.remembered = seen
            log.warning(
                "ssh host key trusted on first use, not recorded (no state directory)",
                device=self.device_id,
                host=host_pattern(self.host, self.port),
                fingerprint=seen,
            )
            return
        # Another link to the same address may have recorded a key meanwhile (two devices
        # on one codec): the same key needs no second line, another key is a refusal.
        now = self.known_hosts.lookup(self.host, self.port)
        if any(k.fingerprint == seen for k in now):
            self.recorded = now
            return
        if now:
            was = ", ".join(k.fingerprint for k in now)
            raise BadConfig(
                f"the codec's SSH host key {seen} differs from {was}, recorded meanwhile "
                f"for {host_pattern(self.host, self.port)} in {self.known_hosts.path}: refusing"
            )
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.known_hosts.add(self.host, self.port, key, f"wallctl:{self.device_id}:{stamp}")
        self.recorded = self.known_hosts.lookup(self.host, self.port)
        log.warning(
            "ssh host key trusted on first use and recorded: compare it with the codec's",
            device=self.device_id,
            host=host_pattern(self.host, self.port),
            fingerprint=seen,
            file=str(self.known_hosts.path),
        )


class _Client(asyncssh.SSHClient):
    def __init__(self, check: HostKeyCheck) -> None:
        self._check = check

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        return self._check.check(key)


class SshTransport(Transport):
    """The codec's SSH shell session behind the framework's Transport interface."""

    def __init__(
        self,
        conn: asyncssh.SSHClientConnection,
        process: asyncssh.SSHClientProcess[bytes],
        endpoint: Endpoint,
    ) -> None:
        # Not Transport.__init__: there are no asyncio streams underneath.
        self.endpoint = endpoint
        self.tls = False
        self._conn = conn
        self._process = process
        self._received = 0

    async def read(self) -> bytes:
        try:
            data = await self._process.stdout.read(READ_CHUNK)
        except (asyncssh.Error, ConnectionError, OSError):
            data = b""
        if not data and not self._received:
            # What a codec does with one SSH session too many: it lets the login through,
            # then closes the session before saying anything.
            log.warning(
                "the codec closed the ssh session before its prompt: too many sessions open?",
                endpoint=self.endpoint.describe(),
            )
        self._received += len(data)
        return data

    async def write(self, data: bytes) -> None:
        if self._process.stdin.is_closing() or self._process.is_closing():
            raise ConnectionResetError("ssh session closed")
        try:
            self._process.stdin.write(data)
            await self._process.stdin.drain()
        except (asyncssh.Error, BrokenPipeError) as e:
            raise ConnectionResetError(f"ssh session closed ({e})") from None

    async def start_tls(
        self, ctx: object, *, server_hostname: str | None = None, within_s: float = 10.0
    ) -> None:
        raise ValueError("an SSH session is already encrypted")

    async def close(self) -> None:
        self._process.close()
        self._conn.close()
        with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
            async with asyncio.timeout(2.0):
                await self._conn.wait_closed()


@dataclass
class SshLogin:
    """Everything :func:`open_ssh` needs besides the endpoint."""

    device_id: str
    user: str
    password: str
    check: HostKeyCheck
    login_timeout_s: float = 10.0


async def open_ssh(login: SshLogin | None, endpoint: Endpoint, within_s: float) -> Transport:
    """Connect, check the host key, log in and open the shell session.

    Raises :class:`AuthFailed` (user or password refused), :class:`BadConfig` (host key
    refused; not an SSH endpoint), :class:`DeviceOffline` (SSH failed otherwise), or
    ``OSError``/``TimeoutError`` (no TCP connection).
    """
    if login is None or not isinstance(endpoint, TcpEndpoint):
        raise BadConfig("tshell over SSH needs a host and port, not a serial line")
    check = login.check
    check.prepare()
    algs = check.host_key_algorithms()
    limit = max(within_s, login.login_timeout_s)
    conn: asyncssh.SSHClientConnection | None = None
    try:
        async with asyncio.timeout(limit):
            conn, _ = await asyncssh.create_connection(
                lambda: _Client(check),
                endpoint.host,
                endpoint.port,
                username=login.user,
                password=login.password,
                # Only the password: never the operator's keys, agent or ~/.ssh/config.
                client_keys=None,
                agent_path=None,
                config=None,
                gss_host=None,
                # Empty trust lists (not None) so every key goes through _Client.
                known_hosts=([], [], []),
                server_host_key_algs=algs if algs is not None else "default",
                preferred_auth=("password", "keyboard-interactive"),
                encryption_algs=list(CIPHERS),
                connect_timeout=within_s,
                login_timeout=login.login_timeout_s,
                keepalive_interval=0,
            )
            process = await conn.create_process(term_type=None, encoding=None)
    except asyncssh.HostKeyNotVerifiable as e:
        raise BadConfig(check.refused or f"SSH host key refused: {e.reason}") from None
    except asyncssh.PermissionDenied:
        if conn is not None:
            conn.close()
        # Never the password, in any form.
        raise AuthFailed(f"the codec refused user {login.user!r} over SSH") from None
    except asyncssh.KeyExchangeFailed as e:
        if algs is not None and "host key" in str(e.reason).lower():
            types = ", ".join(sorted({k.algorithm for k in check.recorded}))
            raise BadConfig(
                f"the codec no longer offers the recorded host key type ({types}): refusing "
                f"({e.reason}); check the codec, then delete its line in "
                f"{check.known_hosts.path if check.known_hosts else 'the records'} "
                "or set host_key"
            ) from None
        raise DeviceOffline(f"SSH key exchange failed: {e.reason}") from None
    except asyncssh.ChannelOpenError as e:
        if conn is not None:
            conn.close()
        raise DeviceOffline(f"the codec refused a shell session: {e.reason}") from None
    except asyncssh.DisconnectError as e:
        if conn is not None:
            conn.close()
        raise DeviceOffline(f"SSH failed: {e.reason or type(e).__name__}") from None
    except BaseException:
        if conn is not None:
            conn.close()
        raise
    try:
        check.record_first_use()
    except (OSError, BadConfig) as e:
        process.close()
        conn.close()
        if isinstance(e, BadConfig):
            raise
        raise BadConfig(f"cannot record the codec's SSH host key: {e.strerror or e}") from None
    log.info("ssh session open", device=login.device_id, user=login.user, port=endpoint.port)
    return SshTransport(conn, process, endpoint)
