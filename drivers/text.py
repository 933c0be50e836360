"""Making client text safe for a device line.

A label or name from a client may carry CR/LF (which would end the command early and
start a smuggled one), ESC (which starts an Extron or VT100 sequence), other C0/C1
controls, or the protocol's own delimiters. :func:`clean_text` removes all of them,
trims, and cuts to the device's length in characters.
"""

from __future__ import annotations

import unicodedata


def clean_text(text: str, max_len: int, forbidden: str = "", ascii_only: bool = False) -> str:
    """``text`` without control characters (C0, DEL, C1, line/paragraph separators),
    without any character of ``forbidden``, trimmed and cut to ``max_len`` characters."""
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            continue
        if ch in forbidden:
            continue
        if ascii_only and not (32 <= ord(ch) < 127):
            continue
        out.append(ch)
    return "".join(out).strip()[:max_len].strip()
