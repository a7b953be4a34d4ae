"""Every `apply` the advisor prints for examples/zerocode/slow_loader.py runs and exits 0: a file of its
own (the longest advise run of the suite), so that ``--dist loadfile`` can run it beside the other
examples in ``test_apply_examples.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.advisor.apply_examples import check_every_apply_command_runs
from tests.zygote import Zygote


@pytest.mark.slow
def test_every_apply_command_runs_for_slow_loader(tmp_path: Path, zygote: Zygote) -> None:
    check_every_apply_command_runs(["examples/zerocode/slow_loader.py", "--steps", "60"], "probe.num_workers",
                                   tmp_path, zygote)
