"""One shuffled epoch of the 1 GB corpus through each engine, beside the engine's own text
reader on the same file (in file order) and the Python Arrow path. Each peer runs in its
own process and reports its time (opening included, Ray's start-up excluded), its peak RSS
(VmHWM: the mapped file's pages count) and its RssAnon at the end.

The query everywhere: the number of lines containing "abc" and the total line length
(`count(*) ... WHERE line LIKE '%abc%'`, `sum(length(line))`): it reads every line.

Run (from the repository root, after `./scripts/test` made .venv, which has every engine):
  .venv/bin/python benches/engines.py                  # builds the release extension first
  MMB_CORPUS=path .venv/bin/python benches/engines.py
  MMB_NO_BUILD=1 MMB_PEERS=polars,duckdb .venv/bin/python benches/engines.py   # some peers only
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]

PEERS = {
    "pyarrow compute over record_batches (large_string: pyarrow has no string_view kernels)": """
import pyarrow as pa, pyarrow.compute as pc
from mmap_batcher import MmapBatcher
t = time.perf_counter()
mmb = MmapBatcher(CORPUS, batch_size=8192, seed=1, ignore_leftovers=False)
n = total = 0
for ab in mmb.epoch(0).record_batches(["line"], layout="large"):
    line = pa.record_batch(ab).column(0)
    n += pc.sum(pc.match_substring(line, "abc")).as_py() or 0
    total += pc.sum(pc.utf8_length(line)).as_py() or 0
""",
    "DuckDB over an epoch stream": """
import duckdb
from mmap_batcher import MmapBatcher
t = time.perf_counter()
ep = MmapBatcher(CORPUS, batch_size=8192, seed=1, ignore_leftovers=False).epoch(0)
n, total = duckdb.sql("SELECT count(*) FILTER (WHERE line LIKE '%abc%'), sum(length(line)) FROM ep").fetchall()[0]
""",
    "DuckDB read_csv (file order)": """
import duckdb
t = time.perf_counter()
q = f"SELECT count(*) FILTER (WHERE line LIKE '%abc%'), sum(length(line)) FROM read_csv('{CORPUS}', columns={{'line': 'VARCHAR'}}, delim=chr(1), quote='', escape='', header=false)"
n, total = duckdb.sql(q).fetchall()[0]
""",
    "datafusion-python over mmb.table()": """
from datafusion import SessionContext
from mmap_batcher import MmapBatcher
t = time.perf_counter()
ctx = SessionContext()
ctx.register_table("lines", MmapBatcher(CORPUS, batch_size=8192, seed=1, ignore_leftovers=False).table(epochs=1))
row = ctx.sql("SELECT count(*) FILTER (WHERE line LIKE '%abc%'), sum(length(line)) FROM lines").collect()[0]
n, total = row.column(0)[0].as_py(), row.column(1)[0].as_py()
""",
    "datafusion-python read_csv (file order)": """
import pyarrow as pa
from datafusion import SessionContext
t = time.perf_counter()
ctx = SessionContext()
ctx.register_csv("lines", CORPUS, schema=pa.schema([("line", pa.string())]), has_header=False, delimiter="\\x01", file_extension=".txt")
row = ctx.sql("SELECT count(*) FILTER (WHERE line LIKE '%abc%'), sum(length(line)) FROM lines").collect()[0]
n, total = row.column(0)[0].as_py(), row.column(1)[0].as_py()
""",
    "Polars scan_lines (shuffled)": """
import polars as pl
from mmap_batcher import scan_lines
t = time.perf_counter()
df = scan_lines(CORPUS, seed=1).select(pl.col("line").str.contains("abc", literal=True).sum().alias("n"), pl.col("line").str.len_chars().sum().alias("chars")).collect()
n, total = df.row(0)
""",
    "Polars pl.scan_lines (file order)": """
import polars as pl
t = time.perf_counter()
df = pl.scan_lines(CORPUS).select(pl.col("line").str.contains("abc", literal=True).sum().alias("n"), pl.col("line").str.len_chars().sum().alias("chars")).collect()
n, total = df.row(0)
""",
    "Ray read_lines (shuffled)": """
import ray
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
from mmap_batcher.ray import read_lines
import pyarrow.compute as pc
t = time.perf_counter()
n = total = 0
for b in read_lines(CORPUS, batch_size=8192, seed=1).iter_batches(batch_size=None, batch_format="pyarrow"):
    n += pc.sum(pc.match_substring(b.column("line"), "abc")).as_py() or 0
    total += pc.sum(pc.utf8_length(b.column("line"))).as_py() or 0
""",
    "Ray read_text (file order)": """
import ray
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
import pyarrow.compute as pc
t = time.perf_counter()
n = total = 0
for b in ray.data.read_text(CORPUS).iter_batches(batch_size=None, batch_format="pyarrow"):
    n += pc.sum(pc.match_substring(b.column("text"), "abc")).as_py() or 0
    total += pc.sum(pc.utf8_length(b.column("text"))).as_py() or 0
""",
}

EPILOGUE = """
elapsed = time.perf_counter() - t
status = open("/proc/self/status").read()
kib = lambda k: int(next(l for l in status.splitlines() if l.startswith(k)).split()[1])
print(json.dumps({"seconds": elapsed, "matches": int(n), "chars": int(total), "peak_rss_mib": kib("VmHWM:") / 1024, "rss_anon_mib": kib("RssAnon:") / 1024}))
"""


def main() -> None:
    env = dict(os.environ, VIRTUAL_ENV=str(REPO / ".venv"), PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}")
    if not os.environ.get("MMB_NO_BUILD"):
        subprocess.run(["maturin", "develop", "--release", "--quiet", "--features", "datafusion"], cwd=REPO / "python", check=True, env=env)
    corpus = pathlib.Path(os.environ.get("MMB_CORPUS", REPO / "bench-data" / "corpus-10000000.txt"))
    print(f"corpus {corpus} ({corpus.stat().st_size / 2**20:.0f} MiB); warm page cache")
    subprocess.run(["cat", str(corpus)], stdout=subprocess.DEVNULL, check=True)
    print("| peer | seconds | lines with 'abc' | peak RSS MiB | RssAnon MiB |")
    print("| --- | --- | --- | --- | --- |")
    only = os.environ.get("MMB_PEERS")
    for name, body in PEERS.items():
        if only and not any(o.lower() in name.lower() for o in only.split(",")):
            continue
        code = f"import json, time\nCORPUS = {str(corpus)!r}\n{body}\n{EPILOGUE}"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            print(f"| {name} | failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else '?'} | | | |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {name} | {r['seconds']:.2f} | {r['matches']:,} | {r['peak_rss_mib']:,.0f} | {r['rss_anon_mib']:,.0f} |")


if __name__ == "__main__":
    main()
