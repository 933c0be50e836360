"""``wallctl terminals add|list|remove``: mobile terminals' identities and tokens.

The commands write the state database directly, with or without the daemon running;
the daemon reads the terminal's row on every WHIP request, so a change counts at once.
``add`` prints what the phone's app needs, once, as plain lines::

    whip_url: http://192.0.2.10:8080/whip/patrol-7
    token: 6X0m...

Exit codes: 0 done, 1 the database failed, 2 bad usage or input, 3 no such terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from wallctl.accounts_cli import _actor, _open_store
from wallctl.errors import Conflict, InvalidField, NotFound
from wallctl.store import StoreError
from wallctl.terminals.identities import Terminals

PROG = "wallctl terminals"


def add_parser(subparsers: Any) -> None:
    from pathlib import Path

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=None, help="config file")
    common.add_argument("--state-dir", type=Path, default=None, help="state directory")
    p = subparsers.add_parser("terminals", help="mobile terminals publishing over WHIP")
    sub = p.add_subparsers(dest="terminals_command", metavar="COMMAND", required=True)
    a = sub.add_parser("add", parents=[common], help="create a terminal; prints its URL and token")
    a.add_argument("id")
    a.add_argument("--name", default="", help="display name (default: the id)")
    a.set_defaults(func=cmd_add)
    ls = sub.add_parser("list", parents=[common], help="list terminals (never their tokens)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    r = sub.add_parser("remove", parents=[common], help="delete a terminal and its token")
    r.add_argument("id")
    r.set_defaults(func=cmd_remove)


def _base_url(args: argparse.Namespace) -> str:
    from wallctl.config import load_config
    from wallctl.resources import demo_config_path

    path = args.config if args.config is not None else demo_config_path()
    cfg = load_config(path).config
    if cfg.terminals.public_url:
        return cfg.terminals.public_url.rstrip("/")
    host = cfg.http.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{cfg.http.port}"


def _run(args: argparse.Namespace, body: Any) -> int:
    from wallctl.accounts_cli import _Fail

    try:
        store = _open_store(args)
        try:
            return int(body(Terminals(store)))
        finally:
            store.close()
    except _Fail as e:
        return _error(e.message, e.code)
    except NotFound as e:
        return _error(e.message, 3)
    except (InvalidField, Conflict) as e:
        return _error(e.message, 2)
    except StoreError as e:
        return _error(str(e), 1)


def _error(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def cmd_add(args: argparse.Namespace) -> int:
    def body(t: Terminals) -> int:
        base = _base_url(args)
        token = t.add(args.id, args.name, _actor())
        print(f"whip_url: {base}/whip/{args.id}")
        print(f"token: {token}")
        host = urlsplit(base).hostname or ""
        if host in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "::"):
            # On stderr: stdout stays the two lines an enrolment script reads.
            print(
                f"{PROG}: warning: {host} is not an address a phone reaches: set "
                "[terminals] public_url",
                file=sys.stderr,
            )
        return 0

    return _run(args, body)


def cmd_list(args: argparse.Namespace) -> int:
    def body(t: Terminals) -> int:
        rows = t.list()
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "id": r.id,
                            "name": r.name,
                            "source": r.source,
                            "created": r.created_ts,
                            "created_by": r.created_by,
                        }
                        for r in rows
                    ],
                    ensure_ascii=False,
                )
            )
            return 0
        for r in rows:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_ts))
            print(f"{r.id:<24} {r.source:<32} {when}  {r.name}")
        return 0

    return _run(args, body)


def cmd_remove(args: argparse.Namespace) -> int:
    def body(t: Terminals) -> int:
        t.remove(args.id)
        print(f"removed terminal {args.id}")
        return 0

    return _run(args, body)
