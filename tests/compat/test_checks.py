"""compat/checks.py: the pieces of judging a plain run against a profiled one that need no framework."""

from __future__ import annotations

from pathlib import Path

from compat.checks import normalise_stderr, result_lines, traceback_excerpt

TORCHRUN_STDERR = """\
[rank0]: Traceback (most recent call last):
[rank0]:   File "/x/rows/fabric_ddp.py", line 27, in main
[rank0]:     loader = fabric.setup_dataloaders(loader)
[rank0]:   File "/v/lib/python3.11/site-packages/lightning/fabric/utilities/data.py", line 149, in _get
[rank0]:     raise MisconfigurationException(
[rank0]: lightning.fabric.utilities.exceptions.MisconfigurationException: missing ['loader']
W1201 08:46:26.349000 12937 torch/distributed/elastic/multiprocessing/api.py:1028] Sending closing signal
Traceback (most recent call last):
  File "/v/lib/python3.11/site-packages/torch/distributed/run.py", line 1019, in run
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
"""


def test_excerpt_is_the_first_traceback_not_the_launchers() -> None:
    assert traceback_excerpt(TORCHRUN_STDERR, frames=2).splitlines() == [
        'File "/x/rows/fabric_ddp.py", line 27, in main',
        'File "lightning/fabric/utilities/data.py", line 149, in _get',
        "lightning.fabric.utilities.exceptions.MisconfigurationException: missing ['loader']"]


def test_normalise_keeps_the_message_and_drops_what_differs_per_run(tmp_path: Path) -> None:
    text = (f"W1201 08:46:26.349000 12937 torch/x.py:1] [5/0] Graph break in {tmp_path}/work\n"
            "  time : 2026-12-01_08:46:07 exitcode : 1 (pid: 12746)\n")
    assert normalise_stderr(text, tmp_path) == ["W<time> <pid> torch/x.py:1] [5/0] Graph break in <run>/work",
                                                "  time : <time> exitcode : 1 (pid <pid>)"]


def test_result_lines() -> None:
    assert result_lines("GPU available: False\nupdates=30\nfinal_loss=0.5\n") == {"updates": "30", "final_loss": "0.5"}


def test_pinned_torch_is_read_from_the_constraints(tmp_path: Path) -> None:
    from compat.check_env import pinned_torch
    constraints = tmp_path / "c.txt"
    constraints.write_text("# pins\ntorchvision==0.29.1\ntorch == 2.13.0  # the CPU build\n")
    assert pinned_torch(constraints) == "2.13.0"
    constraints.write_text("numpy<3\n")
    assert pinned_torch(constraints) is None
