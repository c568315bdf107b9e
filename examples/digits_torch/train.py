"""The digits task with a small PyTorch MLP on the CPU, checkpointed as state dicts.

Run plainly:   python examples/digits_torch/train.py optimizer.lr=0.05
Run a sweep:   hpctrack launch examples/digits_torch/train.py 'optimizer.lr=0.01,0.1' 'seed=0,1'

Each epoch saves the model's and the optimizer's state dicts (plus the shuffling
generator) with torch.save into a checkpoint directory of the run. After a
requeue or `hpctrack resume` the run loads the newest one and continues with
the next epoch, giving the same numbers as an uninterrupted run.
"""

import time

import hydra
import torch
from torch import nn

import hpctrack

from data import load_splits  # sibling module: the script's directory is on sys.path


def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple:
    with torch.no_grad():
        logits = net(x)
        return float(nn.functional.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg):
    torch.set_num_threads(1)  # deterministic, and no oversubscription when jobs share a node
    with hpctrack.start_run(cfg) as run:
        (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = load_splits(cfg.val_fraction, cfg.test_fraction, cfg.seed)
        torch.manual_seed(cfg.seed)
        net = nn.Sequential(nn.Linear(x_tr.shape[1], cfg.model.hidden), nn.ReLU(), nn.Linear(cfg.model.hidden, 10))
        optimizer = torch.optim.SGD(net.parameters(), lr=cfg.optimizer.lr, momentum=cfg.optimizer.momentum)
        shuffle = torch.Generator().manual_seed(cfg.seed)

        start = 0
        checkpoint = run.latest_checkpoint()  # None on a fresh start
        if checkpoint is not None:
            saved = torch.load(checkpoint.path / "state.pt", weights_only=True)
            net.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            shuffle.set_state(saved["shuffle"])
            start = saved["epoch"] + 1

        for epoch in range(start, cfg.epochs):
            net.train()
            order = torch.randperm(len(x_tr), generator=shuffle)
            total = 0.0
            for i in range(0, len(order), cfg.batch_size):
                idx = order[i : i + cfg.batch_size]
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(net(x_tr[idx]), y_tr[idx])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            net.eval()
            val_loss, val_acc = evaluate(net, x_val, y_val)
            run.log({"train/loss": total / len(order), "val/loss": val_loss, "val/acc": val_acc}, step=epoch)
            with run.checkpoint(step=epoch) as directory:  # committed when the block ends
                torch.save(
                    {
                        "model": net.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "shuffle": shuffle.get_state(),
                        "epoch": epoch,
                    },
                    directory / "state.pt",
                )
            if cfg.epoch_sleep_s:
                time.sleep(cfg.epoch_sleep_s)

        test_loss, test_acc = evaluate(net, x_te, y_te)
        run.summary["test/acc"] = test_acc
        run.summary["test/loss"] = test_loss


if __name__ == "__main__":
    main()
