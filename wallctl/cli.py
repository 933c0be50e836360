"""The ``wallctl`` command.

Exit codes (the same for every subcommand):
  0  done
  1  failed at run time (start-up failed, daemon unreachable, store error)
  2  invalid configuration, template or arguments
  3  not found (wall, revision, layout, account)
  4  the state directory is in use by a running daemon (use the API instead)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wallctl import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_NOT_FOUND = 3
EXIT_BUSY = 4

EPILOG = """exit codes: 0 done, 1 failed at run time, 2 invalid configuration or arguments,
3 not found, 4 state directory in use by a running daemon"""


def _add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        help="configuration file (default: the built-in demo configuration)",
    )


def _load(path: Path | None) -> Any:
    """Load the config or exit 2 listing every problem."""
    from wallctl.config import ConfigError, load_config
    from wallctl.resources import demo_config_path

    try:
        return load_config(path or demo_config_path())
    except ConfigError as e:
        for p in e.problems:
            print(f"{p}", file=sys.stderr)
        raise SystemExit(EXIT_INVALID) from None


# --- run -----------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from wallctl.daemon import Daemon, StateLocked
    from wallctl.logs import get_logger, setup_logging

    loaded = _load(args.config)
    cfg = loaded.config
    setup_logging(cfg.log.level, cfg.log.format)
    log = get_logger("wallctl")
    log.info(
        "starting",
        version=__version__,
        config=str(loaded.path) + (" (built-in demo)" if args.config is None else ""),
    )
    daemon = Daemon(loaded)
    try:
        return asyncio.run(daemon.run())
    except StateLocked as e:
        log.error("cannot start", reason=str(e))
        return EXIT_BUSY


# --- check ---------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    from wallctl.config import ConfigError, load_config
    from wallctl.daemon import template_dirs
    from wallctl.layout import load_templates
    from wallctl.resources import demo_config_path

    path = args.path or demo_config_path()
    try:
        loaded = load_config(path)
    except ConfigError as e:
        for p in e.problems:
            print(str(p), file=sys.stderr)
        return EXIT_INVALID
    templates, errors = load_templates(template_dirs(loaded.config))
    problems: list[str] = [str(e) for e in errors]
    for key, w in [("wall", loaded.config.wall)] + [
        (f"walls.{k}", v) for k, v in loaded.config.walls.items()
    ]:
        if w.startup_layout and w.startup_layout not in templates:
            problems.append(f"{key}.startup_layout: no layout template {w.startup_layout!r}")
    for text in problems:
        print(text, file=sys.stderr)
    if problems:
        return EXIT_INVALID
    for warn in loaded.warnings:
        print(f"warning: {warn}")
    print(f"ok: {path}")
    return EXIT_OK


# --- layouts ---------------------------------------------------------------------------


def cmd_layouts_list(args: argparse.Namespace) -> int:
    from wallctl.daemon import template_dirs
    from wallctl.layout import load_templates

    loaded = _load(args.config)
    templates, errors = load_templates(template_dirs(loaded.config))
    for e in errors:
        print(f"refused: {e}", file=sys.stderr)
    if args.json:
        print(json.dumps([t.describe() for t in templates.values()], ensure_ascii=False, indent=1))
        return EXIT_OK
    width = max((len(n) for n in templates), default=4)
    for name, t in sorted(templates.items()):
        print(f"{name:<{width}}  {len(t.windows):>2} windows  {t.description}")
    return EXIT_INVALID if errors else EXIT_OK


def cmd_layouts_show(args: argparse.Namespace) -> int:
    from wallctl.daemon import build_walls, template_dirs
    from wallctl.layout import fit, load_templates

    loaded = _load(args.config)
    templates, _ = load_templates(template_dirs(loaded.config))
    template = templates.get(args.name)
    if template is None:
        print(f"no layout template {args.name!r}", file=sys.stderr)
        return EXIT_NOT_FOUND
    walls = {w.id: w for w in build_walls(loaded.config)}
    wall = walls.get(args.wall or loaded.config.wall.id)
    if wall is None:
        print(f"no wall {args.wall!r}", file=sys.stderr)
        return EXIT_NOT_FOUND
    fitted = fit(template, wall, snap=args.snap or None)
    out = [
        {
            "x": f.rect.x,
            "y": f.rect.y,
            "w": f.rect.w,
            "h": f.rect.h,
            "z": f.z,
            "tiles": [list(t) for t in wall.tiles_spanned(f.rect)],
        }
        for f in fitted
    ]
    if args.json:
        print(json.dumps({"layout": template.name, "wall": wall.id, "windows": out}, indent=1))
        return EXIT_OK
    print(f"{template.name} ({template.description}) on {wall.id}: {wall.width}x{wall.height} px")
    for i, w in enumerate(out):
        tiles = " ".join(f"r{r}c{c}" for r, c in w["tiles"])  # type: ignore[attr-defined]
        print(f"  [{i}] x={w['x']} y={w['y']} w={w['w']} h={w['h']} z={w['z']}  tiles: {tiles}")
    return EXIT_OK


def cmd_layouts_check(args: argparse.Namespace) -> int:
    from wallctl.layout import TemplateError, load_template

    bad = 0
    paths: list[Path] = []
    for p in args.paths:
        paths += sorted(p.glob("*.toml")) if p.is_dir() else [p]
    for p in paths:
        try:
            t = load_template(p)
        except TemplateError as e:
            print(str(e), file=sys.stderr)
            bad += 1
        else:
            print(f"ok: {p} ({len(t.windows)} windows)")
    return EXIT_INVALID if bad else EXIT_OK


# --- state ---------------------------------------------------------------------------


def parse_time(text: str, now: dt.datetime | None = None) -> float:
    """ISO date-time, a time of day today ("14:02"), or Unix seconds; local time."""
    now = now or dt.datetime.now().astimezone()
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = dt.time.fromisoformat(text)
    except ValueError:
        pass
    else:
        stamp = dt.datetime.combine(now.date(), t)
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=now.tzinfo)
        return stamp.timestamp()
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: use 14:02, 2026-11-23T14:02 or Unix seconds"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.astimezone()
    return stamp.timestamp()


def _fmt_ts(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def _open_store(args: argparse.Namespace, *, write: bool) -> tuple[Any, Any, int | None]:
    from wallctl.daemon import DB_NAME, StateLocked, lock_state_dir, state_dir_for
    from wallctl.store import Store

    loaded = _load(args.config)
    state_dir = args.state_dir or state_dir_for(loaded.config)
    db = state_dir / DB_NAME
    if not db.exists():
        print(f"no state database at {db}", file=sys.stderr)
        raise SystemExit(EXIT_NOT_FOUND)
    lock = None
    if write:
        try:
            lock = lock_state_dir(state_dir)
        except StateLocked:
            print(
                f"a running daemon uses {state_dir}: change the wall through its API "
                "(wallctl state restore --url ...) or stop it first",
                file=sys.stderr,
            )
            raise SystemExit(EXIT_BUSY) from None
    # A reader runs beside a live daemon without the lock: it must leave the daemon's
    # revision journal alone (no replay, no truncation); a writer holds the lock.
    return loaded, Store(db, loaded.config.daemon.durability, journal=write), lock


def _wall_id(args: argparse.Namespace, loaded: Any) -> str:
    return str(args.wall or loaded.config.wall.id)


def cmd_state_show(args: argparse.Namespace) -> int:
    loaded, store, _ = _open_store(args, write=False)
    try:
        wall = _wall_id(args, loaded)
        if args.revision is not None:
            state = store.revision(wall, args.revision)
        elif args.at is not None:
            state = store.revision_at(wall, args.at)
        else:
            state = store.load_current().get(wall)
        if state is None:
            print(f"wall {wall!r}: no such revision", file=sys.stderr)
            return EXIT_NOT_FOUND
        if args.json:
            print(state.model_dump_json(indent=1))
            return EXIT_OK
        print(f"wall {state.wall} revision {state.revision} layout {state.layout or '-'}")
        for w in state.stacked():
            label = f" label={w.label}" if w.label else ""
            full = " (full screen)" if w.restore else ""
            print(
                f"  {w.id}: x={w.x} y={w.y} w={w.w} h={w.h} z={w.z} "
                f"source={w.source or '-'}{label}{full}"
            )
        return EXIT_OK
    finally:
        store.close()


def cmd_state_history(args: argparse.Namespace) -> int:
    loaded, store, _ = _open_store(args, write=False)
    try:
        wall = _wall_id(args, loaded)
        rows = store.history(wall, since=args.since, until=args.until, limit=args.limit)
        if args.json:
            print(json.dumps([r.__dict__ for r in rows], ensure_ascii=False, indent=1))
            return EXIT_OK
        for r in rows:
            print(f"{r.revision:>6}  {_fmt_ts(r.ts)}  {r.actor:<16}  {r.action}")
        return EXIT_OK
    finally:
        store.close()


def cmd_state_audit(args: argparse.Namespace) -> int:
    _, store, _ = _open_store(args, write=False)
    try:
        rows = store.audit_log(
            since=args.since, until=args.until, wall=args.wall, actor=args.actor, limit=args.limit
        )
        if args.json:
            print(json.dumps([r.__dict__ for r in rows], ensure_ascii=False, indent=1))
            return EXIT_OK
        for r in rows:
            where = f"{r.wall}@{r.revision}" if r.wall else "-"
            origin = f" from {r.origin}" if r.origin else ""
            detail = json.dumps(r.detail, ensure_ascii=False) if r.detail else ""
            print(
                f"{_fmt_ts(r.ts)}  {r.actor}{origin} via {r.via}  {r.action}  {where}  "
                f"{r.result}  {detail}"
            )
        return EXIT_OK
    finally:
        store.close()


def cmd_state_restore(args: argparse.Namespace) -> int:
    import os

    from wallctl import edits
    from wallctl.store import Actor

    loaded, store, lock = _open_store(args, write=True)
    try:
        wall = _wall_id(args, loaded)
        past = (
            store.revision(wall, args.revision)
            if args.revision is not None
            else store.revision_at(wall, args.at)
        )
        if past is None:
            print(f"wall {wall!r}: no such revision", file=sys.stderr)
            return EXIT_NOT_FOUND
        current = store.load_current().get(wall)
        assert current is not None
        new = edits.restore(current, past).model_copy(update={"revision": current.revision + 1})
        actor = Actor(os.environ.get("USER") or "cli", via="cli")
        store.commit_revision_sync(
            new, actor, "state.restore", {"restored_revision": past.revision}
        )
        print(f"wall {wall}: revision {new.revision} restores revision {past.revision}")
        return EXIT_OK
    finally:
        store.close()
        if lock is not None:
            os.close(lock)


# --- parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wallctl",
        description="Video-wall and device control daemon for command centres.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str, parent: Any = sub
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(
            name, help=help, description=help, epilog=EPILOG
        )
        p.set_defaults(func=func)
        return p

    p = add("run", cmd_run, "run the daemon (the built-in demo when no --config is given)")
    _add_config_arg(p)

    p = add("check", cmd_check, "validate a configuration file and the layouts it uses")
    p.add_argument("path", nargs="?", type=Path, help="configuration file (default: the demo)")

    p = add("version", lambda a: print(f"wallctl {__version__}") or EXIT_OK, "print the version")

    layouts = sub.add_parser("layouts", help="layout templates", description="layout templates")
    lsub = layouts.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    p = add("list", cmd_layouts_list, "list the layout templates", lsub)
    _add_config_arg(p)
    p.add_argument("--json", action="store_true")
    p = add("show", cmd_layouts_show, "show a template fitted to a wall, in pixels", lsub)
    _add_config_arg(p)
    p.add_argument("name")
    p.add_argument("--wall", help="wall id (default: the main wall)")
    p.add_argument("--snap", action="store_true", help="snap windows to tile edges")
    p.add_argument("--json", action="store_true")
    p = add("check", cmd_layouts_check, "validate template files or folders", lsub)
    p.add_argument("paths", nargs="+", type=Path)

    state = sub.add_parser(
        "state",
        help="the stored wall state: current, history, audit, restore",
        description="the stored wall state: current, history, audit log, restore a past wall",
    )
    ssub = state.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)

    def state_args(p: argparse.ArgumentParser) -> None:
        _add_config_arg(p)
        p.add_argument("--state-dir", type=Path, help="state directory (default: from config)")
        p.add_argument("--wall", help="wall id (default: the main wall)")

    p = add("show", cmd_state_show, "show the wall now, at a revision or at a time", ssub)
    state_args(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--revision", type=int)
    g.add_argument("--at", type=parse_time, help="e.g. 14:02 or 2026-11-23T14:02")
    p.add_argument("--json", action="store_true")
    p = add("history", cmd_state_history, "list the wall's revisions, newest first", ssub)
    state_args(p)
    p.add_argument("--since", type=parse_time)
    p.add_argument("--until", type=parse_time)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p = add("audit", cmd_state_audit, "who did what, when (newest first)", ssub)
    state_args(p)
    p.add_argument("--since", type=parse_time)
    p.add_argument("--until", type=parse_time)
    p.add_argument("--actor")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p = add("restore", cmd_state_restore, "put the wall back as it was (daemon stopped)", ssub)
    state_args(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--revision", type=int)
    g.add_argument("--at", type=parse_time, help="e.g. 14:02 or 2026-11-23T14:02")

    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub: Any) -> None:
    """Commands of later capabilities (accounts, API client) register themselves here."""
    from wallctl.accounts_cli import add_parser as add_accounts_parser
    from wallctl.api.cli_commands import add_parsers as add_api_parsers

    add_accounts_parser(sub)
    add_api_parsers(sub)
    from wallctl.devices.cli import add_parser as add_devices_parser

    add_devices_parser(sub)
    from wallctl.conference.cli import add_parser as add_conference_parser

    add_conference_parser(sub)
    from wallctl.mqtt.cli import add_parser as add_mqtt_parser

    add_mqtt_parser(sub)
    from wallctl.cameras.cli import add_parser as add_cameras_parser

    add_cameras_parser(sub)
    from wallctl.recordings.cli import add_parser as add_recordings_parser
    from wallctl.terminals.cli import add_parser as add_terminals_parser

    add_terminals_parser(sub)
    add_recordings_parser(sub)
    from wallctl.terminals.sources_cli import add_parser as add_sources_parser

    add_sources_parser(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_INVALID
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_FAILED
