"""Hugging Face ``transformers.Trainer``: a 2-layer GPT-2 built from a config (random init, nothing
downloaded) on generated token sequences, 30 updates with gradient accumulation 2, a checkpoint every
15 updates (model through safetensors, optimizer/scheduler/RNG through ``torch.save``) and an evaluation
every 15 updates."""

from __future__ import annotations

import sys
import tempfile

import torch
import transformers
import transformers.modeling_utils
from torch.utils.data import Dataset
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

from _common import UpdateCounter, interval, mark_calls, params_sha256, report, seed_all

STEPS, ACCUM, BATCH, SEQ = 30, 2, 8, 32


class Tokens(Dataset):
    """Sequences of a repeating pattern with noise: learnable, so the loss moves."""

    def __init__(self, n: int, vocab: int) -> None:
        g = torch.Generator().manual_seed(1)
        base = torch.arange(SEQ).repeat(n, 1) % 16 + torch.randint(0, 4, (n, 1), generator=g) * 16
        noise = torch.randint(0, vocab, (n, SEQ), generator=g)
        keep = torch.rand(n, SEQ, generator=g) < 0.9
        self.ids = torch.where(keep, base, noise)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class Record(TrainerCallback):
    """Keeps the last logged loss (logging every update) and hooks the optimizer Trainer built."""

    def __init__(self, counter: UpdateCounter) -> None:
        self.counter = counter
        self.last_loss = float("nan")
        self.eval_losses: list[float] = []

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):  # type: ignore[no-untyped-def]
        self.counter.attach(getattr(optimizer, "optimizer", optimizer))  # the torch optimizer inside

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        if logs and "loss" in logs:
            self.last_loss = logs["loss"]
        if logs and "eval_loss" in logs:
            self.eval_losses.append(logs["eval_loss"])


def main(workdir: str) -> None:
    seed_all(0)
    transformers.utils.logging.disable_progress_bar()  # its bars print rates, which differ between runs
    config = GPT2Config(vocab_size=64, n_positions=SEQ, n_embd=64, n_layer=2, n_head=2, bos_token_id=0,
                        eos_token_id=0)
    model = GPT2LMHeadModel(config)
    args = TrainingArguments(
        output_dir=workdir, max_steps=STEPS, per_device_train_batch_size=BATCH, gradient_accumulation_steps=ACCUM,
        learning_rate=3e-3, save_strategy="steps", save_steps=15, eval_strategy="steps", eval_steps=15,
        per_device_eval_batch_size=BATCH, logging_steps=1, report_to="none",
        disable_tqdm=True, use_cpu=True, seed=0, dataloader_num_workers=0)
    counter = UpdateCounter()
    record = Record(counter)
    trainer = Trainer(model=model, args=args, train_dataset=Tokens(STEPS * ACCUM * BATCH, 64),
                      eval_dataset=Tokens(4 * BATCH, 64), callbacks=[record])
    trainer.remove_callback(transformers.trainer_callback.PrinterCallback)  # it prints timings
    mark_calls(trainer, "evaluate", "evaluate")
    mark_calls(trainer, "_save_checkpoint", "Trainer._save_checkpoint")
    mark_calls(transformers.modeling_utils, "safe_save_file", "safetensors save_file")  # save_pretrained's
    mark_calls(torch, "save", "torch.save")  # optimizer, scheduler, RNG states, training args
    with interval("train"):
        out = trainer.train()
    assert trainer.state.global_step == counter.count, (trainer.state.global_step, counter.count)
    report(updates=counter.count, final_loss=record.last_loss, digest=params_sha256(model),
           mean_loss=repr(out.training_loss), eval_losses=record.eval_losses)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
