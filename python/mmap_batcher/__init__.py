"""Serve a huge line file as seeded, shuffled batches of lines, epoch after epoch.

The file is memory-mapped and indexed once (16 bytes per kept line); nothing else is
loaded. Batches come as ``list[bytes]`` (the original ``MmapBatcher`` API) or as Arrow
record batches whose line bytes stay in the map (zero-copy), ready for pyarrow, Polars
and any Arrow PyCapsule consumer. See ``MmapBatcher`` and ``scan_lines``.
"""

from ._batcher import Epoch, MmapBatcher
from ._native import (
    COLUMNS,
    MAX_LINE_LEN,
    ArrowBatch,
    FileChangedError,
    InvalidUtf8Error,
    LineTooLongError,
)
from ._polars import scan_lines

__all__ = [
    "COLUMNS",
    "MAX_LINE_LEN",
    "ArrowBatch",
    "Epoch",
    "FileChangedError",
    "InvalidUtf8Error",
    "LineTooLongError",
    "MmapBatcher",
    "scan_lines",
]
