"""Serve huge line files as seeded, shuffled batches of lines, epoch after epoch.

Each file is memory-mapped and indexed once (8 bytes per kept line, kept in an index file
that later opens map in microseconds); nothing else is loaded. Batches come as
``list[bytes]`` (the original ``MmapBatcher`` API) or as Arrow record batches whose line
bytes stay in the map (zero-copy), ready for pyarrow, Polars, DuckDB and any Arrow
PyCapsule consumer. See ``MmapBatcher``, ``scan_lines``, ``mmap_batcher.ray`` and, for
PyTorch, ``MmapBatcher.torch()`` (``mmap_batcher.torch``, which imports torch).

Every error is a ``MmapBatcherError``, and also the built-in exception a caller would
catch for it (``MissingFileError`` is a ``FileNotFoundError``, ``OptionError`` a
``ValueError``, ...).
"""

from ._native import (
    COLUMNS,
    MAX_LINE_LEN,
    AccessError,
    ArrowBatch,
    BadRecordError,
    CompressionError,
    CorruptIndexError,
    DirectoryError,
    DuplicateInputError,
    Epoch,
    FileChangedError,
    InvalidUtf8Error,
    LineTooLongError,
    Lines,
    MissingFileError,
    MmapBatcher,
    MmapBatcherError,
    NoInputError,
    OptionError,
    ReadError,
    SpecialFileError,
    StateMismatchError,
    __version__,
)
from ._datafusion import register_json_functions
from ._polars import scan_lines

__all__ = [
    "COLUMNS",
    "MAX_LINE_LEN",
    "AccessError",
    "ArrowBatch",
    "BadRecordError",
    "CompressionError",
    "CorruptIndexError",
    "DirectoryError",
    "DuplicateInputError",
    "Epoch",
    "FileChangedError",
    "InvalidUtf8Error",
    "LineTooLongError",
    "Lines",
    "MissingFileError",
    "MmapBatcher",
    "MmapBatcherError",
    "NoInputError",
    "OptionError",
    "ReadError",
    "SpecialFileError",
    "StateMismatchError",
    "__version__",
    "register_json_functions",
    "scan_lines",
]
