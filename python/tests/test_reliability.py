"""Never undefined behaviour, never silently wrong: files changed under the map, special
files, and the CLI's failure modes — with real files and real processes."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import polars as pl
import pyarrow as pa
import pytest

from conftest import REPO
from mmap_batcher import (
    FileChangedError,
    MmapBatcher,
    MmapBatcherError,
    OptionError,
    SpecialFileError,
)

CLI = str(REPO / "target" / "debug" / "mmap-batcher")


def lines(n: int, width: int = 40) -> bytes:
    return b"".join(b"%07d %s\n" % (i, b"abcdefgh" * (width // 8)) for i in range(n))


def rewrite_in_place(path: pathlib.Path, byte: bytes = b"\xff") -> None:
    """Overwrites every byte (newlines kept) with the same size, restoring the mtime."""
    st = path.stat()
    data = path.read_bytes()
    path.write_bytes(bytes(b if b == 10 else byte[0] for b in data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("output", ["arrow", "polars", "bytes"])
def test_rewrite_during_an_epoch_is_an_error_at_the_next_batch(tmp_path, output):
    path = tmp_path / "f.txt"
    path.write_bytes(lines(20_000))
    mmb = MmapBatcher(path, batch_size=100, seed=1, index_cache=False)
    ep = mmb.epoch(0)
    it = {"arrow": ep.record_batches, "polars": ep.dataframes, "bytes": ep.batches}[output]()
    first = next(it)
    if output == "polars":
        assert first["line"].str.to_uppercase().len() == 100
    rewrite_in_place(path)
    with pytest.raises(FileChangedError, match="changed"):
        for _ in range(5):  # batches prepared before the rewrite are checked as handed out
            next(it)
    with pytest.raises(FileChangedError):
        mmb.epoch(1)


def test_rewrite_between_epochs_with_mtime_restored(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(lines(1000))
    mmb = MmapBatcher(path, batch_size=10, seed=1, index_cache=False)
    assert len(list(mmb.epoch(0).record_batches())) == 100
    rewrite_in_place(path, b"A")
    with pytest.raises(FileChangedError, match="rewritten|changed"):
        list(mmb.epoch(1).record_batches())
    # A new batcher sees the new content, never the old verdicts.
    again = MmapBatcher(path, batch_size=10, seed=1, index_cache=False)
    assert all(set(l) <= set(b"A\n") for b in again.epoch(0).batches() for l in b)


def test_binary_and_compact_batches_survive_a_rewrite(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(lines(1000))
    mmb = MmapBatcher(path, batch_size=50, seed=1, index_cache=False)
    compact = pa.record_batch(next(iter(mmb.epoch(0).record_batches(compact=True))))
    before = compact.column("line").to_pylist()
    rewrite_in_place(path)
    # A compact batch owns its bytes: still valid UTF-8, still the old values.
    assert compact.column("line").to_pylist() == before
    assert compact.validate(full=True) is None


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, timeout=120, **kw)


def test_cli_jsonl_with_the_file_rewritten_mid_run(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(lines(200_000))
    p = subprocess.Popen(
        [CLI, "batches", str(path), "--format", "jsonl", "--batch-size", "100", "--seed", "1", "--no-index-cache"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None and p.stderr is not None
    p.stdout.readline()
    rewrite_in_place(path)
    p.stdout.read()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 1, err
    assert "changed" in err and "panicked" not in err


def test_fifo_and_stdin_are_spooled(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def writer():
        time.sleep(0.3)
        with open(fifo, "wb") as f:
            f.write(b"one\ntwo\n# c\nthree\n")

    t = threading.Thread(target=writer)
    t.start()
    mmb = MmapBatcher(fifo, batch_size=1, shuffle=False, index_cache=True)
    t.join()
    assert [l for b in mmb.epoch(0).batches() for l in b] == [b"one\n", b"two\n", b"three\n"]
    assert mmb.index_status == ["memory"]
    out = run("batches", "-", "--batch-size", "2", "--no-shuffle", input=b"x\ny\nz\n")
    assert out.returncode == 0 and out.stdout.decode().splitlines()[0] == "[b'x\\n', b'y\\n']"


def test_special_files(tmp_path):
    with pytest.raises(SpecialFileError, match="character device") as e:
        MmapBatcher("/dev/zero")
    assert isinstance(e.value, OSError) and isinstance(e.value, MmapBatcherError)
    cpuinfo = MmapBatcher("/proc/cpuinfo", batch_size=1, shuffle=False, skip_blank_lines=False)
    assert cpuinfo.num_lines > 0 and next(iter(cpuinfo.epoch(0).batches()))[0].startswith(b"processor")
    out = run("batches", "/dev/zero")
    assert out.returncode == 1 and b"character device" in out.stderr


def test_ctrl_c_stops_a_fifo_with_no_writer(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code = f"import mmap_batcher; mmap_batcher.MmapBatcher({str(fifo)!r})"
    p = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=10) != 0
    assert b"KeyboardInterrupt" in (p.stderr.read() if p.stderr else b"")
    cli = subprocess.Popen([CLI, "batches", str(fifo)], stderr=subprocess.PIPE)
    time.sleep(0.5)
    cli.send_signal(signal.SIGINT)
    assert cli.wait(timeout=10) != 0


def test_broken_pipe_is_quiet_and_other_errors_are_not(tmp_path):
    path = tmp_path / "Broken pipe.txt"
    out = run("batches", str(path))
    assert out.returncode == 1 and b"no such file" in out.stderr
    path.write_bytes(lines(50_000))
    head = subprocess.run(f"'{CLI}' batches '{path}' --seed 1 | head -1", shell=True, capture_output=True, timeout=60)
    assert head.returncode == 0 and head.stderr == b"", head.stderr
    out = run("sql", str(path), "SELECT count(*) FROM lines WHERE regexp_like(line, 'Broken pipe(')")
    assert out.returncode == 1 and b"regex" in out.stderr.lower()


def test_closed_stdout_and_stderr_never_panic(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(lines(1000))
    # Standard error is the closed pipe here (the seed notice goes there).
    p = subprocess.run(f"'{CLI}' batches '{path}' 2>&1 >/dev/null | true", shell=True, capture_output=True, timeout=60)
    assert p.returncode == 0
    closed = subprocess.run([CLI, "batches", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    assert closed.returncode == 0
    closed_out = subprocess.run(f"'{CLI}' batches '{path}' >&-", shell=True, capture_output=True, timeout=60)
    assert closed_out.returncode in (0, 1) and b"panicked" not in closed_out.stderr


def rss_anon_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def test_sql_table_output_is_bounded(tmp_path):
    path = tmp_path / "c.txt"
    subprocess.run([CLI, "corpus", str(path), "--lines", "400000"], check=True)
    p = subprocess.Popen([CLI, "sql", str(path), "SELECT line FROM lines"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    while p.poll() is None:
        peak = max(peak, rss_anon_kib(p.pid))
        time.sleep(0.005)
    out = p.stdout.read() if p.stdout else b""
    assert p.returncode == 0
    assert len(out) < 20_000 and b"rows shown" in out, out[-300:]
    # The file is ~40 MB; the old table format padded every row and took 300x that.
    assert peak < 200_000, f"peak RssAnon {peak} KiB"


def test_count_star_is_exact_or_refused(tmp_path):
    path = tmp_path / "two.txt"
    path.write_bytes(b"a\nb\n")
    t = time.monotonic()
    out = run("sql", str(path), "SELECT count(*) FROM lines", "--epochs", "100000000000", "--format", "csv")
    assert out.returncode == 0 and out.stdout.decode().splitlines()[1] == "200000000000", out.stderr
    assert time.monotonic() - t < 30
    out = run("sql", str(path), "SELECT count(*) FROM lines", "--epochs", str(2**63 - 1))
    assert out.returncode == 1 and b"more rows" in out.stderr


def test_sql_is_read_only_unless_asked(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"a\nb\n")
    target = tmp_path / "x.csv"
    out = run("sql", str(path), f"COPY (SELECT 1) TO '{target}'")
    assert out.returncode == 1 and not target.exists()
    out = run("sql", str(path), f"COPY (SELECT 1 AS one) TO '{target}' STORED AS CSV", "--allow-write")
    assert out.returncode == 0, out.stderr
    assert target.exists()


def test_ipc_to_standard_output(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"a\nb\nc\n")
    out = run("ipc", str(path), "-o", "-", "--batch-size", "2", "--keep-leftovers")
    assert out.returncode == 0
    table = pa.ipc.open_stream(out.stdout).read_all()
    assert sorted(table.column("line").to_pylist()) == ["a", "b", "c"]


def test_python_argument_errors(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"a\n")
    assert MmapBatcher(os.fsencode(path)).num_lines == 1
    with pytest.raises(ValueError, match="NUL"):
        MmapBatcher(str(path) + "\0x")
    with pytest.raises(ValueError, match="batch_size"):
        MmapBatcher(path, batch_size=2**64)
    with pytest.raises(ValueError, match="batch_size"):
        MmapBatcher(path, batch_size=True)
    with pytest.raises(TypeError):
        MmapBatcher(path, ignore_leftovers="yes")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="shuffle"):
        MmapBatcher(path, shuffle="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="path"):
        MmapBatcher(3.5)  # type: ignore[arg-type]
    assert isinstance(pl.DataFrame(next(iter(MmapBatcher(path, batch_size=1).epoch(0).record_batches()))), pl.DataFrame)
