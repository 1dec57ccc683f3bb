"""Resume cost: ``state_dict()`` and ``load_state_dict()`` in microseconds, and the time to the
first batch after a resume at positions 0, n/2 and n-1 of an epoch (it must not depend on
the position: a state is a few integers, and any batch of an epoch is computed directly).

Run (from the repository root, after ``./scripts/test`` made .venv):
  .venv/bin/python benches/resume.py              # the 1 GB corpus of benches/core.rs
  MMB_CORPUS=path .venv/bin/python benches/resume.py
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def main() -> None:
    subprocess.run(["maturin", "develop", "--release", "--quiet"], cwd=REPO / "python", check=True,
                   env=dict(os.environ, VIRTUAL_ENV=str(REPO / ".venv"), PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"))
    corpus = pathlib.Path(os.environ.get("MMB_CORPUS", REPO / "bench-data" / "corpus-10000000.txt"))
    if not corpus.exists():
        subprocess.run(["cargo", "run", "--release", "--no-default-features", "--features", "cli", "--", "corpus", str(corpus)], cwd=REPO, check=True)
    code = f"""
import json, time
from mmap_batcher import MmapBatcher
mmb = MmapBatcher({str(corpus)!r}, batch_size=1024, seed=1)
n = mmb.num_batches
it = iter(mmb)
next(it)
t = time.perf_counter(); [mmb.state_dict() for _ in range(1000)]; sd_us = (time.perf_counter() - t) * 1e3
state = mmb.state_dict()
t = time.perf_counter(); [mmb.load_state_dict(state) for _ in range(1000)]; ld_us = (time.perf_counter() - t) * 1e3
print(f"lines {{mmb.num_lines}}, batches/epoch {{n}}, state {{len(json.dumps(state))}} bytes")
print(f"state_dict {{sd_us:.1f}} us   load_state_dict {{ld_us:.1f}} us")
for pos in (0, n // 2, n - 1):
    s = dict(state, done=pos)
    other = MmapBatcher({str(corpus)!r}, batch_size=1024, seed=1)
    t = time.perf_counter()
    other.load_state_dict(s)
    first = next(iter(other))
    print(f"resume at batch {{pos:>6}}: first batch after {{(time.perf_counter() - t) * 1e3:.2f}} ms ({{len(first)}} lines)")
"""
    subprocess.run([sys.executable, "-c", code], check=True)


if __name__ == "__main__":
    main()
