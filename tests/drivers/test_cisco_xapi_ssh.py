"""tshell over SSH: the Cisco driver against the simulator's SSH server on real TCP ports,
OpenSSH's own client (``ssh``, ``sshpass``, ``ssh-keygen``) as the independent peer, the
standalone ``wallctl simulate cisco-xapi --ssh`` and a ``[conference]`` codec over SSH in
the daemon."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sim_helpers import eventually

from drivers.cisco_xapi.driver import CiscoXapiConfig, CiscoXapiDriver
from drivers.cisco_xapi.farend import FarEnd
from drivers.cisco_xapi.simulator import CiscoModel
from drivers.cisco_xapi.ssh import (
    KNOWN_HOSTS_NAME,
    HostKeyCheck,
    KnownHosts,
    normalise_fingerprint,
)
from drivers.cisco_xapi.ssh_server import CiscoSshSimulator, generate_host_key
from drivers.contract import DriverSetup, DriverStatus
from drivers.errors import BadConfig, InvalidParams
from drivers.transport import SerialEndpoint, TcpEndpoint
from wallctl.logs import _FIELDS_ATTR

PASSWORD = "s3cret pass"
FAST = FarEnd(setup_s=0.02, ring_s=0.02, drop_after_s=0.1, no_answer_s=0.2)


def _model() -> CiscoModel:
    return CiscoModel(user="admin", password=PASSWORD, farend=FAST)


@pytest.fixture
async def sim() -> AsyncIterator[CiscoSshSimulator]:
    s = CiscoSshSimulator(_model(), key_type="ed25519")
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


def _driver(
    port: int,
    state_dir: Path | None,
    *,
    password: str = PASSWORD,
    **cfg: Any,
) -> CiscoXapiDriver:
    config = CiscoXapiConfig(transport="ssh", **{"retry_max_s": 1, **cfg})
    extra = {"state_dir": str(state_dir)} if state_dir is not None else {}
    return CiscoXapiDriver(
        DriverSetup("codec-a", config, TcpEndpoint("127.0.0.1", port), password, extra=extra)
    )


async def _up(d: CiscoXapiDriver) -> None:
    await d.start()
    await eventually(lambda: d.status is DriverStatus.OK, 15)


def _text(record: logging.LogRecord) -> str:
    """A log record's event and its structured fields, as a line would carry them."""
    return f"{record.getMessage()} {getattr(record, _FIELDS_ATTR, {})!r}"


def _ssh_keygen_fingerprint(known_hosts: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(known_hosts)], capture_output=True, text=True, check=True
    ).stdout
    return out.split()[1]


async def test_a_call_over_ssh_and_the_key_recorded_on_first_use(
    sim: CiscoSshSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    d = _driver(sim.port, tmp_path)
    await _up(d)
    try:
        # First use: the key is recorded in the state directory, in OpenSSH's format
        # (ssh-keygen reads it and prints the simulator's fingerprint), and said loudly.
        kh = tmp_path / KNOWN_HOSTS_NAME
        assert _ssh_keygen_fingerprint(kh) == sim.fingerprint
        assert kh.read_text().startswith(f"[127.0.0.1]:{sim.port} ssh-ed25519 ")
        assert oct(kh.stat().st_mode & 0o777) == "0o600"
        warned = [r for r in caplog.records if "first use" in r.getMessage()]
        assert warned and warned[0].levelno == logging.WARNING
        assert sim.fingerprint in _text(warned[0])
        assert sim.logins == 1
        answer = await d.call("dial", {"number": "sip:nanxun@10.33.1.10", "call_rate": 1920})
        cid = answer["call_id"]
        assert cid == 1
        # Feedback registered over the session: the call's life arrives as *s records.
        await eventually(lambda: [c["status"] for c in d.state["calls"]] == ["connected"])
        assert d.state["calls"][0]["remote_number"] == "sip:nanxun@10.33.1.10"
        assert d.state["calls"][0]["call_rate"] == 1920
        await d.call("mute", {})
        await d.call("presentation_start", {"source": 3})
        await eventually(lambda: d.state["presentation"] == {"mode": "Sending", "source": 3})
        await eventually(lambda: d.state["microphones_muted"] is True)
        sim.model.hangup_remote()
        await eventually(lambda: d.state["calls"] == [])
        await eventually(lambda: (d.state.get("last_disconnect") or {}).get("call_id") == cid)
        assert d.state["last_disconnect"]["reason"] == "remote_hangup"
        cid = (await d.call("dial", {"number": "busy@x.cn"}))["call_id"]
        await eventually(lambda: (d.state.get("last_disconnect") or {}).get("call_id") == cid)
        assert d.state["last_disconnect"]["reason"] == "busy"
        # A command the codec refuses comes back with its reason.
        with pytest.raises(Exception, match="Preset 9 not found"):
            await d.call("camera_preset", {"preset": 9})
        # Echo was turned off: no command line came back as text (the answers parse).
        assert sim.model.commands[-1][0] == "Camera/Preset/Activate"
    finally:
        await d.stop()
    # A second link trusts the recorded key without a new record.
    d = _driver(sim.port, tmp_path)
    await _up(d)
    await d.stop()
    assert len(KnownHosts(tmp_path / KNOWN_HOSTS_NAME).lookup("127.0.0.1", sim.port)) == 1


async def test_keyboard_interactive_only_codec(tmp_path: Path) -> None:
    s = CiscoSshSimulator(_model(), key_type="ecdsa", password_auth=False)
    await s.start()
    d = _driver(s.port, tmp_path)
    try:
        await _up(d)
        assert s.logins == 1
        await d.call("volume", {"level": 35})
        await eventually(lambda: d.state["volume"] == 35)
    finally:
        await d.stop()
        await s.stop()


async def test_wrong_password_is_an_auth_failure_not_a_reconnect_loop(
    sim: CiscoSshSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wr0ng-Passw0rd"
    d = _driver(sim.port, tmp_path, password=wrong, retry_max_s=3)
    await d.start()
    try:
        await eventually(lambda: d.status is DriverStatus.AUTH_FAILURE, 15)
        assert "refused user 'admin'" in d.status_detail
        first = sim.accepted
        # Waits at the backoff cap (3 s, +-25%), not a tight loop: at most one more try.
        await asyncio.sleep(1.5)
        assert sim.accepted - first <= 1
        assert sim.logins == 0 and sim.auth_failures >= 1
        with pytest.raises(Exception, match="not connected"):
            await d.call("mute", {})
    finally:
        await d.stop()
    # The password appears in no status and no log line.
    assert wrong not in d.status_detail
    assert caplog.records
    assert not [r for r in caplog.records if wrong in _text(r)]
    assert sim.model.commands == []


async def test_changed_host_key_is_refused_before_the_password_is_sent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = CiscoSshSimulator(_model(), key_type="ed25519")
    await first.start()
    port = first.port
    d = _driver(port, tmp_path)
    await _up(d)
    await d.stop()
    await first.stop()
    # Same address, another key (the codec replaced, or someone in the way).
    second = CiscoSshSimulator(first.model, generate_host_key("ed25519"))
    await second.start("127.0.0.1", port)
    caplog.set_level(logging.INFO)
    d = _driver(port, tmp_path)
    try:
        await d.start()
        await eventually(lambda: d.status is DriverStatus.BAD_CONFIG, 15)
        detail = d.status_detail
        assert "host key changed" in detail and "refusing" in detail
        assert first.fingerprint in detail and second.fingerprint in detail
        # The key was refused before authentication: no password went to that host.
        assert second.logins == 0 and second.auth_failures == 0
        # The record is kept as it was (a refusal never overwrites it).
        records = KnownHosts(tmp_path / KNOWN_HOSTS_NAME).lookup("127.0.0.1", port)
        assert [k.fingerprint for k in records] == [first.fingerprint]
        # Pinning the new fingerprint (after checking it on the codec) lets it in.
        await d.stop()
        d = _driver(port, tmp_path, host_key=second.fingerprint)
        await _up(d)
        assert second.logins == 1
    finally:
        await d.stop()
        await second.stop()


async def test_recorded_key_type_no_longer_offered_is_refused(tmp_path: Path) -> None:
    first = CiscoSshSimulator(_model(), key_type="ed25519")
    await first.start()
    port = first.port
    d = _driver(port, tmp_path)
    await _up(d)
    await d.stop()
    await first.stop()
    # The codec's HostKeyAlgorithm changed to RSA: only the recorded type is asked for.
    second = CiscoSshSimulator(first.model, key_type="rsa")
    await second.start("127.0.0.1", port)
    d = _driver(port, tmp_path)
    try:
        await d.start()
        await eventually(lambda: d.status is DriverStatus.BAD_CONFIG, 15)
        assert "no longer offers the recorded host key type (ssh-ed25519)" in d.status_detail
        assert second.logins == 0 and second.auth_failures == 0
    finally:
        await d.stop()
        await second.stop()


async def test_older_codec_signing_with_sha1_rsa(tmp_path: Path) -> None:
    s = CiscoSshSimulator(_model(), key_type="rsa", host_key_algs=("ssh-rsa",))
    await s.start()
    d = _driver(s.port, tmp_path)
    try:
        await _up(d)
        await d.call("unmute", {})
        # OpenSSH 9 refuses such a codec unless told; the driver does not need telling.
        out = await asyncio.to_thread(
            functools.partial(_openssh, s.port, PASSWORD, "xStatus Standby\n", quiet=False)
        )
        assert "no matching host key type found. Their offer: ssh-rsa" in out
    finally:
        await d.stop()
        await s.stop()


async def test_pinned_fingerprint(sim: CiscoSshSimulator, tmp_path: Path) -> None:
    other = generate_host_key("ed25519").get_fingerprint("sha256")
    d = _driver(sim.port, tmp_path, host_key=other)
    try:
        await d.start()
        await eventually(lambda: d.status is DriverStatus.BAD_CONFIG, 15)
        assert f"not the pinned {other}" in d.status_detail
        assert sim.logins == 0 and sim.auth_failures == 0
    finally:
        await d.stop()
    d = _driver(sim.port, tmp_path, host_key=sim.fingerprint)
    try:
        await _up(d)
    finally:
        await d.stop()
    # A pinned key is not recorded: the pin is the record.
    assert not (tmp_path / KNOWN_HOSTS_NAME).exists()


def test_known_hosts_records(tmp_path: Path) -> None:
    path = tmp_path / KNOWN_HOSTS_NAME
    kh = KnownHosts(path)
    a, b = generate_host_key("ed25519"), generate_host_key("ecdsa")
    # Two links to one codec trusting it at once: one line; another key meanwhile: refused.
    first, second = (HostKeyCheck("d", "10.0.0.9", 22, known_hosts=kh) for _ in range(2))
    for check in (first, second):
        check.prepare()
        assert check.check(a)
    first.record_first_use()
    second.record_first_use()
    assert len(path.read_text().splitlines()) == 1
    assert path.read_text().startswith("10.0.0.9 ssh-ed25519 ")  # port 22: a bare name
    third = HostKeyCheck("d", "10.0.0.9", 2222, known_hosts=kh)
    third.prepare()
    assert third.check(b)
    kh.add("10.0.0.9", 2222, a, "another link")
    with pytest.raises(BadConfig, match="recorded meanwhile"):
        third.record_first_use()
    # Without a state directory: the first key holds for the check's life, not recorded.
    memory = HostKeyCheck("d", "10.0.0.9", 22)
    memory.prepare()
    assert memory.check(a)
    memory.record_first_use()
    memory.prepare()
    assert memory.check(a) and not memory.check(b)
    assert "changed from" in memory.refused
    # Lines it cannot read are skipped, never taken as "no record"; comments too.
    text = path.read_text()
    path.write_text("# a comment\ngarbage\n10.0.0.9 ssh-ed25519 AAAA!!notbase64\n" + text)
    assert [k.fingerprint for k in kh.lookup("10.0.0.9", 22)] == [a.get_fingerprint("sha256")]
    assert kh.lookup("10.0.0.10", 22) == []
    # An oversized or unreadable file refuses rather than trusting anew.
    path.write_text("x" * (2 << 20))
    with pytest.raises(BadConfig, match="larger than"):
        kh.lookup("10.0.0.9", 22)
    path.unlink()
    path.mkdir()
    with pytest.raises(BadConfig, match="cannot read"):
        kh.lookup("10.0.0.9", 22)


def test_host_key_config_is_checked() -> None:
    fp = "SHA256:" + "A" * 43
    assert CiscoXapiConfig(transport="ssh", host_key=fp + "=").host_key == fp
    for bad in ("MD5:aa:bb", "SHA256:short", "sha256:" + "A" * 43, "SHA256:" + "!" * 43):
        with pytest.raises(ValueError, match="ssh-keygen -lf"):
            CiscoXapiConfig(transport="ssh", host_key=bad)
    with pytest.raises(ValueError):
        normalise_fingerprint("SHA256:" + "A" * 43 + "\nxCommand")
    assert CiscoXapiConfig(transport="ssh").default_port() == 22


async def test_the_codec_dropping_the_session_reconnects(
    sim: CiscoSshSimulator, tmp_path: Path
) -> None:
    d = _driver(sim.port, tmp_path)
    await _up(d)
    try:
        await d.call("dial", {"number": "sip:a@b"})
        await eventually(lambda: [c["status"] for c in d.state["calls"]] == ["connected"])
        assert d.link is not None and d.link.connects == 1
        sim.drop_sessions()
        await eventually(lambda: d.status is not DriverStatus.OK, 10)
        await eventually(lambda: d.status is DriverStatus.OK, 15)
        assert d.link.connects == 2 and sim.logins == 2
        # The state was read again on the new session (the call is still up there).
        assert [c["status"] for c in d.state["calls"]] == ["connected"]
        await d.call("disconnect", {})
        await eventually(lambda: d.state["calls"] == [])
    finally:
        await d.stop()


async def test_a_hung_codec_is_dropped_and_found_again(
    sim: CiscoSshSimulator, tmp_path: Path
) -> None:
    d = _driver(sim.port, tmp_path, keepalive_s=0.5, timeout_ms=500)
    await _up(d)
    try:
        assert d.link is not None
        sim.mute = True
        # The keepalive (xStatus) goes unanswered: the link is dropped and reopened; the
        # new session's greeting never comes either, so it stays down meanwhile.
        await eventually(lambda: d.status is not DriverStatus.OK, 15)
        await asyncio.sleep(1.0)
        assert d.status is not DriverStatus.OK
        sim.mute = False
        await eventually(lambda: d.status is DriverStatus.OK, 15)
        assert d.link.connects >= 2
        await d.call("mute", {})
    finally:
        await d.stop()


async def test_too_many_sessions_then_a_free_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    s = CiscoSshSimulator(_model(), key_type="ed25519", max_sessions=1)
    await s.start()
    holder = _driver(s.port, None)
    d = _driver(s.port, tmp_path)
    try:
        await _up(holder)
        # The codec takes the login, then closes the session without a word.
        await d.start()
        await eventually(lambda: s.turned_away >= 1, 15)
        await eventually(lambda: d.status is not DriverStatus.CONNECTING, 10)
        assert d.status is not DriverStatus.OK
        assert [r for r in caplog.records if "too many sessions open?" in r.getMessage()]
        await holder.stop()
        await eventually(lambda: d.status is DriverStatus.OK, 15)
        await d.call("mute", {})
    finally:
        await d.stop()
        await holder.stop()
        await s.stop()


@pytest.mark.parametrize(
    "hostile",
    [
        'x" \nxCommand SystemUnit FactoryReset Confirm: Yes',
        "sip:a@b\r\nxCommand Call Disconnect",
        'sip:a"@b',
        "a\x1b[2J",
    ],
)
async def test_hostile_dial_strings_never_reach_the_line(
    sim: CiscoSshSimulator, tmp_path: Path, hostile: str
) -> None:
    d = _driver(sim.port, tmp_path)
    await _up(d)
    try:
        before = list(sim.model.commands)
        assert d.link is not None
        sent = d.link.bytes_out
        with pytest.raises(InvalidParams) as e:
            await d.call("dial", {"number": hostile})
        assert e.value.field == "number"
        assert d.link.bytes_out == sent
        await d.call("mute", {})
        assert sim.model.commands[len(before) :] == [("Audio/Microphones/Mute", {})]
        assert sim.model.calls == {}
    finally:
        await d.stop()


# --- OpenSSH's own client ----------------------------------------------------------------


def _openssh(
    port: int,
    password: str,
    script: str,
    known_hosts: str = "/dev/null",
    *,
    quiet: bool = True,
    terminal: bool = False,
) -> str:
    for tool in ("ssh", "sshpass", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (Makefile DEB_TEST_PACKAGES lists it)")
    strict = "no" if known_hosts == "/dev/null" else "accept-new"
    proc = subprocess.run(
        [
            "sshpass",
            "-e",
            "ssh",
            "-tt" if terminal else "-T",
            "-p",
            str(port),
            "-o",
            f"StrictHostKeyChecking={strict}",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            f"LogLevel={'ERROR' if quiet else 'INFO'}",
            "-o",
            "ConnectTimeout=20",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            "admin@127.0.0.1",
        ],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SSHPASS": password},
    )
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa", "ed25519"])
async def test_openssh_client_dials_the_simulator(key_type: str, tmp_path: Path) -> None:
    s = CiscoSshSimulator(_model(), key_type=key_type)  # type: ignore[arg-type]
    await s.start()
    kh = tmp_path / "openssh_known_hosts"
    try:
        # stdin stays open a moment so the answers arrive before the session ends.
        script = 'echo off\nxCommand Dial Number: "sip:nanxun@10.33.1.10" CallRate: 768\n'
        out = await asyncio.to_thread(_openssh, s.port, PASSWORD, script + _pause(), str(kh))
        assert out.startswith("Welcome to\n"), out
        assert "*r Login successful" in out
        assert "*r DialResult (status=OK):" in out
        assert "*r DialResult CallId: 1" in out
        assert [c[1] for c in s.model.commands] == [
            {"Number": "sip:nanxun@10.33.1.10", "CallRate": 768}
        ]
        # OpenSSH's fingerprint of the key it recorded is the one the driver pins.
        assert _ssh_keygen_fingerprint(kh) == s.fingerprint
        d = _driver(s.port, tmp_path, host_key=_ssh_keygen_fingerprint(kh))
        try:
            await _up(d)
        finally:
            await d.stop()
        # OpenSSH with a wrong password: refused, nothing reaches tshell.
        out = await asyncio.to_thread(_openssh, s.port, "nope", "xCommand Dial Number: x\n")
        assert "Permission denied" in out
        assert len(s.model.commands) == 1
    finally:
        await s.stop()


async def test_openssh_with_a_terminal_as_an_operator_types(sim: CiscoSshSimulator) -> None:
    # A terminal (ssh -tt) sends what is typed as is: Enter is CR; echo is on until off.
    script = 'xCommand Dial Number: "sip:wuxing@10.33.1.20"\rxStatus Call 1 Status\r'
    out = await asyncio.to_thread(
        functools.partial(_openssh, sim.port, PASSWORD, script + "bye\r", terminal=True)
    )
    assert 'xCommand Dial Number: "sip:wuxing@10.33.1.20"' in out  # echoed as typed
    assert "*r DialResult (status=OK):" in out
    assert "Bye." in out
    assert [c[0] for c in sim.model.commands] == ["Dial"]


def _pause() -> str:
    # sshpass feeds the script and closes stdin; an xStatus read gives the codec time to
    # answer the dial before the session closes (its reply ends with ** end / OK).
    return "xStatus Call 1 Status\n"


# --- the standalone simulator and the daemon -----------------------------------------------


async def test_wallctl_simulate_ssh_serves_a_pinned_driver(tmp_path: Path) -> None:
    key_file = tmp_path / "codec_key"
    keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_file)]
    await asyncio.to_thread(subprocess.run, keygen, check=True)
    pinned = _ssh_keygen_fingerprint(Path(f"{key_file}.pub"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wallctl",
        "simulate",
        "cisco-xapi",
        "--listen",
        "127.0.0.1:0",
        "--ssh",
        "--ssh-host-key",
        str(key_file),
        "--user",
        "ops",
        "--password",
        "pw 1",
        "--setup-ms",
        "0",
        "--ring-ms",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        where = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
        banner = (await asyncio.wait_for(proc.stderr.readline(), 10)).decode()
        assert pinned in banner and "tshell over ssh" in banner
        port = int(where.rpartition(":")[2])
        d = CiscoXapiDriver(
            DriverSetup(
                "codec-a",
                CiscoXapiConfig(transport="ssh", user="ops", host_key=pinned, retry_max_s=1),
                TcpEndpoint("127.0.0.1", port),
                "pw 1",
            )
        )
        await _up(d)
        try:
            await d.call("dial", {"number": "sip:huzhou@10.33.0.1"})
            await eventually(lambda: [c["status"] for c in d.state["calls"]] == ["connected"])
        finally:
            await d.stop()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == 0


async def test_ssh_beside_the_websocket_shares_one_codec(tmp_path: Path) -> None:
    from drivers import registry
    from drivers.registry import SimOptions

    options = {"ssh": "127.0.0.1:0", "ssh_key_type": "ed25519", "setup_ms": 0, "ring_ms": 0}
    running = await registry.get("cisco-xapi").serve(
        SimOptions(password=PASSWORD, user="admin", options=options)
    )
    where = running.describe()
    ssh_port = int(where.split("tshell over ssh on 127.0.0.1:")[1].split()[0])
    ws = CiscoXapiDriver(
        DriverSetup(
            "ws",
            CiscoXapiConfig(retry_max_s=1),
            TcpEndpoint("127.0.0.1", running.port),
            PASSWORD,
        )
    )
    ssh = _driver(ssh_port, tmp_path)
    try:
        await _up(ws)
        await _up(ssh)
        # Dialled over SSH, seen on the WebSocket: one codec, two faces.
        await ssh.call("dial", {"number": "sip:huzhou@10.33.0.1"})
        await eventually(lambda: [c["status"] for c in ws.state["calls"]] == ["connected"])
        await eventually(lambda: [c["status"] for c in ssh.state["calls"]] == ["connected"])
    finally:
        await ws.stop()
        await ssh.stop()
        await running.close()


def test_wallctl_simulate_refuses_bad_ssh_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from wallctl.cli import main

    listen = ["simulate", "cisco-xapi", "--listen", "127.0.0.1:0"]
    assert main([*listen, "--ssh", "--ssh-listen", "127.0.0.1:0"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main([*listen, "--ssh", "--ssh-host-key", "/nonexistent/key"]) == 2
    assert "ssh host key /nonexistent/key: No such file" in capsys.readouterr().err
    assert main([*listen, "--ssh", "--ssh-max-sessions", "0"]) == 2
    assert "--ssh-max-sessions must be within 1..1000" in capsys.readouterr().err
    huawei = ["simulate", "huawei-te", "--listen", "127.0.0.1:0", "--ssh"]
    assert main(huawei) == 2
    assert "are for cisco-xapi" in capsys.readouterr().err


async def test_device_config_over_ssh(tmp_path: Path) -> None:
    from drivers import registry
    from wallctl.config import Config  # noqa: F401  (before the sections that build on it)
    from wallctl.devices.config import DeviceConfig, device_problems
    from wallctl.devices.service import DeviceService, endpoint_for

    def dev(**over: Any) -> DeviceConfig:
        raw = {"id": "c", "name": "会议室终端", "protocol": "cisco-xapi", "transport": "ssh"}
        return DeviceConfig.model_validate({**raw, **over})

    proto = registry.get("cisco-xapi")
    cfg = dev(host="192.0.2.32")
    options = proto.config_model.model_validate(cfg.options())
    assert endpoint_for(cfg, proto, options) == TcpEndpoint("192.0.2.32", 22)
    assert endpoint_for(dev(host="h", port=2222), proto, options) == TcpEndpoint("h", 2222)
    assert [str(p) for p in device_problems([dev(host="h", host_key="SHA256:nope")])] == [
        "devices[0].host_key: must be a SHA256 fingerprint as `ssh-keygen -lf` prints it "
        "(SHA256:...)"
    ]
    assert [str(p) for p in device_problems([dev(serial="/dev/ttyS0")])] == [
        'devices[0].serial: transport = "ssh" needs host (and port), not a serial line'
    ]
    serial = CiscoXapiDriver(
        DriverSetup("c", options, SerialEndpoint("/dev/null", 115200), PASSWORD)
    )
    await serial.start()
    try:
        await eventually(lambda: serial.status is DriverStatus.BAD_CONFIG, 10)
        assert "needs a host and port" in serial.status_detail
    finally:
        await serial.stop()
    # simulate = true: the simulator's SSH server, a new key each start, never recorded.
    svc = DeviceService([dev(simulate=True)], state_dir=tmp_path)
    await svc.start()
    try:
        assert await svc.wait_ready(20), svc.devices["c"].driver.status_detail
        await svc.devices["c"].driver.call("mute", {})
        assert not (tmp_path / KNOWN_HOSTS_NAME).exists()
    finally:
        await svc.stop()


async def test_conference_codec_over_ssh_in_the_daemon(tmp_path: Path) -> None:
    from wallctl.config import parse_config
    from wallctl.daemon import Daemon

    s = CiscoSshSimulator(_model(), key_type="ed25519")
    await s.start()
    raw: dict[str, Any] = {
        "daemon": {"state_dir": str(tmp_path), "durability": "normal"},
        "http": {"port": 0},
        "api": {"port": 0},
        "render": {"enabled": False},
        "wall": {
            "id": "main",
            "tiles": {
                "rows": 2,
                "cols": 2,
                "width_mm": 1209.6,
                "height_mm": 680.4,
                "width_px": 1920,
                "height_px": 1080,
            },
        },
        "sources": [{"id": "conf-upper", "name": "市级会议", "kind": "matrix"}],
        "devices": [
            {
                "id": "codec-a",
                "name": "市级会议终端",
                "protocol": "cisco-xapi",
                "transport": "ssh",
                "host": "127.0.0.1",
                "port": s.port,
                "password": PASSWORD,
                "retry_max_s": 1,
            }
        ],
        "conference": {
            "connect_timeout_s": 5,
            "codecs": [
                {"id": "upper", "name": "上级会议", "device": "codec-a", "source": "conf-upper"}
            ],
            "centres": [
                {"id": "huzhou", "name": "湖州市指挥中心", "level": "city", "sip": "sip:hz@x"}
            ],
        },
    }
    daemon = Daemon(parse_config(raw))
    task = asyncio.create_task(daemon.run())
    try:
        for _ in range(500):
            rt = daemon.runtime
            if rt is not None and "conference" in rt.services:
                break
            await asyncio.sleep(0.02)
        assert daemon.runtime is not None
        devices = daemon.runtime.services["devices"]
        # The device service starts its drivers as the daemon comes up.
        await eventually(lambda: "codec-a" in devices.devices, 15)
        assert await devices.wait_ready(15)
        # Trusted on first use and recorded in the daemon's state directory.
        assert _ssh_keygen_fingerprint(tmp_path / KNOWN_HOSTS_NAME) == s.fingerprint
        result = await daemon.runtime.services["conference"].call(centre_id="huzhou", wait=True)
        assert result["ok"] is True, result
        assert [c for c in s.model.commands if c[0] == "Dial"] == [("Dial", {"Number": "sip:hz@x"})]
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 20) == 0
        await s.stop()
