"""Side-by-side: one shuffled epoch (batch 1,024, warm cache) of the benchmark corpus.

Peers, each in a fresh process so its anonymous memory is its own:
  mmb-bytes     mmap_batcher.MmapBatcher ... epoch.batches()          (list[bytes], the original API)
  mmb-arrow     mmap_batcher ... epoch.record_batches() -> pyarrow     (zero-copy Arrow)
  original      the original algorithm in pure Python: mmap + offset list + random.shuffle + slices
  polars        polars.read_lines + blank/comment filter + a seeded permutation, sliced in batches
  hf-datasets   datasets.load_dataset("text") + shuffle + iter(batch_size=1024)

Run (from the repository root, after `./scripts/test` made .venv):
  .venv/bin/python benches/python_peers.py            # builds the release extension first
  MMB_LINES=1000000 .venv/bin/python benches/python_peers.py   # a 100 MB corpus

Reports open time, epoch time, lines/s and RssAnon growth (after imports), with ratios.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
BATCH = 1024
PEERS = ["mmb-bytes", "mmb-arrow", "original", "polars", "hf-datasets"]


def rss_anon() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon")


def corpus() -> pathlib.Path:
    if "MMB_CORPUS" in os.environ:
        return pathlib.Path(os.environ["MMB_CORPUS"])
    lines = int(os.environ.get("MMB_LINES", "10000000"))
    path = REPO / "bench-data" / f"corpus-{lines}.txt"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        subprocess.run(
            ["cargo", "run", "--release", "--quiet", "--", "corpus", str(path), "--lines", str(lines)],
            cwd=REPO, check=True,
        )
    return path


def keep(line: bytes) -> bool:
    """The original class's rule: not blank, not a comment."""
    return line.strip() != b"" and line[:1] != b"#"


def run_peer(name: str, path: str) -> dict:
    """Runs one peer in this process; returns its measurements."""
    if name.startswith("mmb"):
        import pyarrow as pa

        from mmap_batcher import MmapBatcher
    elif name == "polars":
        import numpy as np
        import polars as pl
    elif name == "hf-datasets":
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        import datasets
    else:
        import mmap
        import random
    base = rss_anon()
    t0 = time.perf_counter()
    n = 0
    if name == "mmb-bytes":
        mmb = MmapBatcher(path, batch_size=BATCH, seed=1)
        t1 = time.perf_counter()
        for batch in mmb.epoch(0).batches():
            n += len(batch)
    elif name == "mmb-arrow":
        mmb = MmapBatcher(path, batch_size=BATCH, seed=1)
        mmb.validate_utf8()  # once per file, part of opening for the string path
        t1 = time.perf_counter()
        for ab in mmb.epoch(0).record_batches():
            n += pa.record_batch(ab).num_rows
    elif name == "original":
        f = open(path, "rb")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        offsets = []
        pos, size = 0, len(mm)
        while pos < size:
            end = mm.find(b"\n", pos)
            end = size if end < 0 else end + 1
            if keep(mm[pos:end]):
                offsets.append(pos)
            pos = end
        t1 = time.perf_counter()
        rng = random.Random(1)
        rng.shuffle(offsets)
        for i in range(0, len(offsets) - BATCH + 1, BATCH):
            batch = []
            for o in offsets[i:i + BATCH]:
                mm.seek(o)
                batch.append(mm.readline())
            n += len(batch)
    elif name == "polars":
        df = pl.read_lines(path)
        df = df.filter(~pl.col("line").str.starts_with("#") & (pl.col("line").str.strip_chars() != ""))
        t1 = time.perf_counter()
        perm = np.random.default_rng(1).permutation(df.height)
        shuffled = df[perm]
        for i in range(0, shuffled.height - BATCH + 1, BATCH):
            n += shuffled.slice(i, BATCH).height
    elif name == "hf-datasets":
        import tempfile

        cache = tempfile.mkdtemp(prefix="hf-cache-")
        ds = datasets.load_dataset("text", data_files=path, split="train", cache_dir=cache)
        t1 = time.perf_counter()
        ds = ds.shuffle(seed=1)
        for batch in ds.iter(batch_size=BATCH, drop_last_batch=True):
            n += len(batch["text"])
    else:
        raise SystemExit(f"unknown peer {name}")
    t2 = time.perf_counter()
    return {"peer": name, "open_s": t1 - t0, "epoch_s": t2 - t1, "lines": n, "rss_anon_mib": (rss_anon() - base) / 2**20}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--peer":
        print(json.dumps(run_peer(sys.argv[2], sys.argv[3])))
        return
    py = sys.executable
    subprocess.run([py, "-m", "pip", "install", "--quiet", "datasets", "numpy"], check=True)
    env = dict(os.environ, VIRTUAL_ENV=str(pathlib.Path(py).parents[1]), PATH=f"{pathlib.Path(py).parent}:{os.environ['PATH']}")
    subprocess.run(["maturin", "develop", "--release", "--quiet"], cwd=REPO / "python", env=env, check=True)
    path = corpus()
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    print(f"corpus {path} ({path.stat().st_size / 2**20:.0f} MiB), batch {BATCH}, one shuffled epoch")
    results = {}
    for peer in sys.argv[1:] or PEERS:
        out = subprocess.run([py, __file__, "--peer", peer, str(path)], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{peer:12} FAILED: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results[peer] = r
        print(
            f"{peer:12} open {r['open_s']:8.2f} s   epoch {r['epoch_s']:8.2f} s   "
            f"{r['lines'] / r['epoch_s'] / 1e6:7.2f} M lines/s   RssAnon +{r['rss_anon_mib']:8.1f} MiB   ({r['lines']} lines)"
        )
    if "mmb-bytes" in results and "original" in results:
        print(f"batches() vs pure-Python original, epoch: {results['original']['epoch_s'] / results['mmb-bytes']['epoch_s']:.1f}x faster (target >= 10x); "
              f"open: {results['original']['open_s'] / results['mmb-bytes']['open_s']:.1f}x faster")
    if "mmb-arrow" in results and "polars" in results:
        a, p = results["mmb-arrow"], results["polars"]
        print(f"Arrow path vs Polars, epoch: {p['epoch_s'] / a['epoch_s']:.2f}x faster (target > 1x); "
              f"RssAnon {a['rss_anon_mib'] / p['rss_anon_mib']:.3f} of Polars' (target <= 0.1)")


if __name__ == "__main__":
    main()
