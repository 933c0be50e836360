"""The ``[mqtt]`` section: the broker, limits, and the federation policy per peer centre.

Plain pydantic models (same settings as ``wallctl.config.Section``: unknown keys refused,
frozen) because ``wallctl.config`` imports this module to build ``Config``.
MQTT is off while ``host`` is unset, so the demo and existing configs need no broker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
# A method name as the API spells it; checked against the method table at start-up.
MethodName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$", max_length=64)]
# Topic levels of the prefix: no wildcards, no empty levels, no leading '$'.
TOPIC_PREFIX_PATTERN = r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$"


def _method_roles() -> dict[str, str] | None:
    """The role each API method needs, capabilities' included; None if not loadable."""
    try:
        # Imported here: the method table imports the config module this one is part of.
        from wallctl.api import methods

        methods.load_extensions()
        return {name: m.role for name, m in methods.METHODS.items()}
    except Exception:  # a capability that cannot load is reported where it is used
        return None


_RANK = {"viewer": 0, "operator": 1, "admin": 2}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeerConfig(_Model):
    """Another centre reached through the bridged brokers, keyed by its ``daemon.site``."""

    # Follow its retained wall state and availability (what a city watches of a district).
    watch: bool = True
    # Methods this centre may send it (e.g. "layout.apply", "window.set_source").
    send: list[MethodName] = Field(default_factory=list, max_length=64)
    # Methods it may send here that run at once, audited with its centre and person.
    accept: list[MethodName] = Field(default_factory=list, max_length=64)
    # Methods it may send here that wait for an operator here to confirm or reject them.
    confirm: list[MethodName] = Field(default_factory=list, max_length=64)
    # The role its accepted commands run with here (the method must be in that role).
    role: Literal["viewer", "operator", "admin"] = "operator"

    @field_validator("send", "accept", "confirm")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        known = _method_roles() if names else None
        for name in names:
            if known is not None and name not in known:
                raise ValueError(f"no API method {name!r}")
        return names

    @model_validator(mode="after")
    def _disjoint(self) -> PeerConfig:
        both = sorted(set(self.accept) & set(self.confirm))
        if both:
            raise ValueError(f"{', '.join(both)} listed in both accept and confirm")
        roles = _method_roles() if (self.accept or self.confirm) else None
        for name in (*self.accept, *self.confirm):
            need = (roles or {}).get(name)
            if need is not None and _RANK[need] > _RANK[self.role]:
                raise ValueError(f"{name} needs the {need} role; this peer's role is {self.role}")
        relayed = [
            m for m in (*self.send, *self.accept, *self.confirm) if m.startswith("federation.")
        ]
        if relayed:
            raise ValueError(f"federation methods are not relayed between centres: {relayed[0]}")
        return self


class FederationConfig(_Model):
    # Other centres by site id; a centre not listed here can neither send nor be sent to.
    peers: dict[Ident, PeerConfig] = Field(default_factory=dict, max_length=256)
    # Seconds a command waiting for local confirmation stays pending before it expires.
    confirm_timeout: float = Field(default=300.0, gt=0, le=86400)
    # Seconds federation.send waits for the peer's first answer.
    answer_timeout: float = Field(default=10.0, gt=0, le=600)
    # Commands waiting for confirmation at once; more are refused.
    max_pending: int = Field(default=100, ge=1, le=10000)


class MqttConfig(_Model):
    # The broker; MQTT stays off while this is unset.
    host: str | None = Field(default=None, min_length=1, max_length=255)
    port: int = Field(default=1883, ge=1, le=65535)
    # TLS to the broker: the CA bundle to trust (system store when unset), and a client
    # certificate and key if the broker asks for one.
    tls: bool = False
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Skip the broker's hostname check (a lab broker with an IP-only certificate).
    tls_insecure: bool = False
    # MQTT client id; "wallctl-<daemon.site>" when unset. Two clients with one id
    # throw each other off the broker.
    client_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    # Broker account of the daemon itself (its ACL grants it the whole <prefix>/<site> tree).
    username: str | None = Field(default=None, min_length=1, max_length=128)
    password: SecretStr | None = None
    # First level(s) of every topic: <topic_prefix>/<site>/...
    topic_prefix: str = Field(default="wallctl", pattern=TOPIC_PREFIX_PATTERN, max_length=128)
    # Seconds between keepalive pings; the broker publishes the last will after 1.5x this.
    keepalive: int = Field(default=30, ge=5, le=3600)
    # Seconds a connection attempt may take.
    connect_timeout: float = Field(default=10.0, gt=0, le=300)
    # Reconnect backoff: doubles from reconnect_min up to reconnect_max seconds, with
    # jitter so a site's daemons do not reconnect in step after a broker restart.
    reconnect_min: float = Field(default=0.5, gt=0, le=3600)
    reconnect_max: float = Field(default=30.0, gt=0, le=3600)
    # After the broker refused the credentials, wait this long: retrying faster only
    # fills the broker's log (and may lock the account).
    auth_retry: float = Field(default=300.0, gt=0, le=86400)
    # Largest command payload taken; bigger ones are answered malformed_message.
    max_message_bytes: int = Field(default=65536, ge=1024, le=16 * 1024 * 1024)
    # Events held while the broker is unreachable; past this the oldest are dropped
    # (and counted in wallctl_mqtt_events_dropped).
    outage_buffer: int = Field(default=1000, ge=1, le=1_000_000)
    # Commands per second per account, and the burst allowed above it.
    rate_limit: float = Field(default=50.0, gt=0, le=100000)
    rate_burst: int = Field(default=100, ge=1, le=100000)
    # Event categories published under <prefix>/<site>/events/<category>; "*": all.
    events: list[str] = Field(default_factory=lambda: ["*"], max_length=64)
    federation: FederationConfig = Field(default_factory=FederationConfig)

    @model_validator(mode="after")
    def _pairs(self) -> MqttConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        if (self.tls_ca or self.tls_cert or self.tls_insecure) and not self.tls:
            raise ValueError("tls_ca, tls_cert and tls_insecure need tls = true")
        if self.reconnect_min > self.reconnect_max:
            raise ValueError("reconnect_min must not exceed reconnect_max")
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        return self

    @property
    def enabled(self) -> bool:
        return self.host is not None

    def resolved(self, base_dir: Path) -> MqttConfig:
        """Relative certificate paths taken from the config file's folder, not the cwd."""
        update = {
            k: base_dir / v
            for k, v in (
                ("tls_ca", self.tls_ca),
                ("tls_cert", self.tls_cert),
                ("tls_key", self.tls_key),
            )
            if v is not None and not v.is_absolute()
        }
        return self.model_copy(update=update) if update else self
