"""``header_lines=N`` / ``--header-lines N``: the first N physical lines of each file are
skipped whatever they hold, line numbers stay the file's own, and the index built that way
is its own index file."""

from __future__ import annotations

import subprocess

import polars as pl
import pytest

from conftest import REPO, reference_lines
from mmap_batcher import MmapBatcher, scan_lines

CLI = str(REPO / "target" / "debug" / "mmap-batcher")


@pytest.fixture
def csvs(tmp_path):
    paths = []
    for part in range(3):
        # The header may hold anything a data line may not: blank fields, a leading '#'.
        text = "#id,name\n" + "".join(f"{part}-{i},n{i}\n" for i in range(40 + part)) + "\n"
        p = tmp_path / f"t{part}.csv"
        p.write_text(text)
        paths.append(p)
    return paths


@pytest.mark.parametrize("header", [1, 2])
def test_each_files_first_lines_are_skipped(csvs, header):
    mmb = MmapBatcher([str(p) for p in csvs], batch_size=7, shuffle=False, ignore_leftovers=False,
                      comment_char=None, header_lines=header, index_cache=False)
    got = [bytes(line) for batch in mmb for line in batch]
    want = [l for p in csvs for l in reference_lines(p.read_bytes(), comment_char=None)[header:]]
    # The header line is not blank, so the reference's kept lines past it are the first `header`.
    assert got == want
    numbers = pl.DataFrame(mmb.epoch(0).batch(0))["line_number"].to_list()
    assert numbers[0] == header + 1  # the file's own numbering


def test_the_index_file_is_its_own_and_reloads(tmp_path, csvs):
    first = MmapBatcher(str(csvs[0]), header_lines=1, comment_char=None, batch_size=4, seed=2)
    assert first.index_status == ["written"] and str(first.index_paths[0]).endswith(".b1-cnone-h1.mmbi")
    plain = MmapBatcher(str(csvs[0]), comment_char=None, batch_size=4, seed=2)
    assert plain.index_status == ["written"] and plain.num_lines == first.num_lines + 1
    again = MmapBatcher(str(csvs[0]), header_lines=1, comment_char=None, batch_size=4, seed=2)
    assert again.index_status == ["loaded"] and list(again) == list(first)


def test_cli_polars_and_sql_agree(csvs):
    glob = str(csvs[0].parent / "t*.csv")
    count = subprocess.run([CLI, "count", glob, "--header-lines", "1", "--no-comment-char", "--no-index-cache"],
                           capture_output=True, text=True, check=True).stdout
    n = int(count.split()[0])
    assert n == sum(40 + part for part in range(3))
    assert scan_lines(glob, header_lines=1, comment_char=None, index_cache=False).select(pl.len()).collect().item() == n
    sql = subprocess.run([CLI, "sql", "--header-lines", "1", "--no-comment-char", "--no-index-cache", "--format", "csv",
                          glob, "SELECT count(*) AS n, min(line_number) AS first FROM lines"],
                         capture_output=True, text=True, check=True).stdout
    assert sql.split() == ["n,first", f"{n},2"]


def test_files_mapped_again_keep_their_header_rule(tmp_path, csvs, monkeypatch):
    # One file mapped at a time: the others are unmapped and mapped again mid-epoch, and
    # must come back under the same rules (their own index files).
    monkeypatch.setenv("MMAP_BATCHER_CACHE_DIR", str(tmp_path / "cache"))
    mmb = MmapBatcher([str(p) for p in csvs], batch_size=5, seed=4, ignore_leftovers=False, comment_char=None,
                      header_lines=1, max_open_files=1)
    got = sorted(line for epoch in range(2) for batch in mmb.epoch(epoch).batches() for line in batch)
    want = sorted(l for p in csvs for l in reference_lines(p.read_bytes(), comment_char=None)[1:]) * 2
    assert got == sorted(want)


def test_the_header_is_exposed_per_file(tmp_path, csvs):
    # The lines no batch serves, as the user needs them to name the columns: Python's
    # `header(i)` for `paths[i]`, the CLI's `info`.
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(b"a,b\r\nsecond header\r\n1,2\r\n")
    paths = [str(p) for p in csvs] + [str(crlf)]
    mmb = MmapBatcher(paths, header_lines=2, comment_char=None, index_cache=False)
    assert [mmb.header(i) for i in range(mmb.num_files)] == [[b"#id,name", f"{k}-0,n0".encode()] for k in range(3)] + [[b"a,b", b"second header"]]
    assert mmb.header() == mmb.header(0)
    assert MmapBatcher(paths, index_cache=False).header(1) == []
    with pytest.raises(Exception, match="out of range"):
        mmb.header(9)
    info = subprocess.run([CLI, "info", str(csvs[0]), "--header-lines", "1", "--no-index-cache"], capture_output=True, text=True, check=True).stdout
    assert "  header:      #id,name\n" in info
