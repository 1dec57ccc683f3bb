"""What the trust model costs, on the 1 GB corpus in the page cache, one shuffled epoch
(batch 1,024) each way, in one run:
- a file another user owns, served the safe default way (lines read with pread into the
  batch's own buffer, validated) against the same file with ``trust_files=True``
  (zero-copy views into the map), as Arrow batches and as ``list[bytes]``;
- the reopen from the index file, whose body checksum and structural checks are now
  verified at every open.

Needs root (it lends the corpus to a user it creates, and gives it back).
Run (from the repository root, after a release build of the extension):
  .venv/bin/python benches/trust.py [CORPUS]
"""

from __future__ import annotations

import os
import pathlib
import pwd
import subprocess
import sys
import time
import warnings

from mmap_batcher import MmapBatcher

REPO = pathlib.Path(__file__).resolve().parents[1]


def epoch(corpus: pathlib.Path, trust: bool, arrow: bool) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mmb = MmapBatcher(corpus, batch_size=1024, seed=1, trust_files=trust)
    t = time.perf_counter()
    n = 0
    for b in mmb.epoch(0).record_batches(["line"]) if arrow else mmb.epoch(0).batches():
        n += len(b)
    return time.perf_counter() - t


def main() -> None:
    corpus = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "bench-data" / "corpus-10000000.txt")
    subprocess.run(["cat", str(corpus)], stdout=subprocess.DEVNULL, check=True)
    MmapBatcher(corpus)  # the index file, built once
    best = lambda f: min(f() for _ in range(3))  # noqa: E731
    opens = []
    for _ in range(10):
        t = time.perf_counter()
        MmapBatcher(corpus).close()
        opens.append(time.perf_counter() - t)
    print(f"reopen from the index file (checksum and structure verified): best {min(opens) * 1e3:.1f} ms of 10")
    name = "mmbbench"
    subprocess.run(["useradd", "--no-create-home", name], capture_output=True)
    owner = os.stat(corpus)
    try:
        os.chown(corpus, pwd.getpwnam(name).pw_uid, owner.st_gid)
        print("| items | safe default (s) | trust_files=True (s) | cost |")
        print("| --- | --- | --- | --- |")
        for arrow in (True, False):
            safe = best(lambda: epoch(corpus, False, arrow))
            fast = best(lambda: epoch(corpus, True, arrow))
            print(f"| {'Arrow record_batches' if arrow else 'list[bytes]'} | {safe:.2f} | {fast:.2f} | {safe / fast:.2f}× |")
    finally:
        os.chown(corpus, owner.st_uid, owner.st_gid)
        subprocess.run(["userdel", name], capture_output=True)


if __name__ == "__main__":
    main()
