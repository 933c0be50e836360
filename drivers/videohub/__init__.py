"""Blackmagic Videohub (Ethernet protocol, TCP 9990): codec, driver, simulator."""

from __future__ import annotations

from drivers.registry import SimOptions, register
from drivers.videohub.driver import VideohubDriver
from drivers.videohub.simulator import VideohubSimulator


def _simulator(opts: SimOptions) -> VideohubSimulator:
    return VideohubSimulator(
        inputs=opts.inputs, outputs=opts.outputs, reply_delay_s=opts.reply_delay_s
    )


register(VideohubDriver, _simulator)
