"""The conference codecs' flags on ``wallctl simulate cisco-xapi|huawei-te``.

The simulators themselves run through the official command like every protocol's: the
packages register a ``host`` (drivers.cisco_xapi: the xAPI WebSocket at ``/ws``, tshell
on a pty; drivers.huawei_te: ``action.cgi`` over HTTPS) and ``--user``/``--password``
are the command's own. :func:`extend` only adds the flags that shape the simulated
network and turns them into simulator options.

    wallctl simulate cisco-xapi --listen 127.0.0.1:8080 --user admin --password secret
    wallctl simulate cisco-xapi --pty                      # tshell on a pseudo-terminal
    wallctl simulate cisco-xapi --listen 127.0.0.1:2222 --ssh --user admin --password secret
    wallctl simulate cisco-xapi --listen 127.0.0.1:8080 --ssh-listen 127.0.0.1:2222 ...
    wallctl simulate huawei-te --listen 127.0.0.1:8443 --user api --password Change_Me
    wallctl simulate huawei-te --listen 127.0.0.1:8080 --plain ...
"""

from __future__ import annotations

import argparse
from typing import Any

CODEC_PROTOCOLS = ("cisco-xapi", "huawei-te")


def extend(sub: Any) -> None:
    """Add the codec simulators' flags to ``wallctl simulate`` (if it exists)."""
    parser = getattr(sub, "choices", {}).get("simulate")
    if parser is None:
        return
    g = parser.add_argument_group("conference codecs (cisco-xapi, huawei-te)")
    g.add_argument("--plain", action="store_true", help="huawei-te: HTTP instead of HTTPS")
    g.add_argument("--tshell", metavar="HOST:PORT", help="cisco-xapi: tshell on TCP as well")
    g.add_argument(
        "--ssh", action="store_true", help="cisco-xapi: tshell over SSH on --listen (no /ws)"
    )
    g.add_argument(
        "--ssh-listen", metavar="HOST:PORT", help="cisco-xapi: tshell over SSH beside /ws"
    )
    g.add_argument(
        "--ssh-host-key",
        metavar="FILE",
        help="cisco-xapi: the SSH host key (OpenSSH private key file; default: new at start)",
    )
    g.add_argument(
        "--ssh-key-type",
        choices=("rsa", "ecdsa", "ed25519"),
        default="rsa",
        help="cisco-xapi: type of the host key generated at start",
    )
    g.add_argument(
        "--ssh-max-sessions", type=int, default=10, help="cisco-xapi: SSH sessions at once"
    )
    g.add_argument("--setup-ms", type=int, default=200, help="dialling until reached (ms)")
    g.add_argument("--ring-ms", type=int, default=1000, help="ringing until answered (ms)")
    g.add_argument("--drop-after-ms", type=int, default=2000, help="'drop' numbers: call length")
    g.add_argument("--max-call-rate", type=int, default=6000, help="kbps the network grants")
    hooks = parser.get_default("option_hooks")
    if isinstance(hooks, list):
        hooks.append(codec_options)


def codec_options(args: argparse.Namespace) -> dict[str, Any]:
    """The flags above as simulator options (checked by the codec packages' hosts)."""
    if args.protocol not in CODEC_PROTOCOLS:
        return {}
    options: dict[str, Any] = {
        "setup_ms": args.setup_ms,
        "ring_ms": args.ring_ms,
        "drop_after_ms": args.drop_after_ms,
        "max_call_rate": args.max_call_rate,
    }
    if args.plain:
        options["tls"] = False
    if args.tshell:
        options["tshell"] = args.tshell
    ssh_flags = args.ssh or args.ssh_listen or args.ssh_host_key
    if ssh_flags and args.protocol != "cisco-xapi":
        raise ValueError("--ssh, --ssh-listen and --ssh-host-key are for cisco-xapi")
    if args.ssh and args.ssh_listen:
        raise ValueError("give --ssh (SSH on --listen) or --ssh-listen (beside /ws), not both")
    if not 1 <= args.ssh_max_sessions <= 1000:
        raise ValueError("--ssh-max-sessions must be within 1..1000")
    if args.ssh:
        options["transport"] = "ssh"
    if args.ssh_listen:
        options["ssh"] = args.ssh_listen
    if args.ssh_host_key:
        options["ssh_host_key"] = args.ssh_host_key
    if args.protocol == "cisco-xapi":
        options["ssh_key_type"] = args.ssh_key_type
        options["ssh_max_sessions"] = args.ssh_max_sessions
    return options
