"""``wallctl conference call|hangup|status``: conferencing through the daemon's API.

wallctl conference call nanxun            # dial, wait until the far end is on the wall
wallctl conference call --number sip:x@y --codec upper --no-wait
wallctl conference hangup [--link upper | --centre nanxun]
wallctl conference status [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from wallctl.api.cli_commands import EXIT_FAILED, EXIT_OK, _connection_args, _run


def add_parser(sub: Any) -> None:
    from wallctl.conference.simulate import extend

    extend(sub)  # `wallctl simulate cisco-xapi|huawei-te`
    conf = sub.add_parser(
        "conference",
        help="video conferences with other centres, through the daemon's API",
        description="video conferences with other centres, through the daemon's API",
    )
    csub = conf.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    p = csub.add_parser(
        "call",
        help="call a centre of the directory (or a number)",
        description="call a centre of the directory (or a number); by default wait until "
        "its far end is on the wall or the call failed",
    )
    _connection_args(p)
    p.add_argument("centre", nargs="?", help="centre id (see `wallctl conference status`)")
    p.add_argument("--number", help="dial this SIP URI / H.323 ID / E.164 number instead")
    p.add_argument("--codec", help="the link to use (default: a free one)")
    p.add_argument("--no-wait", action="store_true", help="return once the call is placed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_call)
    p = csub.add_parser("hangup", help="hang up a call", description="hang up a call")
    _connection_args(p)
    p.add_argument("--link", help="the link whose call ends")
    p.add_argument("--centre", help="the centre whose call ends")
    p.set_defaults(func=cmd_hangup)
    p = csub.add_parser(
        "accept",
        help="answer a call ringing in (it goes onto the wall)",
        description="answer a call ringing in; once connected its far end opens on the wall",
    )
    _connection_args(p)
    p.add_argument("--link", help="the link whose codec rings (default: the only one)")
    p.set_defaults(func=cmd_accept)
    p = csub.add_parser(
        "status", help="links, calls and the directory", description="links, calls, directory"
    )
    _connection_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)


def cmd_call(args: argparse.Namespace) -> int:
    if (args.centre is None) == (args.number is None):
        print("wallctl: give a centre or --number", flush=True)
        return 2
    params: dict[str, Any] = {"wait": not args.no_wait}
    if args.centre is not None:
        params["centre"] = args.centre
    else:
        params["number"] = args.number
    if args.codec:
        params["codec"] = args.codec
    code, result = _run(args, "conference.call", params)
    if code != EXIT_OK:
        return code
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
    elif "ok" in result:
        target = result.get("centre_name") or params.get("number")
        if result["ok"]:
            print(f"{target}: connected on link {result['link']}, window {result['window']}")
        else:
            print(f"{target}: not connected on link {result['link']}: {result['reason_text']}")
    else:
        print(f"{result.get('centre_name')}: {result['state']} on link {result['link']}")
    return EXIT_OK if result.get("ok", True) else EXIT_FAILED


def cmd_accept(args: argparse.Namespace) -> int:
    code, result = _run(args, "conference.accept", {"link": args.link} if args.link else {})
    if code != EXIT_OK:
        return code
    target = result.get("centre_name") or result.get("number")
    if result.get("ok"):
        print(f"{target}: connected on link {result['link']}, window {result['window']}")
        return EXIT_OK
    print(f"{target}: not connected on link {result['link']}: {result.get('reason_text')}")
    return EXIT_FAILED


def cmd_hangup(args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("link", args.link), ("centre", args.centre)) if v}
    code, result = _run(args, "conference.hangup", params)
    if code == EXIT_OK:
        print(f"link {result['link']}: call with {result.get('centre_name')} ended")
    return code


def _ts(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S") if ts else "-"


def cmd_status(args: argparse.Namespace) -> int:
    code, result = _run(args, "conference.status", {})
    if code != EXIT_OK:
        return code
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return EXIT_OK
    for lk in result["links"]:
        line = f"{lk['link']:<10} {lk['name']:<12} codec {lk['codec']} ({lk['codec_status']})  "
        if lk["state"] == "idle":
            last = lk.get("last_ended") or lk.get("last_result")
            why = f"  last: {last.get('centre_name')} {last.get('reason_text')}" if last else ""
            print(line + "idle" + why)
        else:
            print(
                line + f"{lk['state']} with {lk['centre_name']} since {_ts(lk['since'])}"
                f"{'  muted' if lk.get('muted') else ''}"
                f"{'  window ' + lk['window'] if lk.get('window') else ''}"
            )
    for p in result.get("problems", []):
        print(f"problem: {p}")
    return EXIT_OK
