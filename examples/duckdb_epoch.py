# examples/duckdb_epoch.py
import duckdb
from mmap_batcher import MmapBatcher

epoch = MmapBatcher("corpus.txt", batch_size=1024, seed=1).epoch(0)  # an Arrow stream
print(duckdb.sql("SELECT count(*), avg(length(line)) FROM epoch WHERE line LIKE '%abc%'").fetchall())
