"""``wallctl simulate cisco-xapi|huawei-te``: the conference codec simulators, standalone.

The framework's ``wallctl simulate`` hosts byte-stream simulators (matrix, display). The
codecs speak HTTP: Cisco's xAPI WebSocket at ``/ws`` (and tshell), Huawei's ``action.cgi``
over HTTPS. :func:`extend` adds their options to that command and sends these two
protocols here; every other protocol still goes to the framework's command.

    wallctl simulate cisco-xapi --listen 127.0.0.1:8080 --user admin --password secret
    wallctl simulate cisco-xapi --pty                      # tshell on a pseudo-terminal
    wallctl simulate huawei-te --listen 127.0.0.1:8443 --user api --password Change_Me
    wallctl simulate huawei-te --listen 127.0.0.1:8080 --plain ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from typing import Any

from drivers.cisco_xapi.farend import FarEnd

CODEC_PROTOCOLS = ("cisco-xapi", "huawei-te")


def extend(sub: Any) -> None:
    """Add the codec simulators' options to ``wallctl simulate`` (if it exists)."""
    parser = getattr(sub, "choices", {}).get("simulate")
    if parser is None:
        return
    g = parser.add_argument_group("conference codecs (cisco-xapi, huawei-te)")
    g.add_argument("--user", help="user name the codec accepts (default: admin / api)")
    g.add_argument("--plain", action="store_true", help="huawei-te: HTTP instead of HTTPS")
    g.add_argument("--tshell", metavar="HOST:PORT", help="cisco-xapi: tshell on TCP as well")
    g.add_argument("--setup-ms", type=int, default=200, help="dialling until reached (ms)")
    g.add_argument("--ring-ms", type=int, default=1000, help="ringing until answered (ms)")
    g.add_argument("--drop-after-ms", type=int, default=2000, help="'drop' numbers: call length")
    g.add_argument("--max-call-rate", type=int, default=6000, help="kbps the network grants")
    framework: Callable[[argparse.Namespace], int] = parser.get_default("func")

    def dispatch(args: argparse.Namespace) -> int:
        if args.protocol in CODEC_PROTOCOLS:
            return cmd_simulate_codec(args)
        return framework(args)

    parser.set_defaults(func=dispatch)


def _address(text: str) -> tuple[str, int] | None:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    return host.strip("[]") or "0.0.0.0", int(port)


def cmd_simulate_codec(args: argparse.Namespace) -> int:
    for name in ("setup_ms", "ring_ms", "drop_after_ms"):
        if not 0 <= getattr(args, name) <= 600000:
            print(f"wallctl: --{name.replace('_', '-')} must be 0..600000", file=sys.stderr)
            return 2
    password = args.password or ""
    if args.password_file is not None:
        password = args.password_file.read_text(encoding="utf-8").rstrip("\r\n")
    farend = FarEnd(
        setup_s=args.setup_ms / 1000,
        ring_s=args.ring_ms / 1000,
        drop_after_s=args.drop_after_ms / 1000,
        max_call_rate=args.max_call_rate,
    )
    listen = _address(args.listen) if args.listen else ("127.0.0.1", 0)
    tshell = _address(args.tshell) if getattr(args, "tshell", None) else None
    if listen is None or (args.tshell and tshell is None):
        print("wallctl: addresses are HOST:PORT", file=sys.stderr)
        return 2
    return asyncio.run(_serve(args, password, farend, listen, tshell))


async def _serve(
    args: argparse.Namespace,
    password: str,
    farend: FarEnd,
    listen: tuple[str, int],
    tshell: tuple[str, int] | None,
) -> int:
    stopper: Callable[[], Any]
    try:
        if args.protocol == "cisco-xapi":
            from drivers.cisco_xapi.simulator import CiscoModel, CiscoSimulator

            cisco = CiscoSimulator(CiscoModel(args.user or "admin", password, farend))
            if args.pty:
                path = await cisco.start_pty(login=False, baud=args.baud or None)
                print(path, flush=True)
                print(f"cisco-xapi tshell on {path}; Ctrl-C stops", file=sys.stderr)
            else:
                await cisco.start(*listen)
                print(f"{listen[0]}:{cisco.port}", flush=True)
                print(
                    f"cisco-xapi on ws://{listen[0]}:{cisco.port}/ws; Ctrl-C stops", file=sys.stderr
                )
            if tshell is not None:
                await cisco.start_tshell(*tshell)
                print(f"cisco-xapi tshell on tcp {tshell[0]}:{cisco.tshell_port}", file=sys.stderr)
            stopper = cisco.stop
        else:
            from drivers.huawei_te.simulator import HuaweiModel, HuaweiSimulator

            if args.pty:
                print("wallctl: huawei-te speaks HTTP(S): use --listen", file=sys.stderr)
                return 2
            huawei = HuaweiSimulator(HuaweiModel(args.user or "api", password, farend))
            await huawei.start(*listen, plain=args.plain)
            scheme = "http" if args.plain else "https"
            print(f"{listen[0]}:{huawei.port}", flush=True)
            print(
                f"huawei-te on {scheme}://{listen[0]}:{huawei.port}/action.cgi; Ctrl-C stops",
                file=sys.stderr,
            )
            stopper = huawei.stop
    except OSError as e:
        print(f"wallctl: cannot listen: {e.strerror or e}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await stopper()
    return 0
