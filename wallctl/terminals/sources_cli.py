"""``wallctl sources [list|show ID]``: the wall's sources, through the daemon's API.

    wallctl sources                 # = list: id, kind, state, name, WHEP URL (or -)
    wallctl sources list [--json]
    wallctl sources show mobile/patrol-7 [--json]

The list is the daemon's catalogue: the configured ``[[sources]]`` and every registered
mobile terminal (``mobile/<id>``). The WHEP URL is where a browser watches the source
(with an API token); the relay serves mobile terminals only, so other sources have none.
Exit codes as the other API commands: 0 done, 1 failed, 2 bad input, 3 no such source.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from wallctl.api.cli_commands import EXIT_OK, _connection_args, _run


def add_parser(sub: Any) -> None:
    src = sub.add_parser(
        "sources",
        help="the wall's sources and where to watch them (WHEP), through the daemon's API",
        description="the wall's sources and where to watch them (WHEP), through the daemon's API",
    )
    _connection_args(src)
    src.add_argument("--json", action="store_true")
    src.set_defaults(func=cmd_list)
    ssub = src.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    p = ssub.add_parser("list", help="every source: id, kind, state, name, WHEP URL")
    _sub_options(p)
    p.set_defaults(func=cmd_list)
    p = ssub.add_parser("show", help="one source")
    p.add_argument("source")
    _sub_options(p)
    p.set_defaults(func=cmd_show)


def _sub_options(p: argparse.ArgumentParser) -> None:
    """The same options after the subcommand; absent there, those given before it count
    (``wallctl sources --url U list`` and ``wallctl sources list --url U`` alike)."""
    p.add_argument("--url", default=argparse.SUPPRESS, help="control API URL")
    p.add_argument("--account", default=argparse.SUPPRESS, help="account to log in as")
    p.add_argument(
        "--password-file", type=Path, default=argparse.SUPPRESS, help="file holding the password"
    )
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=1))


def _clean(text: str) -> str:
    # Names come from config and terminals' enrolment: no control characters on a terminal.
    return "".join(c if c.isprintable() else "?" for c in text)


def cmd_list(args: argparse.Namespace) -> int:
    code, result = _run(args, "source.list", {})
    if code != EXIT_OK:
        return code
    if args.json:
        _print_json(result["sources"])
        return EXIT_OK
    for s in result["sources"]:
        state = {True: "live", False: "offline"}.get(s.get("publishing"), "-")
        print(
            f"{_clean(s['id']):<24} {s['kind']:<12} {state:<8} {_clean(s['name']):<16} "
            f"{s.get('whep_url') or '-'}"
        )
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    code, result = _run(args, "source.get", {"source": args.source})
    if code != EXIT_OK:
        return code
    if args.json:
        _print_json(result)
        return EXIT_OK
    for key in ("id", "name", "kind", "group", "url", "whep_path", "whep_url", "publishing"):
        value = result.get(key)
        if isinstance(value, bool):
            value = json.dumps(value)
        print(f"{key}: {_clean(str(value)) if value not in (None, '') else '-'}")
    return EXIT_OK
