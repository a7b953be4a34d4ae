"""Config mappings checked against ``TrainConfig``'s types before they are used, with their source named.

Recipe ``config`` dicts, plan files and ``--set``/``--vary`` values all go through ``check_settings``, built
on ``throughput.validation`` (the same layer that reads sessions), so every wrong key or value is one line:

    plan.json: lr: expected a finite number, got "fast"
    --set lr=inf: expected a finite number, got "inf"
    recipe tiny: config: unknown config key "stepz" (did you mean "steps"?)

Range rules (``lr >= 0``, ``steps >= 1``, ...) stay in ``TrainConfig.__post_init__``; this module checks
keys, types and finiteness (no NaN or inf anywhere in a training config).
"""

from __future__ import annotations

import typing
from typing import Any, Mapping

from throughput.loop.config import ConfigError, TrainConfig
from throughput.validation import DecodeError, all_finite, decode_fields, parse_text


def check_settings(raw: Any, source: str) -> dict[str, Any]:
    """Typed values (a recipe's config, a plan file's settings): keys known, types right, floats finite.
    Raises ConfigError ``"<source>: <key>: <problem>"``."""
    try:
        return decode_fields(TrainConfig, raw, finite=all_finite, noun="config key")
    except DecodeError as e:
        raise ConfigError(f"{source}: {e}") from None


def check_text_settings(raw: Mapping[str, str], flag: str = "--set") -> dict[str, Any]:
    """String values from the command line, parsed by each key's type. Raises ConfigError
    ``"--set key=value: <problem>"``."""
    hints = typing.get_type_hints(TrainConfig)
    out: dict[str, Any] = {}
    for key, text in raw.items():
        try:
            if key not in hints:
                decode_fields(TrainConfig, {key: text}, noun="config key")   # the message, with a suggestion
            out[key] = text if hints[key] is str else parse_text(hints[key], text)
        except DecodeError as e:
            raise ConfigError(f"{flag} {key}={text}: {e.problem}") from None
    return out


def check_overrides(raw: Mapping[str, Any], source: str = "overrides") -> dict[str, Any]:
    """Overrides as ``throughput.train(overrides=...)`` takes them: strings (as from ``--set``) are
    parsed, typed values checked."""
    text = {k: v for k, v in raw.items() if isinstance(v, str)}
    typed = {k: v for k, v in raw.items() if not isinstance(v, str)}
    return {**check_settings(typed, source), **check_text_settings(text, source)}
