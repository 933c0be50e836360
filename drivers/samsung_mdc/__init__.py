"""Samsung MDC (Multiple Display Control; TCP 1515 or RS-232): codec, driver, simulator."""

from __future__ import annotations

from drivers.registry import SimOptions, register
from drivers.samsung_mdc.driver import SamsungMdcDriver
from drivers.samsung_mdc.simulator import SamsungMdcSimulator


def _simulator(opts: SimOptions) -> SamsungMdcSimulator:
    # ``inputs`` is a matrix notion; the display answers to any ID it is asked for (a password
    # turns on the secured protocol, whose TLS the simulator does not speak).
    return SamsungMdcSimulator(
        ids=None, secured=opts.password is not None, reply_delay_s=opts.reply_delay_s
    )


register(SamsungMdcDriver, _simulator)
