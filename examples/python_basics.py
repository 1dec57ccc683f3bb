# examples/python_basics.py
from mmap_batcher import MmapBatcher

mmb = MmapBatcher("corpus.txt", batch_size=100, seed=1)  # indexes once, then maps the index file
for epoch in range(2):
    for batch in mmb:  # this shard's batches of the current epoch, list[bytes]
        assert all(line.endswith(b"\n") for line in batch)
print(mmb.seed, mmb.num_lines, mmb.lines[0])  # random access: line 0 of the corpus

import pyarrow as pa

for ab in mmb.epoch(0).record_batches(["line", "line_number"]):  # zero-copy Arrow batches
    rb = pa.record_batch(ab)
print(rb.schema)
