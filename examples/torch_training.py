# examples/torch_training.py
import torch
from torch.utils.data import DataLoader
from mmap_batcher import MmapBatcher
from mmap_batcher.torch import keep_batch  # hands each batch over as it is

mmb = MmapBatcher("corpus.txt", batch_size=256, seed=1)
loader = DataLoader(mmb.torch(), batch_size=None, collate_fn=keep_batch, num_workers=2)  # an item: list[bytes]
for epoch in range(2):  # each pass over the loader serves the next epoch: no set_epoch needed
    for batch in loader:
        lengths = torch.tensor([len(line) for line in batch])
    print(epoch, len(batch), lengths.float().mean().item())
