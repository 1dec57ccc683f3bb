"""Shared fixtures: real files on disk and a pure-Python reference of the line rules."""

from __future__ import annotations

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "numbers.txt"


def reference_lines(data: bytes, skip_blank_lines: bool = True, comment_char: bytes | None = b"#") -> list[bytes]:
    """The kept lines of ``data``, with terminators: the original class's rules, defects fixed."""
    parts = data.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])  # a final line without "\n" is a line too
    kept = []
    for line in lines:
        if skip_blank_lines and line.strip(b" \t\r\n\x0b\x0c") == b"":
            continue
        if comment_char is not None and line[:1] == comment_char:
            continue
        kept.append(line)
    return kept


@pytest.fixture
def write(tmp_path: pathlib.Path):
    """Writes bytes to a fresh file and returns its path."""
    counter = iter(range(1_000_000))

    def _write(data: bytes) -> pathlib.Path:
        p = tmp_path / f"f{next(counter)}.txt"
        p.write_bytes(data)
        return p

    return _write
