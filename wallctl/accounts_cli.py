"""``wallctl accounts ...``: manage accounts in a state directory's database.

The commands write the database directly, with or without the daemon running (SQLite
WAL lets both at once). A running daemon sees a change at the account's next login,
because each login re-reads that account's row; its list of accounts is re-read on
SIGHUP. Sessions already open keep the role they logged in with until they reconnect.

Exit codes: 0 done, 1 the database failed, 2 bad usage or input, 3 no such account.

A password comes from ``--password-file F`` (its first line; ``-`` for stdin), else
``--generate`` (a long random one, printed once, for machine clients such as the dispatch
system), else ``$WALLCTL_PASSWORD``, else a prompt on the terminal, typed twice.
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wallctl.accounts import Accounts, Role, validate_account_name
from wallctl.errors import Conflict, InvalidField, NotFound
from wallctl.store import Actor, Store, StoreError

__all__ = ["PASSWORD_ENV", "add_parser"]

PASSWORD_ENV = "WALLCTL_PASSWORD"
EXIT_OK = 0
EXIT_STORE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
PROG = "wallctl accounts"


class _Fail(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def add_parser(subparsers: Any) -> None:
    """Register ``accounts`` on an ``ArgumentParser.add_subparsers()`` result.

    Each leaf sets ``func``: the caller runs ``return args.func(args)``.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, default=None, help="config file (default: the built-in demo)"
    )
    common.add_argument(
        "--state-dir", type=Path, default=None, help="state directory (default: from config)"
    )
    secret = argparse.ArgumentParser(add_help=False)
    src = secret.add_mutually_exclusive_group()
    src.add_argument(
        "--password-file",
        type=Path,
        default=None,
        help=f"read the password from this file's first line ('-' for stdin); "
        f"else ${PASSWORD_ENV}, else a prompt",
    )
    src.add_argument(
        "--generate",
        action="store_true",
        help="generate a long random password and print it once (machine clients)",
    )

    accounts = subparsers.add_parser("accounts", help="manage accounts and roles")
    sub = accounts.add_subparsers(dest="accounts_command", metavar="COMMAND", required=True)
    roles = [r.value for r in Role]

    p = sub.add_parser("add", parents=[common, secret], help="create an account")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=roles)
    p.add_argument("--display-name", default="")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("list", parents=[common], help="list accounts (never their verifiers)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("remove", parents=[common], help="delete an account")
    p.add_argument("name")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("passwd", parents=[common, secret], help="set an account's password")
    p.add_argument("name")
    p.set_defaults(func=cmd_passwd)

    p = sub.add_parser("role", parents=[common], help="change an account's role")
    p.add_argument("name")
    p.add_argument("role", choices=roles)
    p.set_defaults(func=cmd_role)

    p = sub.add_parser("disable", parents=[common], help="refuse an account's logins")
    p.add_argument("name")
    p.set_defaults(func=cmd_disable)

    p = sub.add_parser("enable", parents=[common], help="allow a disabled account again")
    p.add_argument("name")
    p.set_defaults(func=cmd_enable)


# --- plumbing --------------------------------------------------------------------------------


def _actor() -> Actor:
    # ':' cannot occur in an account name, so an OS user is never mistaken for one.
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return Actor(f"local:{user}", via="cli")


def _open_store(args: argparse.Namespace) -> Store:
    # Imported here: the daemon module pulls in the HTTP and media stacks, which the
    # parser (and `wallctl --help`) should not pay for.
    from wallctl.config import ConfigError, load_config
    from wallctl.daemon import DB_NAME, state_dir_for
    from wallctl.resources import demo_config_path

    path = args.config if args.config is not None else demo_config_path()
    try:
        config = load_config(path).config
    except ConfigError as e:
        raise _Fail(str(e), EXIT_USAGE) from None
    state_dir = args.state_dir if args.state_dir is not None else state_dir_for(config)
    try:
        return Store(state_dir / DB_NAME, config.daemon.durability)
    except (OSError, StoreError, sqlite3.Error) as e:
        raise _Fail(f"cannot open the state database in {state_dir}: {e}", EXIT_STORE) from None


def _run(args: argparse.Namespace, body: Callable[[Accounts], int]) -> int:
    try:
        store = _open_store(args)
        try:
            return body(Accounts(store))
        finally:
            store.close()
    except _Fail as e:
        return _error(e.message, e.code)
    except NotFound as e:
        return _error(e.message, EXIT_NOT_FOUND)
    except (InvalidField, Conflict) as e:
        return _error(e.message, EXIT_USAGE)
    except StoreError as e:
        return _error(str(e), EXIT_STORE)


def _error(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _password(args: argparse.Namespace, name: str) -> str:
    """The new password, from the first source given (see the module docstring)."""
    if args.password_file is not None:
        try:
            if str(args.password_file) == "-":
                text = sys.stdin.readline()
            else:
                with open(args.password_file, encoding="utf-8") as f:
                    text = f.readline()
        except (OSError, UnicodeDecodeError) as e:
            raise _Fail(f"cannot read the password file: {e}", EXIT_USAGE) from None
        password = text.rstrip("\r\n")
        if not password:
            raise _Fail("the password file's first line is empty", EXIT_USAGE)
        return password
    if args.generate:
        password = secrets.token_urlsafe(32)
        # Shown once, on stdout only, so it can be piped into the client's secret store.
        print(f"password for {name!r}: {password}")
        return password
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    if not sys.stdin.isatty():
        raise _Fail(
            f"no password given: use --password-file, ${PASSWORD_ENV}, --generate "
            "or run on a terminal",
            EXIT_USAGE,
        )
    first = getpass.getpass(f"password for {name}: ")
    second = getpass.getpass("again: ")
    if first != second:
        raise _Fail("the passwords do not match", EXIT_USAGE)
    return first


# --- commands ----------------------------------------------------------------------------------


def cmd_add(args: argparse.Namespace) -> int:
    def body(accounts: Accounts) -> int:
        validate_account_name(args.name)
        password = _password(args, args.name)
        ident = accounts.add_sync(
            args.name, password, Role(args.role), args.display_name, actor=_actor()
        )
        print(f"added {ident.account!r} ({ident.role.value})")
        return EXIT_OK

    return _run(args, body)


def cmd_list(args: argparse.Namespace) -> int:
    def body(accounts: Accounts) -> int:
        rows = [("ACCOUNT", "ROLE", "DISPLAY NAME", "DISABLED")]
        for info in accounts.info_sync():
            i = info.identity
            rows.append((i.account, i.role.value, i.display_name, "yes" if info.disabled else ""))
        widths = [max(len(r[c]) for r in rows) for c in range(3)]
        for r in rows:
            print("  ".join(r[c].ljust(widths[c]) for c in range(3)) + "  " + r[3])
        return EXIT_OK

    return _run(args, body)


def cmd_remove(args: argparse.Namespace) -> int:
    def body(accounts: Accounts) -> int:
        if not accounts.remove_sync(args.name, actor=_actor()):
            return _error(f"account {args.name!r} not found", EXIT_NOT_FOUND)
        print(f"removed {args.name!r}")
        return EXIT_OK

    return _run(args, body)


def cmd_passwd(args: argparse.Namespace) -> int:
    def body(accounts: Accounts) -> int:
        # Fail on a missing account before asking for a password nobody will use.
        validate_account_name(args.name)
        if not any(i.identity.account.lower() == args.name.lower() for i in accounts.info_sync()):
            return _error(f"account {args.name!r} not found", EXIT_NOT_FOUND)
        accounts.passwd_sync(args.name, _password(args, args.name), actor=_actor())
        print(f"password changed for {args.name!r}")
        return EXIT_OK

    return _run(args, body)


def cmd_role(args: argparse.Namespace) -> int:
    def body(accounts: Accounts) -> int:
        ident = accounts.set_role_sync(args.name, Role(args.role), actor=_actor())
        print(f"{ident.account!r} is now {ident.role.value}")
        return EXIT_OK

    return _run(args, body)


def _set_disabled(args: argparse.Namespace, disabled: bool) -> int:
    def body(accounts: Accounts) -> int:
        accounts.set_disabled_sync(args.name, disabled, actor=_actor())
        print(f"{'disabled' if disabled else 'enabled'} {args.name!r}")
        return EXIT_OK

    return _run(args, body)


def cmd_disable(args: argparse.Namespace) -> int:
    return _set_disabled(args, True)


def cmd_enable(args: argparse.Namespace) -> int:
    return _set_disabled(args, False)
