# examples/datafusion_sql.py
from datafusion import SessionContext
from mmap_batcher import MmapBatcher

ctx = SessionContext()
ctx.register_table("lines", MmapBatcher("corpus.txt", seed=1, ignore_leftovers=False).table(epochs=3))
print(ctx.sql("SELECT epoch, count(*) AS n FROM lines WHERE line LIKE '%abc%' GROUP BY epoch ORDER BY epoch").to_arrow_table())
