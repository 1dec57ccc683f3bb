"""The README's examples are the files in examples/ (a block starting `# examples/NAME.py`
must equal that file), and each runs; its CLI usage lines are what `--help` prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

README = (REPO / "README.md").read_text()
CLI = str(REPO / "target" / "debug" / "mmap-batcher")
BLOCKS = re.findall(r"```python\n(# (examples/[\w.]+)\n.*?)```", README, re.S)


def test_readme_blocks_are_the_example_files():
    assert len(BLOCKS) >= 5
    for text, name in BLOCKS:
        assert text == (REPO / name).read_text(), f"README block differs from {name}"


@pytest.mark.parametrize("name", sorted({n for _, n in BLOCKS}))
def test_examples_run(tmp_path, name):
    subprocess.run([CLI, "corpus", str(tmp_path / "corpus.txt"), "--lines", "20000"], check=True)
    out = subprocess.run([sys.executable, str(REPO / name)], cwd=tmp_path, capture_output=True, timeout=300,
                         env=dict(os.environ, MMAP_BATCHER_CACHE_DIR=str(tmp_path / "cache")))
    assert out.returncode == 0, out.stderr.decode()[-3000:]


def test_cli_usage_lines_match_help():
    commands = ["batches", "sql", "ipc", "index", "count", "info", "line", "corpus"]
    for c in commands:
        out = subprocess.run([CLI, c, "--help"], capture_output=True, check=True).stdout.decode()
        usage = next(l for l in out.splitlines() if l.startswith("Usage: "))
        assert usage[len("Usage: "):] in README, f"README lacks the usage line of `{c}`: {usage}"
