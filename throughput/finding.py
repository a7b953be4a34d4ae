"""The one finding record: what the verdict's neighbours, the loss diagnosis and the advisor report.

A torch-free leaf module (it imports nothing from throughput). Every producer uses this type:
training-hygiene checks (``analysis/findings.py``), the loss-curve diagnosis (``analysis/loss.py``),
the advisor's rules on a saved session and its measured probes (``advisor/``). A finding carries its
evidence; those that recommend a change also carry the knob settings, the expected gain and how
sure it is. How to apply a recommendation to a given script or recipe (the argv, or the code change)
is derived from ``settings`` by ``throughput.advisor.apply``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final, Mapping, Sequence

Setting = bool | int | float | str | None


def int_setting(settings: Mapping[str, object], key: str, default: int | None = None) -> int:
    """An integer knob's value from a config or plan (``default`` where it is absent or None). The knobs
    validated it on the way in (throughput/knobs.py), so anything but a number here is a bug."""
    value = settings.get(key)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"setting {key} must be a number, got {value!r}")
    return int(value)
CONFIDENCES: Final = ("high", "medium", "low")
# How much a confidence counts when ranking: measured A/B trials (high) outrank estimates from a profile.
CONFIDENCE_WEIGHT: Final[Mapping[str, float]] = {"high": 1.0, "medium": 0.6, "low": 0.3}


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One finding.

    - ``rule_id``: stable id (``data.num_workers``, ``loss.divergence``, ``bn_small_batch``).
    - ``title``: one line, what was seen or what to do; ``evidence``: the measured numbers, as short
      sentences (thresholds stated); ``values``: the same as numbers, where a rule has them (loss rules).
    - ``action``: the change to make, in words or code; ``first_step``/``last_step``: the steps it concerns.
    - Recommendations: ``settings`` (knob -> value, throughput/knobs.py), ``expected_gain`` (relative
      samples/s, 0.25 = +25%; None: not estimated) with ``gain_noise`` (half-width of its band from
      repeated probes; None: not measured repeatedly), ``confidence`` (high: measured; medium: derived
      from the profile; low: a heuristic), ``measured`` (a probe ran with exactly this change applied and
      all else equal), ``changes_training`` (what it alters besides speed and what else must change; None:
      training math and data are unchanged), ``code_change`` (the exact edit, with a snippet, where the
      change needs code: e.g. gradient accumulation in a script; None: derived from the settings).
    """

    rule_id: str
    title: str
    evidence: tuple[str, ...] = ()
    action: str = ""
    values: Mapping[str, float] = field(default_factory=dict)
    first_step: int | None = None
    last_step: int | None = None
    settings: Mapping[str, Setting] = field(default_factory=dict)
    expected_gain: float | None = None
    gain_noise: float | None = None
    confidence: str = "medium"
    measured: bool = False
    changes_training: str | None = None
    code_change: str | None = None

    def __post_init__(self) -> None:
        if not self.rule_id or not self.title:
            raise ValueError("a finding needs a rule_id and a title")
        if self.confidence not in CONFIDENCES:
            raise ValueError(f"confidence must be one of {CONFIDENCES}, got {self.confidence!r}")
        for name in ("expected_gain", "gain_noise"):
            value = getattr(self, name)
            if value is not None and value != value:
                raise ValueError(f"{name} is NaN; use None when it cannot be estimated")
        if self.first_step is not None and self.last_step is not None and self.last_step < self.first_step:
            raise ValueError(f"last_step {self.last_step} < first_step {self.first_step}")

    # Names the hygiene findings and the loop's diagnosis used before they shared this type.
    @property
    def kind(self) -> str:
        return self.rule_id

    @property
    def message(self) -> str:
        return self.title

    @property
    def step(self) -> int | None:
        return self.first_step

    @property
    def score(self) -> float:
        """Ranking key: expected gain weighted by confidence (unknown gains rank after known ones)."""
        gain = self.expected_gain if self.expected_gain is not None else 0.0
        return gain * CONFIDENCE_WEIGHT[self.confidence]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        d = asdict(self)
        d["evidence"], d["values"], d["settings"] = list(self.evidence), dict(self.values), dict(self.settings)
        return d


def as_int(value: object, default: int = 0) -> int:
    """A setting read as an int (``default`` for None); settings of int knobs are ints already."""
    if value is None:
        return default
    if isinstance(value, (bool, int, float, str)):
        return int(value)
    raise TypeError(f"not an integer setting: {value!r}")


def rank(findings: Sequence[Finding]) -> tuple[Finding, ...]:
    """Highest score first; ties keep their order (stable sort)."""
    return tuple(sorted(findings, key=lambda f: -f.score))
