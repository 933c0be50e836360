"""The simulated network behind a simulated codec: what happens to a dialled call.

Used by the Cisco and the Huawei simulators alike, so a rehearsal gives the same far
ends whichever codec dials them. The outcome of a call is chosen from the dial string
(explicit rules first, then words in the number an integrator can type from memory):

- ``busy`` anywhere in the number: the far end is busy (SIP 486)
- ``unreachable`` or ``404``: nobody answers at that address (SIP 404)
- ``reject``: the far end declines (SIP 603)
- ``noanswer``: it rings until ``no_answer_s``, then the call fails (SIP 480)
- ``drop``: it answers, then hangs up after ``drop_after_s``
- anything else: it rings for ``ring_s`` and answers

Timing is configurable so tests can run with zero delays and demos with real ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["answer", "busy", "unreachable", "reject", "no_answer", "drop"]
OUTCOMES: tuple[Outcome, ...] = ("answer", "busy", "unreachable", "reject", "no_answer", "drop")

# Outcome -> (reason word of the conference layer, SIP cause code, cause text).
CAUSES: dict[str, tuple[str, int, str]] = {
    "busy": ("busy", 486, "Busy Here"),
    "unreachable": ("unreachable", 404, "Not Found"),
    "reject": ("rejected", 603, "Decline"),
    "no_answer": ("no_answer", 480, "Temporarily Unavailable"),
    "drop": ("remote_hangup", 0, "Remote disconnect"),
    "remote_hangup": ("remote_hangup", 0, "Remote disconnect"),
    "local_hangup": ("local_hangup", 0, "Local disconnect"),
}


@dataclass
class FarEnd:
    # Dialling until the far end is reached (or found busy / unreachable).
    setup_s: float = 0.2
    # Ringing until it answers.
    ring_s: float = 1.0
    # How long an unanswered call rings before it fails.
    no_answer_s: float = 30.0
    # For "drop" numbers: how long the call lasts before the far end hangs up.
    drop_after_s: float = 2.0
    # The highest call rate (kbps) the network grants.
    max_call_rate: int = 6000
    # Exact dial strings with a fixed outcome (checked before the words above).
    rules: Mapping[str, Outcome] = field(default_factory=dict)

    def outcome(self, number: str) -> Outcome:
        if number in self.rules:
            return self.rules[number]
        low = number.lower()
        if "busy" in low:
            return "busy"
        if "unreachable" in low or "404" in low:
            return "unreachable"
        if "reject" in low:
            return "reject"
        if "noanswer" in low:
            return "no_answer"
        if "drop" in low:
            return "drop"
        return "answer"

    def call_rate(self, requested: int | None) -> int:
        return min(requested or self.max_call_rate, self.max_call_rate)


# Simulator options (``SimOptions.options``) that shape the simulated network, in ms.
FAREND_OPTIONS = {"setup_ms": "setup_s", "ring_ms": "ring_s", "drop_after_ms": "drop_after_s"}


def farend_from_options(options: Mapping[str, object]) -> FarEnd:
    """A FarEnd from ``setup_ms``, ``ring_ms``, ``drop_after_ms`` (0..600000) and
    ``max_call_rate`` (kbps, 64..100000); absent keys keep the defaults. ValueError
    names the key at fault."""
    farend = FarEnd()
    for key, attr in FAREND_OPTIONS.items():
        if key in options:
            value = options[key]
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 600000:
                raise ValueError(f"{key} must be a whole number of ms, 0..600000")
            setattr(farend, attr, value / 1000)
    if "max_call_rate" in options:
        rate = options["max_call_rate"]
        if not isinstance(rate, int) or isinstance(rate, bool) or not 64 <= rate <= 100000:
            raise ValueError("max_call_rate must be 64..100000 kbps")
        farend.max_call_rate = rate
    return farend
