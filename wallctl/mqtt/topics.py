"""The topic tree of one centre, built and parsed in one place (no I/O).

<prefix>/<site>/online                    retained availability: birth and last will
<prefix>/<site>/state/<wall>              retained state of each wall
<prefix>/<site>/devices/<id>/status       retained status of each device
<prefix>/<site>/events/<category>         events, as the WebSocket API sends them
<prefix>/<site>/cmd/<account>             commands; the broker's ACL lets only
                                          <account> publish here
<prefix>/<site>/reply/<account>[/...]     answers (the default response topic)
<prefix>/<site>/fed/in/<origin>           commands from centre <origin>; only the
                                          bridge from <origin> carries them
<prefix>/<origin>/fed/reply/<site>        answers to centre <origin>
<prefix>/<site>/bridge/<peer>             mosquitto's bridge notification (1/0)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wallctl.accounts import validate_account_name
from wallctl.errors import InvalidField

_LEVEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def valid_level(level: str) -> bool:
    """A single topic level wallctl names (site, wall, device): no wildcards, no '/'."""
    return bool(_LEVEL.fullmatch(level))


def valid_publish_topic(topic: str) -> bool:
    """A topic a PUBLISH may name (MQTT 5 §4.7): no wildcards, no NUL, 1-65535 bytes."""
    return (
        0 < len(topic.encode("utf-8", "surrogatepass")) <= 65535
        and not any(c in topic for c in "+#\x00")
        and topic.isprintable()
    )


@dataclass(frozen=True)
class Topics:
    prefix: str
    site: str

    @property
    def root(self) -> str:
        return f"{self.prefix}/{self.site}"

    # --- what this centre publishes ------------------------------------------------------

    @property
    def online(self) -> str:
        return f"{self.root}/online"

    def state(self, wall: str) -> str:
        return f"{self.root}/state/{wall}"

    def device_status(self, device: str) -> str:
        return f"{self.root}/devices/{device}/status"

    def events(self, category: str) -> str:
        return f"{self.root}/events/{category}"

    def reply(self, account: str) -> str:
        return f"{self.root}/reply/{account}"

    # --- what this centre subscribes to --------------------------------------------------

    @property
    def commands(self) -> str:
        return f"{self.root}/cmd/+"

    @property
    def federation_in(self) -> str:
        return f"{self.root}/fed/in/+"

    @property
    def federation_replies(self) -> str:
        return f"{self.root}/fed/reply/+"

    @property
    def bridges(self) -> str:
        return f"{self.root}/bridge/+"

    # --- a peer centre's topics ----------------------------------------------------------

    def peer(self, site: str) -> Topics:
        return Topics(self.prefix, site)

    def federation_to(self, peer: str) -> str:
        """Where this centre sends commands for ``peer``."""
        return f"{self.prefix}/{peer}/fed/in/{self.site}"

    def federation_reply_to(self, origin: str) -> str:
        """Where this centre answers commands from ``origin``."""
        return f"{self.prefix}/{origin}/fed/reply/{self.site}"

    # --- parsing -------------------------------------------------------------------------

    def _tail(self, topic: str, middle: str) -> str | None:
        head = f"{self.root}/{middle}/"
        if not topic.startswith(head):
            return None
        tail = topic[len(head) :]
        return tail if tail and "/" not in tail else None

    def command_account(self, topic: str) -> str | None:
        """The account a command topic belongs to, or None if ``topic`` is not one."""
        return self._tail(topic, "cmd")

    def federation_origin(self, topic: str) -> str | None:
        origin = self._tail(topic, "fed/in")
        return origin if origin is not None and valid_level(origin) else None

    def federation_reply_peer(self, topic: str) -> str | None:
        peer = self._tail(topic, "fed/reply")
        return peer if peer is not None and valid_level(peer) else None

    def bridge_peer(self, topic: str) -> str | None:
        peer = self._tail(topic, "bridge")
        return peer if peer is not None and valid_level(peer) else None

    def peer_bridge(self, topic: str) -> str | None:
        """The peer whose bridge to this centre ``topic`` reports on (its notification)."""
        if not topic.startswith(self.prefix + "/"):
            return None
        parts = topic[len(self.prefix) + 1 :].split("/")
        if len(parts) == 3 and parts[1] == "bridge" and parts[2] == self.site:
            return parts[0] if valid_level(parts[0]) and parts[0] != self.site else None
        return None

    def peer_state(self, topic: str) -> tuple[str, str, str | None] | None:
        """(site, "online" | "state", wall) for a watched peer's retained topics."""
        if not topic.startswith(self.prefix + "/"):
            return None
        parts = topic[len(self.prefix) + 1 :].split("/")
        if len(parts) == 2 and parts[1] == "online" and valid_level(parts[0]):
            return parts[0], "online", None
        if (
            len(parts) == 3
            and parts[1] == "state"
            and valid_level(parts[0])
            and valid_level(parts[2])
        ):
            return parts[0], "state", parts[2]
        return None

    def check_response_topic(self, account: str, topic: str | None) -> str:
        """The topic to answer ``account`` on: its own reply subtree, nothing else.

        A response topic is chosen by the sender, and the daemon may publish where that
        account may not: taking any topic would let a viewer overwrite retained state.
        """
        home = self.reply(account)
        if topic is None:
            return home
        if not valid_publish_topic(topic) or not (topic == home or topic.startswith(home + "/")):
            raise InvalidField(
                f"the response topic must be {home} or below it", field="response_topic"
            )
        return topic


def check_account_level(level: str) -> str:
    """The account named by a command topic; InvalidField if it cannot be an account."""
    return validate_account_name(level)
