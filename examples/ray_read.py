# examples/ray_read.py
import ray
from mmap_batcher.ray import read_lines

ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
ds = read_lines("corpus.txt", epochs=2, batch_size=1024, seed=1)
print(ds.groupby("epoch").count().take_all())
for batch in ds.iter_batches(batch_size=4096, batch_format="pyarrow"):
    pass
ray.shutdown()
