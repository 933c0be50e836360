"""CLI: ``wallctl devices ...`` (through the daemon's API) and ``wallctl simulate``.

    wallctl devices list [--json]
    wallctl devices status ID [--json]
    wallctl devices call ID ACTION [key=value ...] [--json]
    wallctl devices route ID INPUT OUTPUT [OUTPUT ...] [--level av|video|audio]
    wallctl devices watch [--device ID] [--count N] [--json]
    wallctl simulate PROTOCOL (--listen HOST:PORT | --pty) [--size 16x16]
                     [--user U] [--password P | --password-file F] [--delay-ms N]
                     [--baud N] [--option KEY=VALUE ...]

``call`` values are read as JSON when they parse (``on=true``, ``outputs=[1,2]``,
``input=3``) and as text otherwise (``source=hdmi1``). ``simulate`` runs a protocol's
simulator on its own, so integrators can rehearse without hardware; with ``--pty`` it
prints the pseudo-terminal path to give a driver (or a terminal program). ``--option``
values (read the same way) are the driver options the simulated device plays
(``--option display_id=3 --option warmup_s=8``); extensions add flags of their own and
register a function in the parser's ``option_hooks`` default that turns them into
options (``wallctl.conference.simulate``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wallctl.api.cli_commands import EXIT_INVALID, EXIT_OK, _connection_args, _run


def add_parser(sub: Any) -> None:
    dev = sub.add_parser(
        "devices",
        help="matrix switchers and displays, through the daemon's API",
        description="matrix switchers and displays, through the daemon's API",
    )
    dsub = dev.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    p = dsub.add_parser("list", help="every device with its status")
    _connection_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = dsub.add_parser("status", help="one device: status, state, actions")
    _connection_args(p)
    p.add_argument("device")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = dsub.add_parser("call", help="run one of a device's declared actions")
    _connection_args(p)
    p.add_argument("device")
    p.add_argument("action")
    p.add_argument("args", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_call)

    p = dsub.add_parser("route", help="tie a matrix input to outputs (numbers or names)")
    _connection_args(p)
    p.add_argument("device")
    p.add_argument("input")
    p.add_argument("outputs", nargs="+")
    p.add_argument("--level", choices=["av", "video", "audio"], default="av")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_route)

    p = dsub.add_parser("watch", help="print device events as they happen (Ctrl-C stops)")
    _connection_args(p)
    p.add_argument("--device", help="only this device's events")
    p.add_argument("--count", type=int, default=0, help="stop after N events (0: never)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_watch)

    sim = sub.add_parser(
        "simulate",
        help="run a device simulator (matrix, display, codec, camera) on a port or a pty",
        description="run a device simulator on a TCP port or a pseudo-terminal",
    )
    sim.add_argument(
        "protocol",
        help="extron-sis, kramer-p3000, videohub, samsung-mdc, lg, cisco-xapi, huawei-te or onvif",
    )
    where = sim.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", metavar="HOST:PORT", help="TCP address to listen on")
    where.add_argument("--pty", action="store_true", help="open a pseudo-terminal")
    sim.add_argument("--size", default="16x16", help="matrix size INPUTSxOUTPUTS")
    sim.add_argument("--user", help="user name the device accepts (protocols with accounts)")
    secret = sim.add_mutually_exclusive_group()
    secret.add_argument("--password", help="password the device asks for")
    secret.add_argument("--password-file", type=Path, help="file holding that password")
    sim.add_argument("--delay-ms", type=int, default=0, help="reply delay (ms)")
    sim.add_argument(
        "--baud", type=int, default=9600, help="pace a pty at this baud rate (0: unpaced)"
    )
    sim.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a driver option the simulated device plays (display_id=3, warmup_s=8, tls=false)",
    )
    # Extensions append functions (args -> options dict) here; see the module docstring.
    hooks: list[Callable[[argparse.Namespace], dict[str, Any]]] = []
    sim.set_defaults(func=cmd_simulate, option_hooks=hooks)


# --- devices -------------------------------------------------------------------------------


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=1))


def cmd_list(args: argparse.Namespace) -> int:
    code, result = _run(args, "device.list", {})
    if code != EXIT_OK:
        return code
    if args.json:
        _print_json(result)
        return EXIT_OK
    for d in result["devices"]:
        detail = f"  ({d['detail']})" if d.get("detail") else ""
        print(f"{d['id']:<16} {d['protocol']:<14} {d['status']:<18} {d['name']}{detail}")
        for a in d.get("actions", []):
            print(f"    {a['name']:<10} {a['description']}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    code, result = _run(args, "device.status", {"device": args.device})
    if code != EXIT_OK:
        return code
    r = result["result"]
    if args.json:
        _print_json(r)
        return EXIT_OK
    print(f"{r['id']} ({r['name']}): {r['protocol']}, {r['status']} {r.get('detail', '')}")
    stats = r.get("stats", {})
    if stats:
        print("  " + ", ".join(f"{k} {v}" for k, v in stats.items() if v not in (None, "")))
    for key, value in sorted(r.get("state", {}).items()):
        print(f"  {key} = {json.dumps(value, ensure_ascii=False)}")
    return EXIT_OK


def parse_kv(items: list[str]) -> dict[str, Any]:
    """``["on=true", "source=hdmi1"]`` -> {"on": True, "source": "hdmi1"}."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, not {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def cmd_call(args: argparse.Namespace) -> int:
    try:
        params = parse_kv(args.args)
    except ValueError as e:
        print(f"wallctl: {e}", file=sys.stderr)
        return EXIT_INVALID
    code, result = _run(
        args, "device.call", {"device": args.device, "action": args.action, "args": params}
    )
    if code == EXIT_OK:
        _print_json(result["result"])
    return code


def _port(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def cmd_route(args: argparse.Namespace) -> int:
    params = {
        "device": args.device,
        "input": _port(args.input),
        "outputs": [_port(o) for o in args.outputs],
        "level": args.level,
    }
    code, result = _run(args, "matrix.route", params)
    if code != EXIT_OK:
        return code
    if args.json:
        _print_json(result)
    else:
        for t in result["ties"]:
            state = "ok" if t["ok"] else f"FAILED {t.get('code', '')} {t.get('message', '')}"
            print(f"in {t['input']} -> out {t['output']} ({t['level']}): {state}")
    return EXIT_OK if result["ok"] else 1


def describe_event(ev: dict[str, Any]) -> str:
    """One line a person reads at 3 a.m. for a device event."""
    d = ev.get("data", {})
    kind = ev.get("type", "")
    who = d.get("device", "?")
    if kind == "matrix.route":
        src = f"in {d['input']}" + (f" {d['input_name']}" if d.get("input_name") else "")
        dst = f"out {d['output']}" + (f" {d['output_name']}" if d.get("output_name") else "")
        return f"{who}: {src} -> {dst} ({d.get('level')}, {d.get('origin')})"
    if kind == "device.status":
        detail = f" ({d['detail']})" if d.get("detail") else ""
        return f"{who}: {d.get('status')}{detail}"
    if kind == "device.state":
        value = json.dumps(d.get("value"), ensure_ascii=False)
        return f"{who}: {d.get('key')} = {value} ({d.get('origin')})"
    return f"{who}: {kind} {json.dumps(d, ensure_ascii=False)}"


def cmd_watch(args: argparse.Namespace) -> int:
    from wallctl.api.cli_commands import _password
    from wallctl.client import ApiError, ConnectionRefused, connect

    async def go() -> int:
        client = await connect(
            args.url, account=args.account, password=_password(args), subscriptions=["device"]
        )
        seen = 0
        try:
            while not args.count or seen < args.count:
                ev = await client.events.get()
                if args.device and ev.get("data", {}).get("device") != args.device:
                    continue
                if ev.get("type") == "device.state" and not args.json:
                    key = str(ev.get("data", {}).get("key", ""))
                    if key.startswith("tie."):
                        continue  # shown as matrix.route
                seen += 1
                line = json.dumps(ev, ensure_ascii=False) if args.json else describe_event(ev)
                print(line, flush=True)
        finally:
            await client.close()
        return EXIT_OK

    try:
        return asyncio.run(go())
    except (ApiError, ConnectionRefused, OSError) as e:
        print(f"wallctl: {e}", file=sys.stderr)
        return 1


# --- simulate ------------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> int:
    from drivers import registry
    from drivers.matrix import parse_size
    from drivers.registry import SimOptions

    try:
        proto = registry.get(args.protocol)
    except KeyError as e:
        print(f"wallctl: {e.args[0]}", file=sys.stderr)
        return EXIT_INVALID
    try:
        inputs, outputs = parse_size(args.size)
    except ValueError as e:
        print(f"wallctl: --size: {e}", file=sys.stderr)
        return EXIT_INVALID
    if not 0 <= args.delay_ms <= 60000 or args.baud < 0:
        print("wallctl: --delay-ms must be 0..60000 and --baud >= 0", file=sys.stderr)
        return EXIT_INVALID
    password = args.password
    if args.password_file is not None:
        try:
            password = args.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            print(f"wallctl: --password-file: {e.strerror}", file=sys.stderr)
            return EXIT_INVALID
    host, port = "127.0.0.1", 0
    if args.listen:
        host, sep, port_text = args.listen.rpartition(":")
        if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            print("wallctl: --listen wants HOST:PORT", file=sys.stderr)
            return EXIT_INVALID
        port = int(port_text)
        host = host.strip("[]") or "0.0.0.0"
    try:
        extra = parse_kv(args.option)
    except ValueError as e:
        print(f"wallctl: --option: {e}", file=sys.stderr)
        return EXIT_INVALID
    problem = _check_driver_options(proto, extra)
    if problem is not None:
        print(f"wallctl: --option {problem}", file=sys.stderr)
        return EXIT_INVALID
    try:
        for hook in args.option_hooks:
            extra.update(hook(args))
    except ValueError as e:
        print(f"wallctl: {e}", file=sys.stderr)
        return EXIT_INVALID
    options = SimOptions(
        inputs, outputs, password or None, args.delay_ms / 1000, user=args.user, options=extra
    )
    return asyncio.run(_simulate(proto, options, host, port, args.pty, args.baud))


def _check_driver_options(proto: Any, options: dict[str, Any]) -> str | None:
    """``--option`` keys are the protocol's driver options, checked by its config model
    as in a ``[[devices]]`` entry (values normalised in place); the problem, or None."""
    from pydantic import ValidationError

    from drivers.contract import validation_field

    known = proto.config_model.model_fields
    for key in options:
        if key not in known:
            return f"{key}: not an option of {proto.name} (known: {', '.join(sorted(known))})"
    try:
        checked = proto.config_model.model_validate(options)
    except ValidationError as e:
        path, reason = validation_field(e)
        return f"{path}: {reason}" if path else reason
    options.update(checked.model_dump(mode="json", include=set(options)))
    return None


async def _simulate(
    proto: Any, options: Any, host: str, port: int, use_pty: bool, baud: int
) -> int:
    from drivers.simulator import RunningSimulator, serve_pty

    srv: RunningSimulator
    try:
        if use_pty:
            pty = await serve_pty(proto.simulator(options), baud or None)
            srv = pty
            print(pty.path, flush=True)
            print(f"{pty.describe()} ({baud or 'unpaced'} baud); Ctrl-C stops", file=sys.stderr)
        else:
            # The protocol's own host (HTTPS, WebSocket) or its device model on TCP.
            srv = await proto.serve(options, host, port)
            print(f"{srv.host}:{srv.port}", flush=True)
            print(f"{srv.describe()}; Ctrl-C stops", file=sys.stderr)
    except (NotImplementedError, ValueError) as e:
        print(f"wallctl: {e}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as e:
        print(f"wallctl: cannot listen on {host}:{port}: {e.strerror or e}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await srv.close()
    return EXIT_OK
