# examples/polars_scan.py
import polars as pl
from mmap_batcher import scan_lines

lf = scan_lines("corpus.txt", seed=1, epochs=3)
counts = lf.filter(pl.col("epoch") == 2).filter(pl.col("line").str.contains("abc")).select(pl.len()).collect()
print(counts)
