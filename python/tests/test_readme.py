"""The examples of the README and docs/ are the files in examples/ (a block starting
`# examples/NAME.py` must equal that file), and each runs; the README's CLI usage lines are
what `--help` prints; the README stays short, and its links lead to files that exist."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

README = (REPO / "README.md").read_text()
DOCS = [README] + [p.read_text() for p in sorted((REPO / "docs").glob("*.md"))]
CLI = str(REPO / "target" / "debug" / "mmap-batcher")
BLOCKS = [b for doc in DOCS for b in re.findall(r"```python\n(# (examples/[\w.]+)\n.*?)```", doc, re.S)]


def test_readme_blocks_are_the_example_files():
    assert len(BLOCKS) >= 9
    listed = {n for _, n in BLOCKS}
    on_disk = {f"examples/{p.name}" for p in (REPO / "examples").glob("*.py")}
    assert on_disk <= listed, f"examples no document shows: {sorted(on_disk - listed)}"
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


def test_readme_is_short_and_its_links_resolve():
    assert len(README.splitlines()) <= 200
    for doc in ["README.md"] + [f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")]:
        text = (REPO / doc).read_text()
        assert "../shared" not in text, f"{doc} names a path outside the repository"
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (REPO / doc).parent.joinpath(target).exists(), f"{doc} links to a missing {target}"
