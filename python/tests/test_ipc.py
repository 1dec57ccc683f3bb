"""The CLI's Arrow IPC stream, read by pyarrow and Polars."""

from __future__ import annotations

import subprocess

import pytest

import polars as pl
import pyarrow as pa
import pyarrow.ipc

from conftest import EXAMPLE, REPO

CLI = REPO / "target" / "debug" / "mmap-batcher"


def run_ipc(out, *extra: str) -> None:
    assert CLI.exists(), f"{CLI} is missing: build it with `cargo build` (the test command does)"
    args = [str(CLI), "ipc", str(EXAMPLE), "-o", str(out), "--batch-size", "3", "--epochs", "2", "--seed", "7", *extra]
    subprocess.run(args, check=True)


def test_pyarrow_and_polars_read_the_stream(tmp_path):
    out = tmp_path / "b.arrows"
    run_ipc(out)
    with pa.ipc.open_stream(out) as reader:
        table = reader.read_all()
    assert table.schema.field("line").type == pa.large_string()
    assert table.num_rows == 20  # every line of both epochs: the last partial batches too
    assert table.column("epoch").to_pylist() == [0] * 10 + [1] * 10
    df = pl.read_ipc_stream(out)
    assert df["line"].to_list() == table.column("line").to_pylist()
    lines = EXAMPLE.read_text().split("\n")
    assert all(lines[n - 1] == l for n, l in zip(df["line_number"], df["line"]))


def test_view_types_option(tmp_path):
    out = tmp_path / "v.arrows"
    run_ipc(out, "--layout", "view")
    with pa.ipc.open_stream(out) as reader:
        table = reader.read_all()
    assert table.schema.field("line").type == pa.string_view()
    assert pl.read_ipc_stream(out).height == 20
    # The old spelling of the flag is kept as an alias.
    old = tmp_path / "old.arrows"
    run_ipc(old, "--line-type", "view")
    assert old.read_bytes() == out.read_bytes()


def test_file_format_opens_where_files_are_expected(tmp_path):
    stream, file = tmp_path / "s.arrows", tmp_path / "f.arrow"
    run_ipc(stream)
    run_ipc(file, "--file")
    with pa.ipc.open_stream(stream) as reader:
        expected = reader.read_all()
    with pytest.raises(pa.ArrowInvalid):
        pa.ipc.open_file(stream)  # the stream has no footer
    opened = pa.ipc.open_file(file)
    assert opened.num_record_batches == 8 and opened.read_all().equals(expected)
    lazy = pl.scan_ipc(file).filter(pl.col("epoch") == 1).collect()
    assert lazy["line"].to_list() == expected.column("line").to_pylist()[10:]
    assert pl.read_ipc(file).height == 20
