# examples/torch_ddp.py
# Two DDP ranks on this machine (gloo); under torchrun, call train() in each process.
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torchdata.stateful_dataloader import StatefulDataLoader
from mmap_batcher import MmapBatcher


def train(rank, world_size, resume=None):
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    # Rank and world size come from torch.distributed; even_shards: every rank the same steps.
    dataset = MmapBatcher("corpus.txt", batch_size=256, seed=1, even_shards=True).torch()
    if resume:
        dataset.resume_from(torch.load(resume), lockstep=True)  # rank 0's state stands for all
    loader = StatefulDataLoader(dataset, batch_size=None, num_workers=2)
    for step, batch in enumerate(loader):
        if step == 5 and rank == 0:
            torch.save(loader.state_dict(), "rank0.pt")  # the ranks run in lockstep
    dist.destroy_process_group()


def free_port():
    # A fresh port for every group: the last group's port (or its neighbour) may still be taken.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


if __name__ == "__main__":
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=free_port())
    mp.spawn(train, args=(2,), nprocs=2)
    os.environ["MASTER_PORT"] = free_port()
    mp.spawn(train, args=(3, "rank0.pt"), nprocs=3)  # resumed on 3 ranks from rank 0's state
