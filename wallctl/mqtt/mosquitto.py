"""mosquitto configuration that matches a wallctl config: the ACL and the bridges (no I/O).

The ACL is what makes MQTT identities trustworthy (only ``<account>`` may publish on
``cmd/<account>``), and the bridge's topic list is what keeps centres apart: both are
generated from the same config the daemon runs with, so they cannot drift from it.
"""

from __future__ import annotations

from wallctl.mqtt.config import MqttConfig


def daemon_user(config: MqttConfig, site: str) -> str:
    return config.username or f"wallctl-{site}"


def acl(config: MqttConfig, site: str) -> str:
    """The ACL of this centre's broker: its daemon, and every person by pattern."""
    p = config.topic_prefix
    peers = config.federation.peers
    lines = [
        f"# wallctl: ACL for the broker of centre {site} (mosquitto acl_file)",
        f"user {daemon_user(config, site)}",
        f"topic readwrite {p}/{site}/#",
    ]
    for peer, pc in sorted(peers.items()):
        if pc.send:
            lines.append(f"topic write {p}/{peer}/fed/in/{site}")
        if pc.accept or pc.confirm:
            lines.append(f"topic write {p}/{peer}/fed/reply/{site}")
        if pc.watch:
            lines += [
                f"topic read {p}/{peer}/online",
                f"topic read {p}/{peer}/state/+",
                f"topic read {p}/{peer}/bridge/{site}",
            ]
    lines += [
        "",
        "# every person: commands only on their own topic, answers only their own",
        f"pattern write {p}/{site}/cmd/%u",
        f"pattern read {p}/{site}/reply/%u/#",
        f"pattern read {p}/{site}/online",
        f"pattern read {p}/{site}/state/#",
        f"pattern read {p}/{site}/devices/#",
        f"pattern read {p}/{site}/events/#",
        "",
    ]
    return "\n".join(lines)


def _bridge_topics(config: MqttConfig, site: str, peer: str) -> list[tuple[str, str]]:
    """(topic pattern, "in" | "out") the bridge from ``site``'s broker to ``peer``'s carries."""
    pc = config.federation.peers.get(peer)
    if pc is None:
        raise KeyError(peer)
    p = config.topic_prefix
    topics = [(f"{p}/{site}/online", "out"), (f"{p}/{site}/state/#", "out")]
    if pc.accept or pc.confirm:
        topics += [(f"{p}/{site}/fed/in/{peer}", "in"), (f"{p}/{peer}/fed/reply/{site}", "out")]
    if pc.send:
        topics += [(f"{p}/{peer}/fed/in/{site}", "out"), (f"{p}/{site}/fed/reply/{peer}", "in")]
    if pc.watch:
        topics += [(f"{p}/{peer}/online", "in"), (f"{p}/{peer}/state/#", "in")]
    return topics


def bridge(
    config: MqttConfig,
    site: str,
    peer: str,
    address: str,
    *,
    remote_username: str | None = None,
    keepalive: int = 30,
    restart_timeout: str = "2 30",
) -> str:
    """A bridge section for this centre's broker to ``peer``'s broker.

    It carries only what the policy on this side needs: this centre's state and
    availability out (for the peer to watch), the commands the peer may send here and the
    answers back, the commands this centre may send the peer and their answers, and the
    peer's state in if this centre watches it. One bridge per pair of brokers suffices.
    """
    topics = _bridge_topics(config, site, peer)
    p = config.topic_prefix
    lines = [
        f"# wallctl: bridge from the broker of {site} to the broker of {peer}",
        f"connection {site}-to-{peer}",
        f"address {address}",
        f"remote_clientid bridge-{site}-{peer}",
        f"remote_username {remote_username or f'bridge-{site}'}",
        "# remote_password ... (or a certificate: bridge_cafile, bridge_certfile, bridge_keyfile)",
        "bridge_protocol_version mqttv50",
        "cleansession true",
        # Reconnect backoff (base and cap, seconds; mosquitto adds jitter).
        f"restart_timeout {restart_timeout}",
        f"keepalive_interval {keepalive}",
        # Both brokers learn when the bridge is up (1) or down (0, the bridge's will).
        "notifications true",
        f"notification_topic {p}/{site}/bridge/{peer}",
    ]
    lines += [f"topic {t} {d} 1" for t, d in topics]
    return "\n".join(lines) + "\n"


def bridge_acl(
    config: MqttConfig, site: str, peer: str, *, remote_username: str | None = None
) -> str:
    """ACL lines for the peer's broker: what the bridge's account there may do, no more."""
    p = config.topic_prefix
    lines = [
        f"# wallctl: on the broker of {peer}, for the bridge from {site}",
        f"user {remote_username or f'bridge-{site}'}",
        f"topic write {p}/{site}/bridge/{peer}",
    ]
    lines += [
        f"topic {'write' if d == 'out' else 'read'} {t}"
        for t, d in _bridge_topics(config, site, peer)
    ]
    return "\n".join(lines) + "\n"
