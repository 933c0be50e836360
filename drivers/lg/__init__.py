"""LG signage displays (RS-232C ``ka``/``xb``/... commands): codec, driver, simulator."""

from __future__ import annotations

from drivers.lg.driver import LgDriver
from drivers.lg.simulator import LgSimulator
from drivers.registry import SimOptions, register


def _simulator(opts: SimOptions) -> LgSimulator:
    # Without a configured set_id every ID answers; with one (and a chain) only those.
    o = opts.options
    ids: tuple[int, ...] | None = None
    if "set_id" in o or "chain" in o:
        ids = (int(o.get("set_id", 1)), *(int(i) for i in o.get("chain", ())))
    return LgSimulator(
        ids=ids, warmup_s=float(o.get("warmup_s", 0.0)), reply_delay_s=opts.reply_delay_s
    )


register(LgDriver, _simulator)
