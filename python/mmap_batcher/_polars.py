"""``scan_lines``: a shuffled, epoch-aware Polars lazy scan, as a Polars IO plugin.

Only the Polars glue lives here: the schema comes from the batcher, the batches from its
``_scan`` (a rectangle of epochs × batches read ahead on a Rust thread), and the predicate's
``epoch``/``batch``/``line_number`` comparisons and ``file ==`` / ``source ==`` tests become the core's row
filter (the one the SQL table uses).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from ._native import MmapBatcher

if TYPE_CHECKING:
    import polars as pl

_OPS = {"Eq", "Lt", "LtEq", "Gt", "GtEq"}


def _bounds(node: Any, name: str, lo: int, hi: int) -> tuple[int, int] | None:
    """The half-open range ``[lo, hi)`` of column ``name`` narrowed by one conjunct, or
    ``None`` when the conjunct is not a plain comparison of ``name`` with an integer.

    Polars hands an IO source one combined predicate (as a serializable expression);
    this reads its JSON form. Correctness never depends on it: the whole predicate is
    applied to every batch anyway; an unrecognised form only reads more batches.
    """

    def int_literal(n: Any) -> int | None:
        try:
            v = n["Literal"]["Dyn"]["Int"]
        except (KeyError, TypeError):
            return None
        return v if isinstance(v, int) else None

    def is_col(n: Any) -> bool:
        return isinstance(n, dict) and n.get("Column") == name

    binary = node.get("BinaryExpr") if isinstance(node, dict) else None
    if isinstance(binary, dict) and binary.get("op") in _OPS and is_col(binary.get("left")):
        v = int_literal(binary.get("right"))
        if v is None:
            return None
        op = binary["op"]
        lo2, hi2 = {
            "Eq": (v, v + 1),
            "Lt": (lo, v),
            "LtEq": (lo, v + 1),
            "Gt": (v + 1, hi),
            "GtEq": (v, hi),
        }[op]
        return max(lo, lo2), max(max(lo, lo2), min(hi, hi2))
    func = node.get("Function") if isinstance(node, dict) else None
    if isinstance(func, dict):
        between = func.get("function", {}).get("Boolean", {}).get("IsBetween") if isinstance(func.get("function"), dict) else None
        inputs = func.get("input", [])
        if isinstance(between, dict) and len(inputs) == 3 and is_col(inputs[0]):
            a, b = int_literal(inputs[1]), int_literal(inputs[2])
            if a is None or b is None:
                return None
            closed = between.get("closed", "Both")
            start = a if closed in ("Both", "Left") else a + 1
            end = b + 1 if closed in ("Both", "Right") else b
            return max(lo, start), max(max(lo, start), min(hi, end))
    return None


def _conjuncts(tree: Any) -> list[Any]:
    binary = tree.get("BinaryExpr") if isinstance(tree, dict) else None
    if isinstance(binary, dict) and binary.get("op") in ("And", "LogicalAnd"):
        return _conjuncts(binary["left"]) + _conjuncts(binary["right"])
    return [tree]


def _equals(node: Any, column: str) -> str | None:
    """The string of a ``column == "string"`` conjunct (``file``, ``source``), else ``None``."""
    binary = node.get("BinaryExpr") if isinstance(node, dict) else None
    if not isinstance(binary, dict) or binary.get("op") != "Eq" or binary.get("left") != {"Column": column}:
        return None
    try:
        value = binary["right"]["Literal"]["Scalar"]["String"]
    except (KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


_NO_LIMIT = 2**64 - 1


class _Pushdown(NamedTuple):
    """What a predicate allows: epochs, batches and line numbers (half-open), files, sources."""

    epochs: tuple[int, int]
    batches: tuple[int, int]
    line_numbers: tuple[int, int] | None
    files: list[str] | None
    sources: list[str] | None = None


def _pushdown(predicate: pl.Expr | None, epochs: int, batches: int) -> _Pushdown:
    """The epochs, batches, line numbers and files that can hold rows matching ``predicate``."""
    e, b, n = (0, epochs), (0, batches), (0, _NO_LIMIT)
    files: list[str] | None = None
    sources: list[str] | None = None
    if predicate is not None:
        try:
            tree = json.loads(predicate.meta.serialize(format="json"))
        except Exception:
            tree = None
        for part in _conjuncts(tree) if tree is not None else []:
            e = _bounds(part, "epoch", *e) or e
            b = _bounds(part, "batch", *b) or b
            n = _bounds(part, "line_number", *n) or n
            path = _equals(part, "file")
            if path is not None:
                files = [f for f in (files if files is not None else [path]) if f == path]
            name = _equals(part, "source")
            if name is not None:
                sources = [s for s in (sources if sources is not None else [name]) if s == name]
    def clamp(r: tuple[int, int]) -> tuple[int, int]:
        # A literal beyond u64 (``== 2**70``) matches no row; the scan takes u64 bounds.
        return min(r[0], _NO_LIMIT), min(r[1], _NO_LIMIT)

    return _Pushdown(clamp(e), clamp(b), None if n == (0, _NO_LIMIT) else clamp(n), files, sources)


def scan_lines(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    batch_size: int = 8192,
    shuffle: bool | Literal["global", "block", "none"] = True,
    seed: int | None = None,
    epochs: int = 1,
    ignore_leftovers: bool = False,
    skip_blank_lines: bool = True,
    comment_char: str | bytes | None = "#",
    keep_terminator: bool = False,
    binary: bool = False,
    **options: Any,
) -> pl.LazyFrame:
    """Lazily scan ``epochs`` shuffled epochs of line files as a ``polars.LazyFrame``.

    Columns: ``line`` (``String``, or ``Binary`` with ``binary=True``), ``line_number``
    (1-based, as ``grep -n``), ``byte_offset``, ``epoch`` and ``batch`` (all ``UInt64``), and
    ``file`` (categorical path) when ``path`` names several files. Rows come batch by batch
    in each epoch's seeded order; line bytes are imported from the file's map without
    copying.

    How it differs from ``polars.scan_lines``: rows are served in a reproducible shuffled
    order, for several epochs, with blank and comment lines skipped by default and with
    the original line numbers and byte offsets; ``polars.scan_lines`` reads one pass in
    file order. The files are indexed (or their index files mapped) when this function is
    called, so a missing file fails here and the ``seed`` (picked if ``None``) is fixed
    for every ``collect()``.

    ``batch_size`` is the scan's unit (8,192 lines: a file-order scan runs at the speed of
    ``polars.scan_lines``, and a shuffled one's lines are still in the CPU cache when Polars
    reads them, which 65,536-line units were not); the shuffle does not depend on it. Leftovers are kept
    by default (a scan reads every line), unlike ``MmapBatcher``. Other keywords
    (``shuffle_block``, ``shuffle_window``, ``index_cache``, ``io``, ...) go to ``MmapBatcher``.

    Pushdown: only the needed columns are built (``line`` is not read unless asked for);
    comparisons of ``epoch`` and ``batch`` with integers skip whole batches,
    comparisons of ``line_number``, ``file == "path"`` and ``source == "name"`` read only the matching lines
    (found in the index; in file order, whole batches are skipped too); ``head(n)`` stops
    early. Polars' ``batch_size`` hint is ignored.
    """
    import polars as pl
    from polars.io.plugins import register_io_source

    batcher = MmapBatcher(
        path,
        batch_size=batch_size,
        shuffle=shuffle,
        ignore_leftovers=ignore_leftovers,
        skip_blank_lines=skip_blank_lines,
        comment_char=comment_char,
        seed=seed,
        keep_terminator=keep_terminator,
        binary=binary,
        **options,
    )
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an integer >= 0, got {epochs!r}")
    schema = pl.DataFrame(batcher._empty_batch()).schema
    num_batches = batcher.num_batches

    def source(
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        _batch_size_hint: int | None,
    ) -> Iterator[pl.DataFrame]:
        wanted = list(with_columns) if with_columns is not None else list(schema)
        needed = list(wanted)
        if predicate is not None:
            needed += [c for c in predicate.meta.root_names() if c not in needed]
        rows_left = n_rows if n_rows is not None else -1
        allowed = _pushdown(predicate, epochs, num_batches)
        # Frames of at least 8,192 rows (several batches joined, zero-copy): Polars and this
        # loop pay per frame.
        scan = batcher._scan(
            needed,
            allowed.epochs,
            allowed.batches,
            files=allowed.files,
            sources=allowed.sources,
            line_numbers=allowed.line_numbers,
            join_rows=8192,
        )
        for ab in scan:
            if rows_left == 0:
                return
            df = pl.DataFrame(ab)
            if predicate is not None:
                df = df.filter(predicate)
            if needed != wanted:
                df = df.select(wanted)
            if rows_left > 0:
                df = df.head(rows_left)
                rows_left -= df.height
            if df.height:
                yield df

    return register_io_source(io_source=source, schema=schema)
