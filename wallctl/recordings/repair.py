"""Cut a fragmented MP4 that a crash left mid-fragment back to its last whole fragment.

A fragmented MP4 is a run of top-level boxes: ``ftyp``, ``moov`` (written first, with
``empty_moov``), then ``moof`` + ``mdat`` pairs, one per keyframe. A process killed while
writing leaves a box cut short, or a ``moof`` without its ``mdat``; players stumble on
it. Only box headers are read (8 or 16 bytes per box), never the media.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO


def complete_length(f: BinaryIO, size: int) -> int:
    """The length of the file's prefix made of whole boxes ending with a whole fragment."""
    pos = 0
    good = 0
    pending_moof: int | None = None
    while pos + 8 <= size:
        f.seek(pos)
        header = f.read(16)
        if len(header) < 8:
            break
        box_size, box_type = struct.unpack(">I4s", header[:8])
        if box_size == 1:
            if len(header) < 16:
                break
            (box_size,) = struct.unpack(">Q", header[8:16])
        elif box_size == 0:
            box_size = size - pos  # "to the end of the file": only whole if it is the last
        if box_size < 8 or pos + box_size > size:
            break
        if box_type == b"moof":
            pending_moof = pos
        elif box_type == b"mdat":
            pending_moof = None
            good = pos + box_size
        elif pending_moof is None:
            good = pos + box_size
        pos += box_size
    return good


def truncate_to_complete(path: Path) -> tuple[int, int]:
    """Cut ``path`` to its whole boxes; return (size before, size after)."""
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        keep = complete_length(f, size)
        if keep < size:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    return size, keep
