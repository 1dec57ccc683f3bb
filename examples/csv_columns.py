# examples/csv_columns.py
import pathlib

import duckdb
import polars as pl
from mmap_batcher import MmapBatcher, scan_lines

for part in ("a", "b"):  # two CSV files, each with its header line
    rows = "".join(f"{part}{i},{i % 3},{i * 0.5}\n" for i in range(100))
    pathlib.Path(f"scores-{part}.csv").write_text("id,group,score\n" + rows)

# Polars: the header lines skipped in every file, the columns split out of `line`.
lf = scan_lines("scores-*.csv", header_lines=1, seed=1, comment_char=None)
cols = pl.col("line").str.split_exact(",", 2).struct.rename_fields(["id", "group", "score"])
table = lf.select(cols).unnest("line").with_columns(pl.col("group").cast(pl.Int64), pl.col("score").cast(pl.Float64))
per_group = table.group_by("group").agg(pl.len(), pl.col("score").sum()).sort("group").collect()
print(per_group)
assert per_group["len"].sum() == 200 and "id" not in table.collect()["id"].to_list()

# DuckDB over one shuffled epoch: split_part, cast, aggregate.
epoch = MmapBatcher("scores-*.csv", batch_size=64, seed=1, header_lines=1, ignore_leftovers=False).epoch(0)
print(duckdb.sql("""
    SELECT CAST(split_part(line, ',', 2) AS INTEGER) AS grp, count(*) AS n,
           sum(CAST(split_part(line, ',', 3) AS DOUBLE)) AS score
    FROM epoch GROUP BY grp ORDER BY grp
""").fetchall())
