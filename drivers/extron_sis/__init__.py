"""Extron SIS matrix switchers: codec, driver, simulator; registered as ``extron-sis``."""

from drivers.extron_sis.driver import ExtronDriver
from drivers.extron_sis.simulator import ExtronSimulator
from drivers.registry import SimOptions, register


def _simulator(o: SimOptions) -> ExtronSimulator:
    return ExtronSimulator(o.inputs, o.outputs, password=o.password, reply_delay_s=o.reply_delay_s)


register(ExtronDriver, _simulator)
