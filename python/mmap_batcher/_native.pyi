"""Type stubs of the Rust extension ``mmap_batcher._native``."""

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NoReturn, final

if TYPE_CHECKING:
    from .torch import TorchDataset

_Path = str | bytes | os.PathLike[str] | os.PathLike[bytes]

__all__ = [
    "COLUMNS",
    "MAX_LINE_LEN",
    "AccessError",
    "ArrowBatch",
    "BadRecordError",
    "CompressionError",
    "BatchIter",
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
    "JsonFunction",
    "Table",
    "__version__",
    "_arrow_batch_from_ipc",
    "_restore_batcher",
    "cli_main",
    "json_functions",
]

COLUMNS: list[str]
MAX_LINE_LEN: int
__version__: str

class MmapBatcherError(Exception):
    """Base class of every mmap-batcher error."""

class MissingFileError(MmapBatcherError, FileNotFoundError):
    """The file does not exist."""

class NoInputError(MmapBatcherError, FileNotFoundError):
    """A glob matched no file, or the list of inputs is empty."""

class DirectoryError(MmapBatcherError, IsADirectoryError):
    """The path is a directory, not a file of lines."""

class AccessError(MmapBatcherError, PermissionError):
    """The process may not read the file."""

class SpecialFileError(MmapBatcherError, OSError):
    """A device or socket, which cannot be served."""

class ReadError(MmapBatcherError, OSError):
    """Mapping, reading or stat-ing a file failed."""

class CompressionError(MmapBatcherError, OSError):
    """A compressed file is corrupt or truncated, or in a format not decoded (xz, bzip2, lz4)."""

class OptionError(MmapBatcherError, ValueError):
    """An argument is out of range or of the wrong kind."""

class DuplicateInputError(MmapBatcherError, ValueError):
    """The same file was given twice."""

class LineTooLongError(MmapBatcherError, ValueError):
    """A line is longer than one Arrow view buffer can address (2 GiB)."""

    path: str | None
    line_number: int
    byte_offset: int | None

class InvalidUtf8Error(MmapBatcherError, ValueError):
    """A kept line is not valid UTF-8 (string/Arrow path only)."""

    path: str | None
    line_number: int
    byte_offset: int | None

class BadRecordError(MmapBatcherError, ValueError):
    """A JSON Lines record is not a JSON object or lacks its string field (field=, on_bad_record="error")."""

    path: str | None
    line_number: int
    byte_offset: int

class FileChangedError(MmapBatcherError, RuntimeError):
    """The file changed since it was indexed; reopen it."""

class CorruptIndexError(MmapBatcherError, OSError):
    """A persisted line index disagrees with its file."""

class StateMismatchError(MmapBatcherError, ValueError):
    """A resume state does not match this batcher (another file, other options), or is malformed."""

@final
class ArrowBatch:
    """An Arrow record batch whose ``line`` views point into the file's map (Arrow PyCapsule interface)."""

    def __arrow_c_array__(self, requested_schema: object | None = None) -> Any: ...
    def __arrow_c_schema__(self) -> Any: ...
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> Any: ...
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
    def nbytes(self) -> int: ...
    def compact(self) -> ArrowBatch: ...
    def to_large(self) -> ArrowBatch: ...
    def line_buffers(self) -> tuple[bytearray, bytearray]: ...
    def __reduce__(self) -> tuple[Any, tuple[bytes, int, int]]: ...

@final
class BatchIter:
    """An iterator of batches, built ahead on every core (``threads=``) and handed out in order."""

    def __iter__(self) -> BatchIter: ...
    def __next__(self) -> Any: ...

@final
class JsonFunction:
    """One of the JSON functions of SQL over JSON Lines, for datafusion-python's ``SessionContext.register_udf(ScalarUDF.from_pycapsule(f))`` (``mmap_batcher.register_json_functions(ctx)`` registers them all)."""

    @property
    def name(self) -> str: ...
    def __datafusion_scalar_udf__(self) -> Any: ...

def json_functions() -> list[JsonFunction]: ...
@final
class Table:
    """Epochs of a batcher as a table for datafusion-python (``SessionContext.register_table``)."""

    def __datafusion_table_provider__(self, session: object) -> Any: ...

@final
class Epoch:
    """One epoch: a fixed order of the kept lines, cut into batches (this shard's only)."""

    @property
    def number(self) -> int: ...
    @property
    def index(self) -> int:
        """Deprecated: ``number``."""
    @property
    def num_batches(self) -> int: ...
    @property
    def batch_ids(self) -> list[int]: ...
    def __len__(self) -> int: ...
    def batches(self) -> Iterator[list[bytes]]: ...
    def __iter__(self) -> Iterator[list[bytes]]: ...
    def record_batches(
        self,
        columns: Sequence[str] | None = None,
        *,
        compact: bool = False,
        layout: Literal["view", "large"] | None = None,
        line_type: Literal["view", "large"] | None = None,
    ) -> Iterator[ArrowBatch]: ...
    def dataframes(self, columns: Sequence[str] | None = None) -> Iterator[Any]: ...
    def batch(self, b: int, columns: Sequence[str] | None = None, *, compact: bool = False) -> ArrowBatch: ...
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> Any: ...

@final
class MmapBatcher:
    """Batches of lines from memory-mapped files, shuffled anew each epoch."""

    def __new__(
        cls,
        paths: _Path | Sequence[_Path] | Mapping[str, _Path | Sequence[_Path]],
        batch_size: int = 100,
        shuffle: bool | Literal["global", "block", "none"] = True,
        ignore_leftovers: bool = True,
        skip_blank_lines: bool = True,
        comment_char: str | bytes | None = "#",
        seed: int | None = None,
        *,
        keep_terminator: bool = False,
        binary: bool = False,
        worker_id: int = 0,
        num_workers: int = 1,
        rank: int = 0,
        world_size: int = 1,
        shuffle_block: int = 16777216,
        shuffle_window: int = 16,
        even_shards: bool = False,
        index_cache: bool = True,
        index_path: _Path | None = None,
        index_dir: _Path | None = None,
        io: Literal["auto", "cached", "disk", "copy"] = "auto",
        output: Literal["bytes", "arrow", "polars"] = "bytes",
        max_open_files: int | None = None,
        threads: int | None = None,
        trust_files: bool = False,
        header_lines: int = 0,
        on_bad_file: Literal["error", "skip"] = "error",
        on_duplicate_file: Literal["skip", "error"] = "skip",
        weights: Mapping[str, float] | None = None,
        lines_per_epoch: int | None = None,
        field: str | None = None,
        fields: Sequence[str] | None = None,
        on_bad_record: Literal["error", "skip", "null"] = "error",
    ) -> MmapBatcher: ...
    @property
    def sources(self) -> list[dict[str, Any]]: ...
    @property
    def paths(self) -> list[str]: ...
    @property
    def skipped_files(self) -> list[tuple[str, str]]: ...
    @property
    def filename(self) -> str:
        """Deprecated: ``paths[0]``."""
    @property
    def filenames(self) -> list[str]:
        """Deprecated: ``paths``."""
    @property
    def seed(self) -> int: ...
    @property
    def output(self) -> Literal["bytes", "arrow", "polars"]: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def num_lines(self) -> int: ...
    @property
    def physical_lines(self) -> int: ...
    @property
    def num_batches(self) -> int: ...
    @property
    def lines_per_epoch(self) -> int: ...
    def header(self, file: int = 0) -> list[bytes]: ...
    @property
    def num_files(self) -> int: ...
    @property
    def shard(self) -> tuple[int, int]: ...
    @property
    def index_paths(self) -> list[str | None]: ...
    @property
    def index_status(self) -> list[Literal["loaded", "written", "memory"]]: ...
    @property
    def closed(self) -> bool: ...
    @property
    def epoch_number(self) -> int: ...
    @property
    def columns(self) -> list[str]: ...
    def __len__(self) -> NoReturn: ...
    def __bool__(self) -> bool: ...
    def __getitem__(self, k: int, /) -> bytes: ...
    @property
    def lines(self) -> Lines: ...
    def torch(self, **kwargs: Any) -> TorchDataset: ...
    def line(self, number: int, file: int = 0) -> bytes | None: ...
    def epoch(self, number: int) -> Epoch: ...
    def epochs(self, n: int, start: int = 0) -> list[Epoch]: ...
    def with_shard(
        self,
        worker_id: int = 0,
        num_workers: int = 1,
        rank: int = 0,
        world_size: int = 1,
        *,
        output: Literal["bytes", "arrow", "polars"] | None = None,
    ) -> MmapBatcher: ...
    def __iter__(self) -> Iterator[Any]: ...
    def set_epoch(self, epoch: int) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
    def combine_states(self, states: Sequence[dict[str, Any]], *, lockstep: bool = False) -> dict[str, Any]: ...
    def validate_utf8(self) -> None: ...
    def map_address_range(self) -> tuple[int, int]: ...
    def _empty_batch(self) -> ArrowBatch: ...
    def _scan(
        self,
        columns: Sequence[str],
        epochs: tuple[int, int],
        batches: tuple[int, int],
        units: tuple[int, int] | None = None,
        layout: Literal["view", "large"] | None = None,
        files: Sequence[str] | None = None,
        line_numbers: tuple[int, int] | None = None,
        join_rows: int = 1,
        sources: Sequence[str] | None = None,
    ) -> Iterator[ArrowBatch]: ...
    def _unit_splits(self, epochs: int, parts: int) -> list[tuple[int, int, int]]: ...
    def table(self, epochs: int = 1) -> Table: ...
    def close(self) -> None: ...
    def __enter__(self) -> MmapBatcher: ...
    def __exit__(self, *_exc: object) -> None: ...
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]: ...

@final
class Lines:
    """The kept lines of a batcher's corpus as a read-only sequence (a map-style source)."""

    def __len__(self) -> int: ...
    def __getitem__(self, k: int, /) -> bytes: ...
    @property
    def batcher(self) -> MmapBatcher: ...
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]: ...

def _restore_batcher(
    paths: Sequence[bytes],
    options: str,
    parts: tuple[int, int, int, int],
    cursor: tuple[int, str, int],
    output: str,
    sources: str | None = None,
) -> MmapBatcher: ...
def _arrow_batch_from_ipc(data: bytes, epoch: int, batch: int) -> ArrowBatch: ...
def cli_main(argv: Sequence[str | bytes | os.PathLike[str]]) -> int: ...
