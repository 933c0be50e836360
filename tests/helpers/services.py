"""A running daemon's service, typed: what tests reach past the API to look at."""

from __future__ import annotations

from typing import TypeVar

from wallctl.daemon import Daemon

S = TypeVar("S")


def service_of(daemon: Daemon, name: str, kind: type[S]) -> S:
    """``daemon``'s service ``name`` (``Runtime.services``), checked to be a ``kind``."""
    rt = daemon.runtime
    assert rt is not None, "the daemon is not running"
    svc = rt.services[name]
    assert isinstance(svc, kind), f"service {name} is a {type(svc).__name__}"
    return svc
