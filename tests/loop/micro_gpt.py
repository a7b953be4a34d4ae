"""Test recipe: examples/recipes/tiny_gpt.py shrunk so a step takes a few milliseconds on one CPU core.

Sizes can be changed through environment variables (MICRO_GPT_D, MICRO_GPT_DROPOUT) so a test can make
a recipe with another model fingerprint without another file.
"""

import importlib.util
import os
from pathlib import Path

_path = Path(__file__).resolve().parents[2] / "examples" / "recipes" / "tiny_gpt.py"
_spec = importlib.util.spec_from_file_location("tiny_gpt_for_tests", _path)
assert _spec is not None and _spec.loader is not None
tiny_gpt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny_gpt)

tiny_gpt.VOCAB = 16
tiny_gpt.CONTEXT = 12
tiny_gpt.D_MODEL = int(os.environ.get("MICRO_GPT_D", "16"))
tiny_gpt.LAYERS = 1
tiny_gpt.HEADS = 2
tiny_gpt.DROPOUT = float(os.environ.get("MICRO_GPT_DROPOUT", "0.1"))
tiny_gpt.N_TRAIN = 96
tiny_gpt.N_VAL = 32

build_model = tiny_gpt.build_model
build_datasets = tiny_gpt.build_datasets
loss_fn = tiny_gpt.loss_fn
collate_fn = tiny_gpt.collate_fn
config = {"steps": 30, "micro_batch_size": 8, "lr": 3e-3, "warmup_steps": 5, "eval_every": 10,
          "eval_batches": 2, "log_every": 10}
