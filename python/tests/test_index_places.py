"""Where index files go: ``$MMAP_BATCHER_CACHE_DIR`` or ``index_dir=`` / ``--index-dir``
wins over "beside the data" (even where the data's directory is writable), ``info`` never
writes one, and ``index --clean`` removes ours and nothing else."""

from __future__ import annotations

import subprocess

from conftest import REPO
from mmap_batcher import MmapBatcher

CLI = str(REPO / "target" / "debug" / "mmap-batcher")


def corpus(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    for i in range(3):
        (d / f"part{i}.txt").write_text("".join(f"{i} row {k}\n" for k in range(20)))
    return d


def mmbi(root):
    return sorted(p.name for p in root.rglob("*.mmbi"))


def test_the_cache_dir_variable_wins(tmp_path, monkeypatch):
    d = corpus(tmp_path)
    monkeypatch.setenv("MMAP_BATCHER_CACHE_DIR", str(tmp_path / "cache"))
    mmb = MmapBatcher(str(d / "*.txt"), batch_size=4, seed=1)
    assert mmb.index_status == ["written"] * 3
    assert mmbi(d) == [] and len(mmbi(tmp_path / "cache")) == 3
    assert MmapBatcher(str(d / "*.txt"), batch_size=4, seed=1).index_status == ["loaded"] * 3


def test_index_dir_and_the_cli_flag(tmp_path, monkeypatch):
    d = corpus(tmp_path)
    monkeypatch.delenv("MMAP_BATCHER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    mmb = MmapBatcher(str(d / "*.txt"), index_dir=str(tmp_path / "idx"), batch_size=4, seed=1)
    assert mmb.index_status == ["written"] * 3 and len(mmbi(tmp_path / "idx")) == 3 and mmbi(d) == []
    out = subprocess.run([CLI, "index", "--index-dir", str(tmp_path / "idx"), str(d / "*.txt")], capture_output=True, text=True, check=True)
    assert out.stdout.count("(valid, reused)") == 3, out.stdout
    info = subprocess.run([CLI, "info", "--index-dir", str(tmp_path / "idx"), str(d / "*.txt")], capture_output=True, text=True, check=True)
    assert info.stdout.count("(valid, reused)") == 3, info.stdout
    off = subprocess.run([CLI, "info", "--no-index-cache", str(d / "*.txt")], capture_output=True, text=True, check=True)
    assert off.stdout.count("in memory only") == 3, off.stdout
    one = d / "part1.txt"
    subprocess.run([CLI, "index", "--index-path", str(tmp_path / "one.mmbi"), str(one)], check=True, capture_output=True)
    by_path = subprocess.run([CLI, "info", "--index-path", str(tmp_path / "one.mmbi"), str(one)], capture_output=True, text=True, check=True)
    assert "one.mmbi (valid, reused)" in by_path.stdout, by_path.stdout
    # Without either, beside the data.
    assert MmapBatcher(str(d / "part0.txt")).index_status == ["written"] and mmbi(d) == ["part0.txt.b1-c23.mmbi"]


def test_info_never_writes_and_clean_removes_only_ours(tmp_path, monkeypatch):
    d = corpus(tmp_path)
    monkeypatch.delenv("MMAP_BATCHER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    subprocess.run([CLI, "info", str(d / "*.txt")], capture_output=True, check=True)
    assert mmbi(tmp_path) == []
    decoy = d / "part0.txt.notes.mmbi"  # not an index file of ours: same name shape
    decoy.write_text("someone's notes\n")
    MmapBatcher(str(d / "*.txt"))
    MmapBatcher(str(d / "*.txt"), comment_char=None)
    MmapBatcher(str(d / "*.txt"), index_dir=str(tmp_path / "idx"))
    assert len(mmbi(tmp_path)) == 3 * 3 + 1
    out = subprocess.run([CLI, "index", "--clean", "--index-dir", str(tmp_path / "idx"), str(d / "*.txt")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("9 index files removed"), out.stdout
    assert mmbi(tmp_path) == ["part0.txt.notes.mmbi"]
    assert sorted(p.name for p in d.iterdir()) == ["part0.txt", "part0.txt.notes.mmbi", "part1.txt", "part2.txt"]
