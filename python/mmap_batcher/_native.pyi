"""Type stubs of the Rust extension ``mmap_batcher._native``."""

from os import PathLike

COLUMNS: list[str]
MAX_LINE_LEN: int

class InvalidUtf8Error(ValueError):
    """A served line is not valid UTF-8 (string/Arrow path only)."""

    path: str
    line_number: int
    byte_offset: int | None

class LineTooLongError(ValueError):
    """A line is longer than one Arrow view buffer can address (2 GiB)."""

    path: str
    line_number: int
    byte_offset: int | None

class FileChangedError(RuntimeError):
    """The file's size or modification time changed since it was indexed."""

class ArrowBatch:
    """A zero-copy Arrow record batch (Arrow PyCapsule interface)."""

    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]: ...
    def __arrow_c_schema__(self) -> object: ...
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...
    @property
    def num_rows(self) -> int: ...
    def __len__(self) -> int: ...
    @property
    def column_names(self) -> list[str]: ...
    @property
    def epoch(self) -> int: ...
    @property
    def batch(self) -> int: ...
    @property
    def nbytes(self) -> int:
        """Bytes Arrow reports: the whole map window(s) while zero-copy."""
    def compact(self) -> ArrowBatch:
        """A copy holding only the line bytes its rows reference."""

class BatchLinesIter:
    """``list[bytes]`` batches, each located one batch ahead on a second thread."""

    def __iter__(self) -> BatchLinesIter: ...
    def __next__(self) -> list[bytes]: ...

class NativeEpoch:
    @property
    def index(self) -> int: ...
    @property
    def num_batches(self) -> int: ...
    def shard_batches(self, shard: int, shards: int) -> list[int]: ...
    def iter_batch_lines(self, batch_ids: list[int]) -> BatchLinesIter: ...
    def record_batch(self, b: int, columns: list[str] | None = None, compact: bool = False) -> ArrowBatch: ...

class NativeBatcher:
    def __init__(
        self,
        path: str | PathLike[str],
        batch_size: int,
        shuffle: bool,
        ignore_leftovers: bool,
        skip_blank_lines: bool,
        comment_char: int | None,
        seed: int | None,
        keep_terminator: bool,
        binary: bool,
    ) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def seed(self) -> int: ...
    @property
    def num_lines(self) -> int: ...
    @property
    def physical_lines(self) -> int: ...
    @property
    def num_batches(self) -> int: ...
    @property
    def lines_per_epoch(self) -> int: ...
    def map_address_range(self) -> tuple[int, int]: ...
    def validate_utf8(self) -> None: ...
    def epoch(self, index: int) -> NativeEpoch: ...
