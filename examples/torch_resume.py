# examples/torch_resume.py
import torch
from torchdata.stateful_dataloader import StatefulDataLoader
from mmap_batcher import MmapBatcher


def make_loader(workers):
    dataset = MmapBatcher("corpus.txt", batch_size=256, seed=1).torch()
    return StatefulDataLoader(dataset, batch_size=None, num_workers=workers)


loader = make_loader(2)
for step, batch in enumerate(loader):
    if step == 10:
        torch.save({"loader": loader.state_dict()}, "ckpt.pt")  # with the model's state
        break

# After a crash, in a new process: the same layout resumes exactly with load_state_dict ...
loader = make_loader(2)
loader.load_state_dict(torch.load("ckpt.pt")["loader"])
rest = list(loader)  # the batches after step 10 of epoch 0, then epoch 1 on the next pass

# ... and another layout (here 3 workers) with resume_from, which combines the workers' states.
again = make_loader(3)
again.dataset.resume_from(torch.load("ckpt.pt")["loader"])
assert sorted(map(tuple, list(again))) == sorted(map(tuple, rest))
