"""``wallctl mqtt``: the mosquitto ACL and bridge sections that match a config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from wallctl.mqtt import mosquitto

EXIT_OK = 0
EXIT_INVALID = 2
EXIT_NOT_FOUND = 3


def _config(args: argparse.Namespace) -> Any:
    from wallctl.cli import _load

    return _load(args.config).config


def cmd_acl(args: argparse.Namespace) -> int:
    cfg = _config(args)
    sys.stdout.write(mosquitto.acl(cfg.mqtt, cfg.daemon.site))
    return EXIT_OK


def cmd_bridge(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if args.peer not in cfg.mqtt.federation.peers:
        print(f"no peer {args.peer!r} in [mqtt.federation.peers]", file=sys.stderr)
        return EXIT_NOT_FOUND
    site = cfg.daemon.site
    if args.remote_acl:
        sys.stdout.write(
            mosquitto.bridge_acl(cfg.mqtt, site, args.peer, remote_username=args.remote_username)
        )
        return EXIT_OK
    if not args.address:
        print("--address host:port of the peer's broker is required", file=sys.stderr)
        return EXIT_INVALID
    sys.stdout.write(
        mosquitto.bridge(
            cfg.mqtt, site, args.peer, args.address, remote_username=args.remote_username
        )
    )
    return EXIT_OK


def add_parser(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, default=None, help="config file (default: the built-in demo)"
    )
    mqtt = subparsers.add_parser("mqtt", help="mosquitto configuration matching this config")
    sub = mqtt.add_subparsers(dest="mqtt_command", metavar="COMMAND", required=True)
    p = sub.add_parser(
        "acl", parents=[common], help="the broker's ACL: the daemon, and each person's topics"
    )
    p.set_defaults(func=cmd_acl)
    p = sub.add_parser(
        "bridge",
        parents=[common],
        help="a bridge section from this centre's broker to a peer's (or, with --remote-acl, "
        "the ACL lines the peer's broker needs for it)",
    )
    p.add_argument("--peer", required=True, help="the peer's site id ([mqtt.federation.peers])")
    p.add_argument("--address", help="host:port of the peer's broker")
    p.add_argument("--remote-username", help="the bridge's account on the peer's broker")
    p.add_argument("--remote-acl", action="store_true", help="print the peer broker's ACL lines")
    p.set_defaults(func=cmd_bridge)
