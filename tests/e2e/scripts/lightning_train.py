"""A tiny Lightning model logged through hpctrack: `logger=HpctrackLogger()` is the only hpctrack line.

A linear regression on a fixed random data set, with a datamodule, validation each epoch and a
`ModelCheckpoint` on `val/loss`. In the run's first attempt each training step is followed by a
sleep of `sleep_first_attempt_s` (a job that runs into its time limit); `slurm_requeue` hands
requeue to Lightning's own SLURM handler.
"""

import os
import signal
import time

import hydra
import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from hpctrack.identity import identity_from_env
from hpctrack.integrations.lightning import HpctrackLogger


class Data(pl.LightningDataModule):
    def __init__(self, samples: int, batch_size: int) -> None:
        super().__init__()
        self.save_hyperparameters()
        g = torch.Generator().manual_seed(0)
        x = torch.randn(samples, 4, generator=g)
        self.data = TensorDataset(x, x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1)

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=self.hparams.batch_size)

    def val_dataloader(self):
        return DataLoader(self.data, batch_size=self.hparams.batch_size)


class Model(pl.LightningModule):
    def __init__(self, lr: float, hidden: int, sleep_s: float, arch: str = "mlp-2") -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["sleep_s"])
        self.sleep_s = sleep_s
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.Linear(hidden, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y)
        self.log("train/loss", loss)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        # Where SLURM's signal mostly lands. Lightning logs the step's metrics after this hook: a checkpoint
        # saved on a signal here counts the step as done, and the resumed fit goes on after it (no point for it).
        time.sleep(self.sleep_s)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


@hydra.main(config_path="conf", config_name="lightning_train", version_base=None)
def main(cfg):
    pl.seed_everything(cfg.seed)
    identity = identity_from_env()
    first = identity is None or identity.attempt == 1
    plugins = None
    if cfg.slurm_requeue:
        from lightning.pytorch.plugins.environments import SLURMEnvironment

        plugins = [SLURMEnvironment(auto_requeue=True)]
    logger = HpctrackLogger()
    if cfg.signal_before_fit:  # SLURM's requeue signal, sent before fitting starts
        os.kill(os.getpid(), signal.SIGUSR1)
    trainer = pl.Trainer(
        max_epochs=cfg.epochs,
        accelerator="cpu",
        devices=cfg.devices,
        strategy=cfg.strategy,
        plugins=plugins,
        logger=logger,
        callbacks=[ModelCheckpoint(monitor="val/loss", save_top_k=1)],
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = Model(cfg.lr, cfg.hidden, cfg.sleep_first_attempt_s if first else 0.0)
    trainer.fit(model, datamodule=Data(cfg.samples, cfg.batch_size))


if __name__ == "__main__":
    main()
