"""Pure functions from sessions to frozen summaries. No torch, no printing, no I/O."""

from throughput.analysis.breakdown import PhaseStats, breakdown, phase_times
from throughput.analysis.rates import Rates, rates
from throughput.analysis.stats import Distribution, distribution
from throughput.analysis.summary import Summary, summarize
from throughput.analysis.verdict import Verdict, verdict

__all__ = ["Distribution", "PhaseStats", "Rates", "Summary", "Verdict", "breakdown", "distribution",
           "phase_times", "rates", "summarize", "verdict"]
