"""Fixtures for the loop tests."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.loop.helpers import Zygote


@pytest.fixture(scope="session")
def zygote() -> Iterator[Zygote]:
    """One warm forking parent for every test that kills or signals training processes."""
    z = Zygote()
    try:
        yield z
    finally:
        z.close()
