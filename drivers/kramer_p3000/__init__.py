"""Kramer Protocol 3000 matrix switchers: codec, driver, simulator (``kramer-p3000``)."""

from drivers.kramer_p3000.driver import KramerDriver
from drivers.kramer_p3000.simulator import KramerSimulator
from drivers.registry import SimOptions, register


def _simulator(o: SimOptions) -> KramerSimulator:
    return KramerSimulator(o.inputs, o.outputs, password=o.password, reply_delay_s=o.reply_delay_s)


register(KramerDriver, _simulator)
