"""Samsung MDC (Multiple Display Control; TCP 1515 or RS-232): codec, driver, simulator."""

from __future__ import annotations

from drivers.registry import SimOptions, register
from drivers.samsung_mdc.driver import SamsungMdcDriver
from drivers.samsung_mdc.simulator import SamsungMdcSimulator


def _simulator(opts: SimOptions) -> SamsungMdcSimulator:
    # ``inputs`` is a matrix notion. Without a configured display_id the display answers
    # to any ID it is asked for; with one (and a chain) only those IDs answer, as on a
    # real daisy chain. A password turns on the secured protocol, whose TLS the
    # simulator does not speak.
    o = opts.options
    ids: tuple[int, ...] | None = None
    if "display_id" in o or "chain" in o:
        ids = (int(o.get("display_id", 1)), *(int(i) for i in o.get("chain", ())))
    return SamsungMdcSimulator(
        ids=ids,
        warmup_s=float(o.get("warmup_s", 0.0)),
        secured=opts.password is not None,
        reply_delay_s=opts.reply_delay_s,
    )


register(SamsungMdcDriver, _simulator)
