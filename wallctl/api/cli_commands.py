"""CLI commands that talk to a running daemon through the control API.

``wallctl.cli`` calls :func:`add_parsers` from its optional-commands hook:

    wallctl wall show [--wall W] [--json] [--url URL] [--account A] [--password-file F]
    wallctl layout apply NAME [--wall W] [--source S ...] [--url ...]

Credentials: ``--account``/``$WALLCTL_ACCOUNT`` and ``--password-file``/
``$WALLCTL_PASSWORD_FILE`` (a file, never a password on the command line, where ``ps``
would show it); without an account the daemon's anonymous role is used, if it has one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from wallctl.client import DEFAULT_URL, ApiError, ConnectionRefused, connect

# Same meanings as wallctl.cli's exit codes.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_NOT_FOUND = 3


def _connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        default=os.environ.get("WALLCTL_URL", DEFAULT_URL),
        help=f"control API URL (default: $WALLCTL_URL or {DEFAULT_URL})",
    )
    p.add_argument(
        "--account",
        default=os.environ.get("WALLCTL_ACCOUNT"),
        help="account to log in as (default: $WALLCTL_ACCOUNT)",
    )
    p.add_argument(
        "--password-file",
        type=Path,
        default=os.environ.get("WALLCTL_PASSWORD_FILE"),
        help="file holding the password (default: $WALLCTL_PASSWORD_FILE)",
    )


def add_parsers(sub: Any) -> None:
    wall = sub.add_parser(
        "wall",
        help="the live wall, through the daemon's API",
        description="the live wall, through the daemon's API",
    )
    wsub = wall.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    p = wsub.add_parser(
        "show", help="show the wall's windows now", description="show the wall's windows now"
    )
    _connection_args(p)
    p.add_argument("--wall", help="wall id (default: the main wall)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_wall_show)

    layout = sub.add_parser(
        "layout",
        help="apply layouts on the live wall",
        description="apply layouts on the live wall",
    )
    lsub = layout.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    p = lsub.add_parser(
        "apply",
        help="apply a layout template or preset",
        description="apply a layout template or preset",
    )
    _connection_args(p)
    p.add_argument("name")
    p.add_argument("--wall", help="wall id (default: the main wall)")
    p.add_argument(
        "--source",
        action="append",
        dest="sources",
        help="source for the next window (repeat, in window order)",
    )
    p.set_defaults(func=cmd_layout_apply)


def _password(args: argparse.Namespace) -> str | None:
    if args.password_file is None:
        return None
    return Path(args.password_file).read_text(encoding="utf-8").rstrip("\r\n")


def _run(args: argparse.Namespace, method: str, params: dict[str, Any]) -> tuple[int, Any]:
    password = _password(args)

    async def go() -> Any:
        client = await connect(args.url, account=args.account, password=password)
        try:
            return await client.call(method, params)
        finally:
            await client.close()

    try:
        return EXIT_OK, asyncio.run(go())
    except ApiError as e:
        print(f"wallctl: {e}", file=sys.stderr)
        return (
            EXIT_NOT_FOUND
            if e.code == "not_found"
            else EXIT_INVALID
            if e.code in ("invalid_field", "unknown_method")
            else EXIT_FAILED
        ), None
    except ConnectionRefused as e:
        print(f"wallctl: {args.url}: {e}", file=sys.stderr)
        return EXIT_FAILED, None
    except OSError as e:
        print(f"wallctl: cannot reach {args.url}: {e}", file=sys.stderr)
        return EXIT_FAILED, None


def _wall_param(args: argparse.Namespace) -> dict[str, Any]:
    return {"wall": args.wall} if args.wall else {}


def cmd_wall_show(args: argparse.Namespace) -> int:
    code, result = _run(args, "wall.get", _wall_param(args))
    if code != EXIT_OK:
        return code
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return EXIT_OK
    wall, state = result["wall"], result["state"]
    canvas = wall["canvas"]
    print(
        f"wall {wall['id']} ({wall['name']}): {wall['rows']}x{wall['cols']} tiles, "
        f"{canvas['width']}x{canvas['height']} px, revision {state['revision']}, "
        f"layout {state['layout'] or '-'}"
    )
    for w in sorted(state["windows"], key=lambda w: w["z"]):
        print(
            f"  {w['id']:>5}  {w['x']:>5},{w['y']:<5} {w['w']:>5}x{w['h']:<5} z={w['z']:<3} "
            f"{w['source'] or '-'}" + (f"  {w['label']}" if w["label"] else "")
        )
    return EXIT_OK


def cmd_layout_apply(args: argparse.Namespace) -> int:
    params = {**_wall_param(args), "name": args.name}
    if args.sources:
        params["sources"] = args.sources
    code, result = _run(args, "layout.apply", params)
    if code == EXIT_OK:
        print(f"wall {result['wall']}: layout {args.name} applied, revision {result['revision']}")
    return code
