"""``scan_lines``: a shuffled, epoch-aware Polars lazy scan, as a Polars IO plugin."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._batcher import MmapBatcher

if TYPE_CHECKING:
    import polars as pl

_UNIT_COLUMNS = {"epoch", "batch"}


def _conjuncts(predicate: pl.Expr) -> list[pl.Expr]:
    """Splits ``a & b & ...`` into its parts, or returns ``[predicate]`` if it cannot.

    Polars hands an IO source one combined predicate. Splitting it lets the ``epoch`` and
    ``batch`` parts skip whole batches; correctness never depends on it, because the whole
    predicate is applied to every batch anyway.
    """
    import polars as pl

    try:
        tree = json.loads(predicate.meta.serialize(format="json"))
    except Exception:
        return [predicate]
    parts: list[object] = []

    def walk(node: object) -> None:
        binary = node.get("BinaryExpr") if isinstance(node, dict) else None
        if isinstance(binary, dict) and binary.get("op") in ("And", "LogicalAnd"):
            walk(binary["left"])
            walk(binary["right"])
        else:
            parts.append(node)

    walk(tree)
    try:
        return [pl.Expr.deserialize(io.StringIO(json.dumps(p)), format="json") for p in parts]
    except Exception:
        return [predicate]


def scan_lines(
    path: str | os.PathLike[str],
    *,
    batch_size: int = 1024,
    shuffle: bool = True,
    seed: int | None = None,
    epochs: int = 1,
    ignore_leftovers: bool = False,
    skip_blank_lines: bool = True,
    comment_char: str | bytes | None = "#",
    keep_terminator: bool = False,
    binary: bool = False,
) -> pl.LazyFrame:
    """Lazily scan ``epochs`` shuffled epochs of a line file as a ``polars.LazyFrame``.

    Columns: ``line`` (``String``, or ``Binary`` with ``binary=True``), ``line_number``
    (1-based, as ``grep -n``), ``byte_offset``, ``epoch`` and ``batch`` (all ``UInt64``).
    Rows come batch by batch in each epoch's seeded order; line bytes are imported from
    the file's map without copying.

    How it differs from ``polars.scan_lines``: rows are served in a reproducible shuffled
    order, for several epochs, with blank and comment lines skipped by default and with
    the original line numbers and byte offsets; ``polars.scan_lines`` reads one pass in
    file order. The file is indexed when this function is called, so a missing file fails
    here and the ``seed`` (picked if ``None``) is fixed for every ``collect()``.

    Pushdown: only the needed columns are built (``line`` is not touched unless asked
    for); filters on ``epoch`` and ``batch`` skip whole batches; ``head(n)`` stops early.
    Polars' ``batch_size`` hint is ignored: a batch here is the unit of the shuffle.

    Note: ``ignore_leftovers`` defaults to ``False`` here (a scan reads every line), unlike
    ``MmapBatcher``, whose default follows the original class.
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
    )
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    schema = {
        "line": pl.Binary if binary else pl.String,
        "line_number": pl.UInt64,
        "byte_offset": pl.UInt64,
        "epoch": pl.UInt64,
        "batch": pl.UInt64,
    }
    num_batches = batcher.num_batches

    def units(predicate: pl.Expr | None) -> Iterator[tuple[int, int]]:
        """The (epoch, batch) pairs that can hold matching rows, in serial order."""
        unit_parts = [] if predicate is None else [
            p for p in _conjuncts(predicate) if set(p.meta.root_names()) <= _UNIT_COLUMNS
        ]
        if not unit_parts:
            for e in range(epochs):
                for b in range(num_batches):
                    yield e, b
            return
        grid = pl.DataFrame({
            "epoch": pl.Series([e for e in range(epochs) for _ in range(num_batches)], dtype=pl.UInt64),
            "batch": pl.Series([b for _ in range(epochs) for b in range(num_batches)], dtype=pl.UInt64),
        })
        kept = grid.filter(pl.all_horizontal(unit_parts))
        yield from zip(kept["epoch"].to_list(), kept["batch"].to_list())

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
        epoch_obj = None
        for e, b in units(predicate):
            if rows_left == 0:
                return
            if epoch_obj is None or epoch_obj.index != e:
                epoch_obj = batcher._native.epoch(e)
            df = pl.DataFrame(epoch_obj.record_batch(b, needed))
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
