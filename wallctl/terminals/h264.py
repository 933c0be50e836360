"""H.264 Annex-B access units: which NAL units they hold (sans-I/O)."""

from __future__ import annotations

NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8


def nal_types(data: bytes) -> list[int]:
    """The nal_unit_type of every NAL unit after a 3- or 4-byte start code."""
    out: list[int] = []
    i = data.find(b"\x00\x00\x01")
    while i != -1 and i + 3 < len(data):
        out.append(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return out


def is_keyframe(data: bytes) -> bool:
    """An access unit a decoder can start from: an IDR picture."""
    return NAL_IDR in nal_types(data)


def nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B access unit, without their start codes."""
    out: list[bytes] = []
    i = data.find(b"\x00\x00\x01")
    while i != -1:
        j = data.find(b"\x00\x00\x01", i + 3)
        unit = data[i + 3 : j if j != -1 else len(data)]
        if j != -1:
            unit = unit.rstrip(b"\x00")  # the next 4-byte start code's leading zero
        out.append(unit)
        i = j
    return out
