"""``python -m compat.check_env CONSTRAINTS``: fail when the compat environment's torch is not the one
the constraints file pins (a framework's requirements can make pip replace the CPU build on disk by a
CUDA build of several GB). Prints what is installed."""

from __future__ import annotations

import re
import sys
from pathlib import Path


def pinned_torch(constraints: Path) -> str | None:
    """The version ``torch==X`` pins in ``constraints``, or None when it pins none."""
    for line in constraints.read_text().splitlines():
        match = re.match(r"^\s*torch\s*==\s*([^\s;#]+)", line)
        if match:
            return match.group(1)
    return None


def main(argv: list[str]) -> int:
    import torch
    pin = pinned_torch(Path(argv[0])) if argv else None
    print(f"compat env: torch {torch.__version__} (CUDA build: {torch.version.cuda or 'no'}), "
          f"constraints pin {pin or 'nothing'}")
    if pin is not None and torch.__version__.split("+")[0] != pin:
        print(f"compat: the environment has torch {torch.__version__}, not the pinned {pin}: a framework's "
              "requirements overrode the constraints; remove compat/.venv and check compat/requirements.txt",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
