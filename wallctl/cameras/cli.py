"""CLI for installers: ``wallctl cameras info|discover`` and ``wallctl simulate onvif``.

    wallctl cameras info 192.168.1.64 --user admin          # password from a prompt
    wallctl cameras info cam.local:8000 --user admin --password-file /etc/wallctl/cam.pw
    WALLCTL_CAMERA_PASSWORD=... wallctl cameras info 10.0.0.5 --user admin --json
    wallctl cameras discover [--timeout 3] [--interface 10.0.0.1] [--write-config cams.toml]
    wallctl simulate onvif --listen 127.0.0.1:8000 --password secret [--rtsp URI]

These talk to the camera directly (not through the daemon). Stream URIs are printed
without credentials. ``info`` exits 1 with a plain reason when the camera is unreachable,
is not ONVIF or refuses the password; 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
PASSWORD_ENV = "WALLCTL_CAMERA_PASSWORD"


def add_parser(sub: Any) -> None:
    extend_simulate(sub)
    cams = sub.add_parser(
        "cameras",
        help="ONVIF cameras: information and discovery (talks to cameras directly)",
        description="ONVIF cameras: information and discovery (talks to cameras directly)",
    )
    csub = cams.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    p = csub.add_parser(
        "info",
        help="device information, profiles, PTZ and presets of one camera",
        description="device information, profiles (stream URIs without credentials), PTZ "
        f"support and presets. Password: --password-file, ${PASSWORD_ENV}, or a prompt.",
    )
    p.add_argument("address", metavar="HOST[:PORT]", help="the camera (port 80 by default)")
    p.add_argument("--user", required=True, help="ONVIF user name")
    p.add_argument("--password-file", type=Path, help="file holding the password")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per request (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)
    d = csub.add_parser(
        "discover",
        help="find ONVIF cameras on the local network (WS-Discovery)",
        description="send a WS-Discovery probe and list the cameras that answer",
    )
    d.add_argument("--timeout", type=float, default=3.0, help="seconds to wait (default 3)")
    d.add_argument("--interface", metavar="ADDRESS", help="local IPv4 address to probe from")
    d.add_argument("--json", action="store_true", help="print JSON")
    d.add_argument(
        "--write-config",
        metavar="FILE",
        help="write a [[devices]] snippet for the cameras found ('-': standard output)",
    )
    d.set_defaults(func=cmd_discover)


# --- info ------------------------------------------------------------------------------------


def split_address(text: str) -> tuple[str, int] | None:
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?|([^:\s\[\]]+)(?::(\d{1,5}))?", text)
    if m is None:
        return None
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4) or 80)
    if not 1 <= port <= 65535 or len(host) > 253:
        return None
    return host, port


def _password(args: argparse.Namespace) -> str | None:
    if args.password_file is not None:
        try:
            return str(args.password_file.read_text(encoding="utf-8").rstrip("\r\n"))
        except OSError as e:
            print(f"wallctl: --password-file: {e.strerror}", file=sys.stderr)
            return None
    env = os.environ.get(PASSWORD_ENV)
    if env is not None:
        return env
    if not sys.stdin.isatty():
        print(f"wallctl: no password: use --password-file or ${PASSWORD_ENV}", file=sys.stderr)
        return None
    return getpass.getpass(f"password for {args.user}: ")


def cmd_info(args: argparse.Namespace) -> int:
    addr = split_address(args.address)
    if addr is None:
        print(f"wallctl: {args.address!r} is not HOST[:PORT]", file=sys.stderr)
        return EXIT_INVALID
    if not 0.1 <= args.timeout <= 120:
        print("wallctl: --timeout must be 0.1..120 seconds", file=sys.stderr)
        return EXIT_INVALID
    password = _password(args)
    if password is None:
        return EXIT_INVALID
    return asyncio.run(_info(addr[0], addr[1], args.user, password, args.timeout, args.json))


async def _info(
    host: str, port: int, user: str, password: str, per_call_s: float, as_json: bool
) -> int:
    from drivers.errors import AuthFailed, DeviceOffline, DeviceTimeout, DriverError
    from drivers.onvif.client import CameraClient, NotOnvif, Unsupported

    client = CameraClient(host, port, user, password, timeout_s=per_call_s)
    where = f"{host}:{port}"
    try:
        info = await client.connect()
        presets: list[dict[str, str]] | None = None
        ptz_error = ""
        if info.ptz:
            try:
                presets = [{"token": p.token, "name": p.name} for p in await client.presets()]
            except (Unsupported, DriverError) as e:
                ptz_error = e.message
    except AuthFailed:
        print(f"wallctl: {where}: wrong user name or password", file=sys.stderr)
        return EXIT_FAILED
    except (DeviceOffline, DeviceTimeout) as e:
        print(f"wallctl: {where}: unreachable ({e.message})", file=sys.stderr)
        return EXIT_FAILED
    except NotOnvif:
        print(f"wallctl: {where}: not an ONVIF device", file=sys.stderr)
        return EXIT_FAILED
    except DriverError as e:
        print(f"wallctl: {where}: {e.message}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await client.close()
    out: dict[str, Any] = {
        "address": where,
        "manufacturer": info.manufacturer,
        "model": info.model,
        "firmware": info.firmware,
        "serial": info.serial,
        "clock_offset_s": None if info.clock_offset_s is None else round(info.clock_offset_s, 1),
        "ptz": info.ptz,
        "events": info.events,
        "profiles": [
            {
                "token": p.token,
                "name": p.name,
                "width": p.width,
                "height": p.height,
                "codec": p.codec,
                "uri": p.uri,
            }
            for p in client.profiles
        ],
        "presets": presets,
    }
    if as_json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"{info.manufacturer} {info.model}  firmware {info.firmware}  serial {info.serial}")
    if info.clock_offset_s is not None:
        flag = "" if info.clock_ok else "  (WARNING: more than 5 s off; set up NTP)"
        print(f"clock offset: {info.clock_offset_s:+.1f} s{flag}")
    print("profiles:")
    for p in client.profiles:
        size = f"{p.width}x{p.height}" if p.width and p.height else "?"
        print(f"  {p.token:<16} {p.name:<20} {size:>10} {p.codec or '?':<6} {p.uri or '-'}")
    print(f"PTZ: {'yes' if info.ptz else 'no'}{f' ({ptz_error})' if ptz_error else ''}")
    if presets is not None:
        print("presets:" if presets else "presets: none")
        for pr in presets:
            print(f"  {pr['token']:<8} {pr['name']}")
    print(f"events: {'PullPoint' if info.events else 'no'}")
    return EXIT_OK


# --- discover --------------------------------------------------------------------------------


def cmd_discover(args: argparse.Namespace) -> int:
    from drivers.onvif.discovery import discover

    if not 0.2 <= args.timeout <= 60:
        print("wallctl: --timeout must be 0.2..60 seconds", file=sys.stderr)
        return EXIT_INVALID
    try:
        matches = asyncio.run(discover(args.timeout, args.interface))
    except OSError as e:
        print(f"wallctl: cannot probe: {e.strerror or e}", file=sys.stderr)
        return EXIT_FAILED
    rows = []
    for m in matches:
        addr = _xaddr_host(m.xaddrs)
        rows.append(
            {
                "address": addr,
                "sender": m.sender,
                "manufacturer": m.scope("name"),
                "model": m.scope("hardware"),
                "endpoint": m.endpoint,
                "xaddrs": list(m.xaddrs),
                "scopes": list(m.scopes),
            }
        )
    if args.write_config:
        text = config_snippet(rows)
        if args.write_config == "-":
            sys.stdout.write(text)
        else:
            try:
                Path(args.write_config).write_text(text, encoding="utf-8")
            except OSError as e:
                print(f"wallctl: --write-config: {e.strerror}", file=sys.stderr)
                return EXIT_FAILED
            print(f"wrote {len(rows)} camera(s) to {args.write_config}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    elif args.write_config != "-":
        if not rows:
            print("no ONVIF device answered", file=sys.stderr)
        for r in rows:
            print(f"{r['address']:<24} {r['manufacturer']:<16} {r['model']:<20} {r['xaddrs'][0]}")
            for s in r["scopes"]:
                print(f"    {s}")
    return EXIT_OK


def _xaddr_host(xaddrs: tuple[str, ...]) -> str:
    from urllib.parse import urlsplit

    for x in xaddrs:
        with contextlib.suppress(ValueError):
            parts = urlsplit(x)
            if parts.hostname:
                host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
                return f"{host}:{parts.port or 80}"
    return ""


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def config_snippet(rows: list[dict[str, Any]]) -> str:
    """``[[devices]]`` and ``[[sources]]`` entries for discovered cameras (no secrets)."""
    out = ["# Cameras found by `wallctl cameras discover`: set user and password_file.\n"]
    for i, r in enumerate(rows, 1):
        host, _, port = r["address"].rpartition(":")
        name = " ".join(x for x in (r["manufacturer"], r["model"]) if x) or f"Camera {i}"
        dev = f"cam{i}"
        out.append(
            f"\n[[devices]]\nid = {_toml_str(dev)}\nname = {_toml_str(name[:64])}\n"
            f'protocol = "onvif"\nhost = {_toml_str(host.strip("[]"))}\nport = {int(port or 80)}\n'
            f'user = "admin"\npassword_file = "/etc/wallctl/{dev}.pw"\n'
            f"\n[[sources]]\nid = {_toml_str(dev)}\nname = {_toml_str(name[:64])}\n"
            f'kind = "onvif"\nurl = "onvif://{dev}"\n'
        )
    return "".join(out)


# --- simulate onvif --------------------------------------------------------------------------


def extend_simulate(sub: Any) -> None:
    """Send ``wallctl simulate onvif`` here; every other protocol to the command before."""
    parser = getattr(sub, "choices", {}).get("simulate")
    if parser is None:
        return
    g = parser.add_argument_group("onvif")
    known = parser._option_string_actions
    if "--user" not in known:
        g.add_argument("--user", help="user name the device accepts (default: admin)")
    g.add_argument("--rtsp", metavar="URI", help="onvif: stream URI the profiles announce")
    g.add_argument("--no-ptz", action="store_true", help="onvif: a fixed camera (no PTZ)")
    g.add_argument("--discovery", action="store_true", help="onvif: answer WS-Discovery probes too")
    before: Callable[[argparse.Namespace], int] = parser.get_default("func")

    def dispatch(args: argparse.Namespace) -> int:
        if args.protocol == "onvif":
            return cmd_simulate_onvif(args)
        return before(args)

    parser.set_defaults(func=dispatch)


def cmd_simulate_onvif(args: argparse.Namespace) -> int:
    if args.pty:
        print("wallctl: onvif speaks HTTP: use --listen HOST:PORT", file=sys.stderr)
        return EXIT_INVALID
    addr = split_address(args.listen or "")
    if addr is None and args.listen and args.listen.endswith(":0"):
        addr = (args.listen[:-2].strip("[]"), 0)
    if addr is None:
        print("wallctl: --listen wants HOST:PORT", file=sys.stderr)
        return EXIT_INVALID
    password = args.password or os.environ.get(PASSWORD_ENV) or "admin"
    if args.password_file is not None:
        try:
            password = args.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            print(f"wallctl: --password-file: {e.strerror}", file=sys.stderr)
            return EXIT_INVALID
    return asyncio.run(_simulate(addr[0], addr[1], args, password))


async def _simulate(host: str, port: int, args: argparse.Namespace, password: str) -> int:
    from drivers.onvif.discovery import Responder
    from drivers.onvif.simulator import FakeCamera

    cam = FakeCamera(user=args.user or "admin", password=password, host=host, ptz=not args.no_ptz)
    if args.rtsp:
        for p in cam.profiles:
            p.stream_uri = args.rtsp
    cam.delay_s = max(0.0, args.delay_ms / 1000)
    try:
        await cam.start(port)
    except OSError as e:
        print(f"wallctl: cannot listen: {e.strerror or e}", file=sys.stderr)
        return EXIT_FAILED
    responder = None
    if args.discovery:
        responder = Responder(host, [f"{cam.base}/onvif/device_service"], cam.scopes())
        try:
            await responder.start()
        except OSError as e:
            print(f"wallctl: cannot answer discovery: {e.strerror or e}", file=sys.stderr)
            await cam.stop()
            return EXIT_FAILED
    print(f"{host}:{cam.port}", flush=True)
    print(f"onvif on {cam.base}/onvif/device_service; Ctrl-C stops", file=sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if responder is not None:
        responder.close()
    await cam.stop()
    return EXIT_OK
