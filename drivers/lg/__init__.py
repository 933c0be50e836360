"""LG signage displays (RS-232C ``ka``/``xb``/... commands): codec, driver, simulator."""

from __future__ import annotations

from drivers.lg.driver import LgDriver
from drivers.lg.simulator import LgSimulator
from drivers.registry import SimOptions, register


def _simulator(opts: SimOptions) -> LgSimulator:
    return LgSimulator(ids=None, reply_delay_s=opts.reply_delay_s)


register(LgDriver, _simulator)
