"""A torch DataLoader over ``mmb.torch()`` beside iterating the batcher directly: one
shuffled epoch of the 1 GB corpus (batch 1,024), warm page cache, each configuration in its
own process (the time includes creating the loader and starting its workers), with
``collate_fn=keep_batch`` and with the loader's default ``default_convert``; and the bytes
each item costs to pickle across the worker boundary.

Run (from the repository root, after `./scripts/test` made .venv with torch):
  .venv/bin/python benches/torch_loader.py                 # builds the release extension first
  MMB_NO_BUILD=1 MMB_CORPUS=path .venv/bin/python benches/torch_loader.py
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]

RUN = """
import json, pickle, sys, time
from mmap_batcher import MmapBatcher
corpus, how, workers, output = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
mmb = MmapBatcher(corpus, batch_size=1024, seed=1)
if how != "direct":
    import torch  # (seconds to import: not part of the epoch)
t = time.perf_counter()
lines = 0
if how == "direct":
    it = mmb.with_shard(output="arrow").epoch(0).record_batches() if output == "arrow" else mmb.epoch(0).batches()
    for b in it:
        lines += len(b)
else:
    from torch.utils.data import DataLoader
    from mmap_batcher.torch import keep_batch
    extra = {"timeout": 600} if workers else {}
    if how == "keep_batch":
        extra["collate_fn"] = keep_batch
    loader = DataLoader(mmb.torch(output=output), batch_size=None, num_workers=workers, **extra)
    for b in loader:
        lines += b.num_lines if output == "tensor" else len(b)
seconds = time.perf_counter() - t
item = next(iter(mmb.torch(output=output)))
print(json.dumps({"seconds": seconds, "lines": lines, "pickled": len(pickle.dumps(item, protocol=5))}))
"""


def main() -> None:
    env = dict(os.environ, VIRTUAL_ENV=str(REPO / ".venv"), PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}")
    if not os.environ.get("MMB_NO_BUILD"):
        subprocess.run(["maturin", "develop", "--release", "--quiet", "--features", "datafusion"], cwd=REPO / "python", check=True, env=env)
    corpus = pathlib.Path(os.environ.get("MMB_CORPUS", REPO / "bench-data" / "corpus-10000000.txt"))
    print(f"corpus {corpus} ({corpus.stat().st_size / 2**20:.0f} MiB); warm page cache; {os.cpu_count()} cores")
    subprocess.run(["cat", str(corpus)], stdout=subprocess.DEVNULL, check=True)
    print("| items | how | seconds | M lines/s | vs direct | bytes pickled per item |")
    print("| --- | --- | --- | --- | --- | --- |")
    for output in ("bytes", "arrow", "tensor"):
        direct = None
        for how, workers in (("direct", 0), ("keep_batch", 0), ("keep_batch", 2), ("keep_batch", 4), ("default_convert", 0), ("default_convert", 2)):
            if how == "direct" and output == "tensor":
                continue
            args = [sys.executable, "-c", RUN, str(corpus), how, str(workers), output]
            out = subprocess.run(args, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                print(f"| {output} | {how} {workers} | failed: {out.stderr.strip().splitlines()[-1]} | | | |")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rate = r["lines"] / r["seconds"] / 1e6
            direct = direct or (r["seconds"] if how == "direct" else None)
            ratio = f"{direct / r['seconds']:.2f}×" if direct else "—"
            label = "iterating the batcher" if how == "direct" else f"DataLoader ({how}), {workers} workers"
            print(f"| {output} | {label} | {r['seconds']:.2f} | {rate:.2f} | {ratio} | {r['pickled']:,} |")


if __name__ == "__main__":
    main()
