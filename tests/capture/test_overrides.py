"""--set parsing and how overrides change DataLoader keyword arguments."""

from __future__ import annotations

import pytest

from throughput.capture.overrides import (Overrides, apply_loader_overrides, launch_env, overrides_from,
                                          parse_overrides, parse_set, valid_keys)


def test_parse_all_keys() -> None:
    o = parse_overrides(["num_workers=4", "pin_memory=true", "persistent-workers=yes", "prefetch_factor=2",
                         "batch_size=64", "amp=bfloat16", "tf32=0"])
    assert o == Overrides(num_workers=4, pin_memory=True, persistent_workers=True, prefetch_factor=2,
                          batch_size=64, amp="bf16", tf32=False)
    assert o.describe() == ("num_workers=4, pin_memory=true, persistent_workers=true, prefetch_factor=2, "
                            "batch_size=64, amp=bf16, tf32=false")
    # the vocabulary's name for the batch size, and "off" as the spelling of no autocast
    assert parse_overrides(["micro_batch_size=8", "amp=off"]) == Overrides(batch_size=8, amp="fp32")


def test_launch_time_knobs_become_environment_not_overrides() -> None:
    values = parse_set(["malloc_threshold_bytes=1073741824", "num_workers=2"])
    assert overrides_from(values) == Overrides(num_workers=2)
    assert launch_env(values) == {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
    assert launch_env(parse_set(["num_workers=2"])) == {}


@pytest.mark.parametrize("item, message", [
    ("workers=2", "unknown override 'workers'; valid keys: " + ", ".join(valid_keys())),
    ("num_workers", "expects KEY=VALUE"),
    ("num_workers=two", "num_workers must be int, got 'two'"),
    ("pin_memory=maybe", "pin_memory must be bool, got 'maybe' (use true or false)"),
    ("num_workers=-1", "num_workers must be >= 0"),
    ("batch_size=0", "micro_batch_size must be >= 1"),
    ("amp=fp8", "amp must be one of bf16 | fp16 | fp32 for a script (auto is for throughput train), got 'fp8'"),
    ("amp=auto", "amp must be one of bf16 | fp16 | fp32 for a script"),
    ("grad_accum=2", "grad_accum cannot be set on an unmodified script (use throughput train recipe.py "
                     "--set grad_accum=...; in code: accum = ..."),
    ("packing=true", "packing cannot be set on an unmodified script"),
])
def test_bad_overrides_are_one_line(item: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_overrides([item])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_loader_overrides_respect_what_a_loader_can_take() -> None:
    o = Overrides(batch_size=32, prefetch_factor=4, persistent_workers=True)
    # no workers: prefetch_factor and persistent_workers would make DataLoader raise, so they are skipped
    kwargs, applied = apply_loader_overrides({"batch_size": 8}, o)
    assert kwargs == {"batch_size": 32} and applied == ("batch_size",)
    # a batch_sampler owns the batch size
    kwargs, applied = apply_loader_overrides({"batch_sampler": object(), "num_workers": 2}, o)
    assert "batch_size" not in kwargs and applied == ("persistent_workers", "prefetch_factor")
    # num_workers=0 forced on a loader that set its own prefetch_factor: that option is dropped
    kwargs, applied = apply_loader_overrides({"num_workers": 4, "prefetch_factor": 2}, Overrides(num_workers=0))
    assert kwargs == {"num_workers": 0} and applied == ("num_workers", "prefetch_factor(dropped)")
