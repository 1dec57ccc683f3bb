"""JSON Lines: `field="text"` served by mmap-batcher against the peers that parse it.

Generates a real-shaped JSONL corpus (records of 0.2–20 KB, log-uniform; text with
paragraphs, quotes, backslashes and non-ASCII words, half the records written with
`ensure_ascii=True` as The Pile and C4 exports are; nested metadata with a language, a
score, tags and sometimes a URL) and times one pass that yields the `text` of every
record:

- mmap-batcher, `field="text"`: Arrow record batches in file order and shuffled, with one
  builder (`threads=1`, the per-core figure) and with the default; and `list[bytes]`;
- Python `json.loads(line)["text"]` and `orjson.loads(line)["text"]` per line;
- Polars `scan_ndjson(path).select("text").collect()`;
- DuckDB `read_json(path, columns={'text': 'VARCHAR'})` to Arrow.

Also the share of records whose `text` is served zero-copy (no escape in it).

Run (release extension, and `orjson`: `.venv/bin/python -m pip install orjson`):
`cd python && maturin develop --release && cd .. && OPENBLAS_NUM_THREADS=1
.venv/bin/python benches/jsonl.py` (`MMB_JSONL_MB=400` sets the corpus size,
`MMB_JSONL_MAX=20000` the largest record; the corpus is written to `bench-data/` once and
kept).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path

import duckdb
import orjson
import polars as pl
import pyarrow as pa

import mmap_batcher as mmb

ROOT = Path(__file__).resolve().parents[1]
MB = int(os.environ.get("MMB_JSONL_MB", "400"))
LARGEST = int(os.environ.get("MMB_JSONL_MAX", "20000"))
PATH = ROOT / "bench-data" / f"docs-{MB}mb-{LARGEST}.jsonl"

WORDS = "the of and a to in is that it for on was with as by at from this be are or an were which".split()
RARE = ["café", "naïve", "Ærø", "Straße", "東京", "данные", "😀", 'say "hi"', "C:\\path", "tab\tstop"]


def text_of(rng: random.Random, size: int) -> str:
    words = []
    n = 0
    while n < size:
        w = rng.choice(RARE) if rng.random() < 0.01 else rng.choice(WORDS)
        words.append(w)
        n += len(w) + 1
    text = " ".join(words)
    if rng.random() < 0.6:  # paragraphs
        cut = sorted(rng.sample(range(len(words)), min(len(words), 1 + size // 2000)))
        for c in reversed(cut):
            words.insert(c, "\n\n")
        text = " ".join(words)
    return text


def generate() -> None:
    PATH.parent.mkdir(exist_ok=True)
    rng = random.Random(1)
    tmp = PATH.with_suffix(".tmp")
    written = 0
    with open(tmp, "w", encoding="utf-8") as f:
        i = 0
        while written < MB << 20:
            size = int(math.exp(rng.uniform(math.log(200), math.log(LARGEST))))
            rec = {
                "id": i,
                "text": text_of(rng, size),
                "meta": {"lang": rng.choice(["en", "fr", "de", "ja"]), "score": rng.random(), "tags": rng.sample(WORDS, 3)},
            }
            if i % 4 == 0:
                rec["meta"]["url"] = f"https://example.org/doc/{i}"
            line = json.dumps(rec, ensure_ascii=i % 2 == 0) + "\n"
            written += len(line.encode())
            f.write(line)
            i += 1
    tmp.rename(PATH)


def timed(name: str, run, size: int, lines: int, baseline: float | None = None) -> float:
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        got = run()
        best = min(best, time.perf_counter() - t0)
        assert got == lines, (name, got, lines)
    ratio = f"   {baseline / best:5.2f}x json.loads" if baseline else ""
    print(f"{name:<52} {best:7.3f} s  {size / best / 1e6:7.0f} MB/s  {lines / best / 1e6:6.2f} M rec/s{ratio}")
    return best


def main() -> None:
    if not PATH.exists():
        generate()
    size = PATH.stat().st_size
    lines = sum(1 for _ in open(PATH, "rb"))
    cores = os.cpu_count()
    print(f"corpus {PATH} ({size / 1e6:.0f} MB, {lines} records), {cores} cores; best of 3, page cache warm")

    def per_line(parse):
        def run() -> int:
            n = 0
            with open(PATH, "rb") as f:
                for line in f:
                    parse(line)["text"]
                    n += 1
            return n

        return run

    def ours(threads: int | None, shuffle: bool, arrow: bool = True):
        b = mmb.MmapBatcher(str(PATH), field="text", batch_size=8192, shuffle=shuffle, seed=1, ignore_leftovers=False, threads=threads)
        epoch = [0]

        def run() -> int:
            e = b.epoch(epoch[0])
            epoch[0] += 1
            if arrow:
                return sum(pa.record_batch(ab).num_rows for ab in e.record_batches(["line"]))
            return sum(len(batch) for batch in e.batches())

        return run

    base = timed("python json.loads per line", per_line(json.loads), size, lines)
    timed("orjson.loads per line", per_line(orjson.loads), size, lines, base)
    timed("polars scan_ndjson().select('text')", lambda: pl.scan_ndjson(PATH).select("text").collect().height, size, lines, base)
    con = duckdb.connect()
    timed(
        "duckdb read_json(columns={'text'}) to Arrow",
        lambda: con.sql(f"SELECT text FROM read_json('{PATH}', columns={{'text': 'VARCHAR'}}, format='newline_delimited')").fetch_arrow_table().num_rows,
        size,
        lines,
        base,
    )
    timed("mmap-batcher field='text' file order, 1 builder", ours(1, False), size, lines, base)
    timed("mmap-batcher field='text' shuffled, 1 builder", ours(1, True), size, lines, base)
    timed(f"mmap-batcher field='text' file order, {cores} builders", ours(None, False), size, lines, base)
    timed(f"mmap-batcher field='text' shuffled, {cores} builders", ours(None, True), size, lines, base)
    timed(f"mmap-batcher field='text' shuffled list[bytes]", ours(None, True, arrow=False), size, lines, base)

    # Zero-copy share: records whose text holds no escape are views into the map.
    plain = 0
    with open(PATH, "rb") as f:
        for line in f:
            rec = orjson.loads(line)
            plain += "\\" not in json.dumps(rec["text"], ensure_ascii=rec["id"] % 2 == 0)
    print(f"records whose text is served zero-copy (no escape): {plain / lines:.1%}")


if __name__ == "__main__":
    main()
