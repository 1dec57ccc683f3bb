"""The persisted line index: reused when valid, rebuilt (with a warning) whenever it is
stale, corrupt or foreign, shared by processes opening a new file at once."""

from __future__ import annotations

import multiprocessing
import os
import pathlib
import warnings

import pytest

from conftest import reference_lines
from mmap_batcher import MmapBatcher


def lines_of(mmb: MmapBatcher) -> list[bytes]:
    return [line for batch in mmb.epoch(0).batches() for line in batch]


def open_plain(path, **kw) -> MmapBatcher:
    return MmapBatcher(path, batch_size=1, shuffle=False, ignore_leftovers=False, **kw)


@pytest.fixture
def data(tmp_path: pathlib.Path, monkeypatch) -> pathlib.Path:
    # The per-user fallback cache, not MMAP_BATCHER_CACHE_DIR (which, set, is the only place).
    monkeypatch.delenv("MMAP_BATCHER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    p = tmp_path / "data.txt"
    p.write_bytes(b"".join(b"line %d\n" % i for i in range(1000)) + b"# comment\n\nlast\n")
    return p


def index_file(data: pathlib.Path, tag: str = "b1-c23") -> pathlib.Path:
    return data.with_name(f"{data.name}.{tag}.mmbi")


def test_written_beside_then_reused(data):
    first = open_plain(data)
    assert first.index_status == ["written"]
    assert first.index_paths == [str(index_file(data))] or first.index_paths == [index_file(data)]
    assert index_file(data).stat().st_size == 256 + 8 * (1001 + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = open_plain(data)
    assert again.index_status == ["loaded"]
    assert lines_of(again) == lines_of(first) == reference_lines(data.read_bytes())


def rebuilt(data: pathlib.Path, change) -> MmapBatcher:
    open_plain(data)
    change()
    with pytest.warns(RuntimeWarning, match="not used"):
        mmb = open_plain(data)
    assert mmb.index_status == ["written"]
    assert lines_of(mmb) == reference_lines(data.read_bytes())
    return mmb


def test_append_and_truncate(data):
    rebuilt(data, lambda: data.open("ab").write(b"appended\n"))
    rebuilt(data, lambda: os.truncate(data, 500))


def test_same_size_rewrite_with_mtime_restored(data):
    def rewrite():
        st = data.stat()
        text = data.read_bytes().replace(b"line 5\n", b"LINE!5\n")
        data.write_bytes(text)
        os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))  # the change time cannot be set back

    mmb = rebuilt(data, rewrite)
    assert b"LINE!5\n" in lines_of(mmb)


def test_replaced_by_rename(data):
    def replace():
        other = data.with_name("other.txt")
        other.write_bytes(b"new content\n" * 3)
        other.replace(data)

    mmb = rebuilt(data, replace)
    assert mmb.num_lines == 3


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b""),  # zero length
        lambda p: p.write_bytes(p.read_bytes()[:5000]),  # truncated
        lambda p: p.write_bytes(p.read_bytes()[:100] + b"\xff" * 8 + p.read_bytes()[108:]),  # header corrupted
        lambda p: p.write_bytes(b"not an index at all\n" * 500),  # foreign
        lambda p: os.chmod(p, 0o666),  # writable by others: not trusted
    ],
    ids=["empty", "truncated", "corrupt-header", "foreign", "world-writable"],
)
def test_damaged_index_is_rebuilt(data, damage):
    rebuilt(data, lambda: damage(index_file(data)))


def test_other_rules_never_read_another_index(data):
    default = open_plain(data)
    no_comments = open_plain(data, comment_char=None, skip_blank_lines=False)
    assert no_comments.index_status == ["written"]
    assert index_file(data, "b0-cnone").exists() and index_file(data).exists()
    assert no_comments.num_lines == default.num_lines + 2
    assert open_plain(data, comment_char=None, skip_blank_lines=False).index_status == ["loaded"]
    assert open_plain(data).index_status == ["loaded"]


def test_unwritable_place_falls_back_to_the_cache_dir(data, tmp_path):
    # A directory where the index file would go makes that place unusable, as a read-only
    # directory would (this test runs as root, which ignores permission bits).
    index_file(data).mkdir()
    mmb = open_plain(data)
    assert mmb.index_status == ["written"]
    (path,) = mmb.index_paths
    assert str(path).startswith(str(tmp_path / "cache"))
    assert open_plain(data).index_status == ["loaded"]


def test_index_cache_off_and_explicit_path(data, tmp_path):
    assert open_plain(data, index_cache=False).index_status == ["memory"]
    assert not index_file(data).exists()
    explicit = tmp_path / "elsewhere" / "idx.mmbi"
    assert open_plain(data, index_path=explicit).index_status == ["written"]
    assert explicit.exists() and not index_file(data).exists()
    assert open_plain(data, index_path=explicit).index_status == ["loaded"]


def _open_and_report(args: tuple[str, str]) -> tuple[str, int]:
    path, cache = args
    os.environ["MMAP_BATCHER_CACHE_DIR"] = cache
    mmb = MmapBatcher(path, batch_size=7, seed=1)
    return mmb.index_status[0], mmb.num_lines


def test_concurrent_first_opens_build_once(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"".join(b"row %d %s\n" % (i, b"x" * (i % 50)) for i in range(300_000)))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(8) as pool:
        results = pool.map(_open_and_report, [(str(path), str(tmp_path / "cache"))] * 8)
    statuses = sorted(s for s, _ in results)
    assert {n for _, n in results} == {300_000}
    assert statuses.count("written") == 1 and statuses.count("loaded") == 7, statuses
