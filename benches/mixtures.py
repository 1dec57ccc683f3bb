"""Mixtures: a shuffled epoch of three weighted sources against the same files as one corpus,
and how closely every batch holds each source's share.

Three generated sources (4, 2 and 1 M lines of 20–200 bytes) are served with weights
0.5 / 0.3 / 0.2 (so the first is subsampled, the others upsampled) and an epoch of as many
lines as the three hold; the same files opened as one corpus are the peer. Both shuffled,
Arrow batches of 1,024 lines, `threads=1` and the default, best of 3 in the page cache.
Then, over every batch of one epoch: the largest and the mean distance between a source's
lines and its exact share `w·B`, and each source's passes.

Run (release extension): `cd python && maturin develop --release && cd .. &&
.venv/bin/python benches/mixtures.py`.
"""

from __future__ import annotations

import collections
import math
import random
import time
from pathlib import Path

import pyarrow as pa

import mmap_batcher as mmb

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"web": 4_000_000, "code": 2_000_000, "books": 1_000_000}
WEIGHTS = {"web": 0.5, "code": 0.3, "books": 0.2}
BATCH = 1024


def generate(name: str, n: int) -> str:
    path = ROOT / "bench-data" / f"mix-{name}-{n}.txt"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        rng = random.Random(name)
        words = [f"{name}{i}" for i in range(1000)]
        with open(path.with_suffix(".tmp"), "w") as f:
            for _ in range(n):
                k = int(math.exp(rng.uniform(math.log(3), math.log(30))))
                f.write(" ".join(rng.choices(words, k=k)) + "\n")
        path.with_suffix(".tmp").rename(path)
    return str(path)


def rate(b: mmb.MmapBatcher) -> float:
    best = math.inf
    lines = 0
    for e in range(3):
        t0 = time.perf_counter()
        lines = sum(pa.record_batch(ab).num_rows for ab in b.epoch(e).record_batches(["line"]))
        best = min(best, time.perf_counter() - t0)
    return lines / best


def main() -> None:
    paths = {name: generate(name, n) for name, n in SOURCES.items()}
    total = sum(SOURCES.values())
    print(f"sources {SOURCES}, weights {WEIGHTS}, {total} lines an epoch, batches of {BATCH}")
    for threads in (1, None):
        one = mmb.MmapBatcher(list(paths.values()), batch_size=BATCH, seed=1, threads=threads)
        mix = mmb.MmapBatcher(paths, weights=WEIGHTS, batch_size=BATCH, seed=1, threads=threads)
        r_one, r_mix = rate(one), rate(mix)
        print(f"threads={threads}: one corpus {r_one / 1e6:.2f} M lines/s, mixture {r_mix / 1e6:.2f} M lines/s, ratio {r_mix / r_one:.2f}")

    mix = mmb.MmapBatcher(paths, weights=WEIGHTS, batch_size=BATCH, seed=1)
    worst, total_dev, cells = 0.0, 0.0, 0
    for ab in mix.epoch(0).record_batches(["source"]):
        counts = collections.Counter(pa.record_batch(ab).column("source").to_pylist())
        for name, w in WEIGHTS.items():
            d = abs(counts[name] - w * BATCH)
            worst, total_dev, cells = max(worst, d), total_dev + d, cells + 1
    print(f"share of each source in each batch: largest distance {worst:.2f} lines, mean {total_dev / cells:.3f}")
    for s in mix.sources:
        print(f"  {s['name']}: {s['lines']} lines, weight {s['weight']:.2f}, {s['lines_per_epoch']} an epoch, {s['passes_per_epoch']:.2f} passes")


if __name__ == "__main__":
    main()
