# examples/lightning_fit.py
import lightning as L
import torch
from torchdata.stateful_dataloader import StatefulDataLoader
from mmap_batcher import MmapBatcher


class Lines(L.LightningDataModule):
    def train_dataloader(self):
        dataset = MmapBatcher("corpus.txt", batch_size=256, seed=1).torch()
        return StatefulDataLoader(dataset, batch_size=None, num_workers=2)  # stateful: mid-epoch checkpoints resume


class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w * sum(len(line) for line in batch)).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_progress_bar=False)
trainer.fit(Model(), Lines())  # each epoch a new shuffle: Lightning calls no set_epoch, none is needed
