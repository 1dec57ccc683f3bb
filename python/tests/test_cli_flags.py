"""Every flag of every subcommand is read: taken from each command's `--help`, each is run
against a baseline and must change what the command does (its output, its exit, or the
files it writes) — or be refused with a message naming it. A flag whose effect cannot show
on a small file is listed with the test that covers it. A new flag without a case fails."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO

CLI = str(REPO / "target" / "debug" / "mmap-batcher")
TEXT = (
    "".join(f"line {i:02d} here\n" for i in range(20))
    + "\n# a hash comment\n; a semicolon comment\n"
    + "".join(f"more {i:02d}\r\n" for i in range(9))
)

# Options every command gets unless a case sets them (one file, options first).
BASE = {
    "batches": {"--seed": "1", "--batch-size": "4"},
    "sql": {"--seed": "1", "--batch-size": "4"},
    "ipc": {"--seed": "1", "--batch-size": "4"},
}
QUERY = "SELECT epoch, batch, line_number, line FROM lines ORDER BY epoch, batch, line_number"
POSITIONAL = {
    "batches": ["d.txt"],
    "sql": ["d.txt", QUERY],
    "ipc": ["d.txt"],
    "index": ["d.txt"],
    "count": ["d.txt"],
    "info": ["d.txt"],
    "line": ["d.txt", "3"],
    "corpus": ["out.txt"],
}

BLOCK = ["--shuffle", "block", "--shuffle-block", "64"]
# flag -> (arguments with it, the baseline's arguments); the same for every command
# offering it unless a "command:flag" entry says otherwise.
CASES: dict[str, tuple[list[str], list[str]]] = {
    "batch-size": (["--batch-size", "3"], []),
    # A mixture's files come with --source, so beside the positional file it is refused.
    "source": (["--source", "a=d.txt"], []),
    "weight": (["--weight", "a=1"], []),
    "lines-per-epoch": (["--lines-per-epoch", "7"], []),
    # The lines are not JSON: a field is a bad record, which null keeps (test_jsonl.py has JSON).
    "field": (["--field", "text", "--on-bad-record", "null"], []),
    "fields": (["--fields", "a,b", "--on-bad-record", "null"], []),
    "on-bad-record": (["--fields", "a", "--on-bad-record", "null"], ["--fields", "a", "--on-bad-record", "skip"]),
    "epochs": (["--epochs", "2"], []),
    "seed": (["--seed", "2"], []),
    "shuffle": (["--shuffle", "none"], []),
    "no-shuffle": (["--no-shuffle"], []),
    "shuffle-block": (BLOCK, ["--shuffle", "block"]),
    "shuffle-window": (BLOCK + ["--shuffle-window", "1"], BLOCK),
    "keep-leftovers": (["--keep-leftovers"], []),
    "drop-leftovers": (["--drop-leftovers"], []),
    "keep-blank-lines": (["--keep-blank-lines"], []),
    "comment-char": (["--comment-char", ";"], []),
    # info writes no index file, so only a count can show the rule.
    "info:comment-char": (["--comment-char", "l"], []),
    "no-comment-char": (["--no-comment-char"], []),
    "no-index-cache": (["--no-index-cache"], []),
    "index-path": (["--index-path", "elsewhere.mmbi"], []),
    "keep-terminator": (["--keep-terminator"], []),
    "binary": (["--binary"], []),
    "shard": (["--shard", "0/2"], []),
    "even-shards": (["--shard", "0/3", "--even-shards"], ["--shard", "0/3"]),
    "sql:even-shards": (["--even-shards"], []),
    "batches:format": (["--format", "jsonl"], []),
    "sql:format": (["--format", "csv"], []),
    "state-out": (["--state-out", "run.state"], []),
    "max-rows": (["--max-rows", "2"], []),
    "max-width": (["--max-width", "8"], []),
    "output": (["--output", "out.arrows"], []),
    "layout": (["--layout", "large"], []),
    "header-lines": (["--header-lines", "2"], []),
    "index-dir": (["--index-dir", "idx"], []),
    "index:clean": (["--clean"], []),
    "ipc:file": (["--file"], []),
    "offset": (["--offset"], []),
    "lines": (["--lines", "5"], ["--lines", "7"]),
    "corpus:seed": (["--lines", "7", "--seed", "2"], ["--lines", "7"]),
    "labels": (["--lines", "7", "--labels", "2"], ["--lines", "7"]),
}
# "command:flag" -> where its effect is tested (it cannot show on this small file).
COVERED_ELSEWHERE = {
    "io": "a read plan, same lines (tests/cli.rs, test_trust.py truncation tests with io=copy)",
    "trust-files": "only files others can write differ (test_trust.py, a second Unix user)",
    "resume": "needs a state of an interrupted run (tests/cli.rs resume_after_sigkill)",
    "state-every": "how often the state is rewritten during a run (tests/cli.rs resume_after_sigkill)",
    "memory-limit-mib": "DataFusion's pool: only big sorts spill or fail (tests/sql.rs)",
    "allow-write": "only statements that write differ (tests/sql.rs refuses COPY without it)",
    "batches:drop-leftovers": "the default of batches (--keep-leftovers is the change)",
    "sql:keep-leftovers": "the default of sql (--drop-leftovers is the change)",
    "ipc:keep-leftovers": "the default of ipc (--drop-leftovers is the change)",
    "skip-bad-files": "needs a bad file among several (test_real_trees.py: count and info)",
    "error-on-duplicate-files": "needs a file reached twice (test_real_trees.py)",
    "info:no-index-cache": "info writes none; the flag stops it reading one (test_index_places.py)",
    "info:index-path": "info only reads there (test_index_places.py)",
    "info:index-dir": "info only reads there (test_index_places.py: reused from --index-dir, nothing written)",
    "max-open-files": "needs more files than descriptors (test_real_trees.py, under ulimit -n 64)",
    "threads": "the same batches for any number, by design (test_threads.py, tests/builders.rs)",
}


def flags(command: str) -> list[str]:
    out = subprocess.run([CLI, command, "--help"], capture_output=True, text=True, check=True).stdout
    return [f for f in re.findall(r"^\s+(?:-\w, )?--([a-z0-9-]+)", out, re.M) if f != "help"]


def outcome(tmp_path, command: str, options: list[str]) -> tuple:
    """Runs `command` in a fresh directory holding d.txt: its exit, output and the files it left."""
    run_dir = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    run_dir.mkdir()
    (run_dir / "d.txt").write_text(TEXT)
    given = {a for a in options if a.startswith("--")}
    base = [x for k, v in BASE.get(command, {}).items() if k not in given for x in (k, v)]
    env = dict(os.environ, MMAP_BATCHER_CACHE_DIR=str(run_dir / "cache"))
    done = subprocess.run([CLI, command, *options, *base, *POSITIONAL[command]], cwd=run_dir, capture_output=True, timeout=60, env=env)
    files = {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name != "d.txt"
    }
    shutil.rmtree(run_dir)
    return done.returncode, done.stdout, files, done.stderr.decode(errors="replace")


@pytest.mark.parametrize("command", list(POSITIONAL))
def test_every_flag_is_read(tmp_path, command):
    for flag in flags(command):
        key = f"{command}:{flag}"
        if key in COVERED_ELSEWHERE or flag in COVERED_ELSEWHERE:
            continue
        case = CASES.get(key) or CASES.get(flag)
        assert case is not None, f"`{command} --{flag}` has no case here: add one (or say where it is tested)"
        with_flag, baseline = case
        got = outcome(tmp_path, command, with_flag)
        want = outcome(tmp_path, command, baseline)
        assert want[0] == 0, f"`{command}` baseline failed: {want[3]}"
        refused = got[0] != 0 and f"--{flag}" in got[3]
        assert refused or got[:3] != want[:3], f"`{command} --{flag}` changed nothing (exit {got[0]}: {got[3][:300]})"
