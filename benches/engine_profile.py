"""One shuffled epoch through DuckDB or Polars, for `perf record` (the breakdown in the
benchmarks doc): `cd python && maturin develop --profile profiling && cd .. &&
perf record -F 999 -g .venv/bin/python benches/engine_profile.py {duckdb,polars}` over
`bench-data/corpus-10m.txt` (`target/profiling/mmap-batcher corpus bench-data/corpus-10m.txt`).
"""

from __future__ import annotations

import sys
import time

import duckdb
import polars as pl

import mmap_batcher as mmb

PATH = "bench-data/corpus-10m.txt"


def main(which: str) -> None:
    t0 = time.perf_counter()
    if which == "duckdb":
        epoch = mmb.MmapBatcher(PATH, batch_size=1024, seed=1, ignore_leftovers=False).epoch(0)
        print(duckdb.sql("SELECT count(*), sum(length(line)) FROM epoch WHERE line LIKE '%ab%'").fetchall())
    else:
        lf = mmb.scan_lines(PATH, batch_size=1024, seed=1).filter(pl.col("line").str.contains("ab", literal=True))
        print(lf.select(pl.len(), pl.col("line").str.len_bytes().sum()).collect())
    print(f"{which}: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "duckdb")
