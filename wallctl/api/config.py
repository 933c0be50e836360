"""The ``[api]`` section of the config: where the control API listens and its limits.

Defined on plain pydantic (not ``wallctl.config.Section``) because ``wallctl.config``
imports this module; the model config is the same (unknown keys refused, frozen).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ApiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Address to listen on. Keep 127.0.0.1 unless TLS is configured: the login is
    # challenge-response, but requests and events travel in clear text without TLS.
    host: str = "127.0.0.1"
    # TCP port (0 picks a free one, for tests).
    port: int = Field(default=8765, ge=0, le=65535)
    # URL path of the WebSocket endpoint; other paths are answered 404.
    path: str = Field(default="/api/v1", pattern=r"^/[A-Za-z0-9/_.\-]*$", max_length=128)
    # PEM certificate chain and private key; with both set the API speaks wss://.
    # A relative path is taken from the config file's folder.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Browser origins allowed to connect (e.g. "https://panel.example"). Clients that
    # send no Origin (scripts, dispatch software) and the daemon's own web page
    # (http://127.0.0.1:<http.port>, http://localhost:<http.port>) are always allowed.
    allowed_origins: list[str] = Field(default_factory=list, max_length=64)
    # Largest message a client may send; a bigger one closes the connection (code 1009).
    max_message_bytes: int = Field(default=65536, ge=1024, le=16 * 1024 * 1024)
    # Connections served at once; more are refused with HTTP 503.
    max_connections: int = Field(default=256, ge=1, le=100000)
    # Per client address: connections open at once, and new connections per second with
    # the burst allowed above that rate. More are refused with HTTP 429, so one address
    # flooding the port cannot take every connection slot (max_connections).
    max_connections_per_address: int = Field(default=64, ge=1, le=100000)
    connect_rate: float = Field(default=10.0, gt=0, le=100000)
    connect_burst: int = Field(default=40, ge=1, le=100000)
    # Requests per second per connection (a batch counts each request in it) and the
    # burst allowed above that rate; requests over it are answered "rate_limited".
    rate_limit: float = Field(default=200.0, gt=0, le=100000)
    rate_burst: int = Field(default=400, ge=1, le=100000)
    # Keepalive: a ping every ping_interval seconds; no pong within ping_timeout closes.
    ping_interval: float = Field(default=20.0, gt=0, le=3600)
    ping_timeout: float = Field(default=20.0, gt=0, le=3600)
    # Seconds a new connection has to complete Identify before it is closed (4011).
    identify_timeout: float = Field(default=10.0, gt=0, le=600)
    # Events buffered per connection; a client that falls further behind gets a
    # "resync" event and a fresh snapshot instead of the events it missed.
    event_queue: int = Field(default=1024, ge=8, le=1_000_000)
    # A failed login is answered only after this delay (slows password guessing).
    login_delay_ms: int = Field(default=1000, ge=0, le=60000)
    # After this many failed logins from one address within login_failure_window
    # seconds, further logins from it are refused (4010) until the window has passed.
    login_failures_max: int = Field(default=5, ge=1, le=1000)
    login_failure_window: float = Field(default=300.0, gt=0, le=86400)
    # Seconds a session token (method session.token; the web console keeps one for its
    # reconnects) stays valid. Tokens also end on session.logout and when their account
    # is removed, disabled or gets a new password.
    token_ttl: float = Field(default=12 * 3600.0, ge=60, le=30 * 86400)
    # Role given to a client that identifies without an account: "none" requires a
    # login. "viewer" suits a read-only wall display on a closed network.
    anonymous_role: Literal["none", "viewer", "operator", "admin"] = "none"

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        return self

    def resolved(self, base_dir: Path) -> ApiConfig:
        """Relative certificate paths taken from the config file's folder, not the cwd."""
        update = {
            k: base_dir / v
            for k, v in (("tls_cert", self.tls_cert), ("tls_key", self.tls_key))
            if v is not None and not v.is_absolute()
        }
        return self.model_copy(update=update) if update else self

    def url(self, port: int | None = None) -> str:
        scheme = "wss" if self.tls_cert is not None else "ws"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port if port is None else port}{self.path}"
