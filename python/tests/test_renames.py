"""Renamed options and attributes: the new names work, the old Python spellings still do for
one release with a DeprecationWarning, and an unknown word names every spelling."""

from __future__ import annotations

import warnings

import pyarrow as pa
import pytest

import mmap_batcher
from conftest import EXAMPLE
from mmap_batcher import MmapBatcher


def quiet(**kw):
    return MmapBatcher(EXAMPLE, batch_size=3, seed=5, index_cache=False, **kw)


def test_paths_and_the_deprecated_filename():
    mmb = quiet()
    assert [str(p) for p in mmb.paths] == [str(EXAMPLE)]
    with pytest.warns(DeprecationWarning, match="paths"):
        assert str(mmb.filename) == str(EXAMPLE)
    with pytest.warns(DeprecationWarning, match="paths"):
        assert [str(p) for p in mmb.filenames] == [str(EXAMPLE)]
    with pytest.warns(DeprecationWarning, match="filename= is deprecated"):
        old = MmapBatcher(filename=EXAMPLE, batch_size=3, seed=5, index_cache=False)
    assert list(old) == list(mmb)
    with pytest.raises(ValueError, match="deprecated spelling"):
        MmapBatcher(EXAMPLE, filename=EXAMPLE)
    with pytest.raises(ValueError, match="paths is required"):
        MmapBatcher()


def test_layout_and_the_deprecated_line_type():
    epoch = quiet().epoch(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = [pa.record_batch(b) for b in epoch.record_batches(layout="large")]
    with pytest.warns(DeprecationWarning, match="layout="):
        old = [pa.record_batch(b) for b in epoch.record_batches(line_type="large")]
    assert new == old and new[0].schema.field("line").type == pa.large_string()
    with pytest.raises(ValueError, match=r"layout must be 'large' or 'view', got \"wide\""):
        epoch.record_batches(layout="wide")


def test_epoch_index_is_number():
    epoch = quiet().epoch(2)
    with pytest.warns(DeprecationWarning, match="Epoch.number"):
        assert epoch.index == epoch.number == 2


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"io": "fast"}, r"io must be 'auto', 'cached', 'disk' or 'copy', got \"fast\""),
        ({"io": 3}, r"io must be a string, got 3"),
        ({"shuffle": "random"}, r"shuffle must be True, False, 'global', 'block' or 'none', got 'random'"),
    ],
)
def test_unknown_words_name_every_spelling(kw, message):
    with pytest.raises(mmap_batcher.MmapBatcherError, match=message):
        quiet(**kw)


def test_columns_lists_every_column_in_schema_order():
    assert mmap_batcher.COLUMNS == ["line", "line_number", "byte_offset", "epoch", "batch", "file", "source"]
