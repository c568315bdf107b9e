"""A tiny BERT (2 layers, hidden size 16, built from a config: nothing downloaded) trained by the
Hugging Face Trainer with HpctrackCallback, resuming from the checkpoint its run recorded.

``kill_at``: attempt 1 flushes its run and SIGKILLs itself once it has logged that step.
``fill_at``: at that step the script fills the filesystem of its storage root.
"""

import os
import signal

import hydra
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

import hpctrack
from hpctrack.identity import identity_from_env
from hpctrack.integrations.transformers import HpctrackCallback, last_checkpoint


class Faults(TrainerCallback):
    def __init__(self, cfg):
        self.cfg = cfg

    def on_log(self, args, state, control, logs=None, **kwargs):
        identity = identity_from_env()
        if state.global_step == self.cfg.kill_at and identity is not None and identity.attempt == 1:
            hpctrack.run.current_run().flush()  # what attempt 1 logged after its checkpoint is on disk
            os.kill(os.getpid(), signal.SIGKILL)
        if state.global_step == self.cfg.fill_at:
            # Unbuffered, so that closing the file has nothing left to write onto the full disk.
            fd = os.open(os.path.join(os.environ["HPCTRACK_ROOT"], "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while True:
                    os.write(fd, b"\0" * (1 << 20))
            except OSError:
                pass
            finally:
                os.close(fd)


@hydra.main(config_path="conf", config_name="hf_trainer", version_base=None)
def main(cfg):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    if cfg.record_config:
        hpctrack.start_run(cfg)
    config = BertConfig(
        vocab_size=32,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        notes="n" * cfg.long_value_chars,
    )
    model = BertForSequenceClassification(config)
    ids = torch.randint(1, 32, (64, 8), generator=torch.Generator().manual_seed(0))
    data = [
        {"input_ids": ids[i], "attention_mask": torch.ones(8, dtype=torch.long), "labels": int(ids[i, 0] > 16)}
        for i in range(len(ids))
    ]
    args = TrainingArguments(
        output_dir="out",
        max_steps=cfg.max_steps,
        per_device_train_batch_size=8,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=cfg.eval_steps,
        save_steps=cfg.save_steps,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=data, eval_dataset=data[:16], callbacks=[HpctrackCallback(), Faults(cfg)]
    )
    trainer.train(resume_from_checkpoint=last_checkpoint())
    if cfg.evaluate_after:
        trainer.evaluate()
        trainer.evaluate(eval_dataset=data[16:32])
    trainer.log({"note": "done", "custom": 1.5})  # the string is skipped (a warning), the number logged
    print(f"TRAINED {trainer.state.global_step}", flush=True)


if __name__ == "__main__":
    main()
