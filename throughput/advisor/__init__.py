"""The advisor: rules over a saved session, measured probes, and the tuned plan.

Torch-free: checkpoint, memory, rules, plan, space, search, candidates, confirm, apply, stream_check.
Torch side: trials (memory meter), workload (probe target for a build function), isolate (each CPU probe
in a fresh child process of a primed probe server), recipe. Subprocess targets: script
(``throughput profile --set``), train_target (``throughput train --set``). The finding record is
``throughput.finding.Finding``.
"""

from throughput.advisor.checkpoint import CheckpointPlan, daly_interval, plan_checkpoints, young_interval
from throughput.advisor.memory import MemoryFit, fit_memory
from throughput.advisor.plan import Plan, build_plan, load_plan, save_plan
from throughput.advisor.rules import RULES, RuleInput, apply_rules, rule_input
from throughput.advisor.space import SearchSettings, SearchSpace, micro_batch_candidates
from throughput.advisor.search import AdvisorError, SearchResult, search
from throughput.finding import Finding, rank

__all__ = ["AdvisorError", "CheckpointPlan", "Finding", "MemoryFit", "Plan", "RULES", "RuleInput",
           "SearchResult", "SearchSettings", "SearchSpace", "apply_rules", "build_plan", "daly_interval",
           "fit_memory", "load_plan", "micro_batch_candidates", "plan_checkpoints", "rank", "rule_input",
           "save_plan", "search", "young_interval"]
