"""Cisco collaboration endpoints (RoomOS / CE): the xAPI over WebSocket and tshell.

``values`` (what a client value may be), ``tshell`` and ``jsonrpc`` (the two wire forms,
sans I/O), ``state`` (calls, audio, presentation from status pairs), ``driver``,
``farend`` (the simulated network shared with the Huawei simulator), ``model`` (the
simulated endpoint) and ``simulator`` (its WebSocket and tshell faces, and hosting).
"""

from __future__ import annotations

from drivers.cisco_xapi.driver import CiscoXapiDriver
from drivers.cisco_xapi.simulator import CiscoModel, CiscoTshellSimulator
from drivers.registry import SimOptions, register
from drivers.simulator import DeviceSimulator


def _simulator(opts: SimOptions) -> DeviceSimulator:
    # The framework hosts byte-stream simulators: this is tshell (TCP or pty). The
    # WebSocket form runs from `wallctl simulate cisco-xapi` (see simulator.main).
    model = CiscoModel(password=opts.password or "")
    return CiscoTshellSimulator(
        model, login=opts.password is not None, reply_delay_s=opts.reply_delay_s
    )


PROTOCOL = register(CiscoXapiDriver, _simulator)
