"""Do loader workers split an IterableDataset's stream, or does each yield all of it?

Each DataLoader worker runs the dataset's whole ``__iter__``. Unless ``__iter__`` reads
``torch.utils.data.get_worker_info()`` and yields only its share, N workers yield every sample N
times: more samples/s, all of them duplicates. So before the advisor proposes ``num_workers > 0`` for
an iterable dataset it compares the first batches read with 0 and with 2 workers (sample digests,
``throughput.capture.digests``):

- with 2 workers some samples repeat, with 0 none do: the stream is **duplicated** (never proposed;
  the ``get_worker_info`` fix is shown instead);
- the same set of samples either way: the stream is **split** (workers may be proposed);
- anything else (different samples, none repeated: e.g. a random stream): **unconfirmed**, said so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from throughput.finding import Finding

CHECK_BATCHES = 4          # batches compared per side: 2 from each of 2 workers
CHECK_WORKERS = 2

GET_WORKER_INFO_FIX = '''from torch.utils.data import get_worker_info

class MyStream(IterableDataset):
    def __iter__(self):
        info = get_worker_info()                       # None in the main process
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for i, sample in enumerate(self.samples()):   # the stream, in its usual order
            if i % workers == worker:                  # each worker yields only its share
                yield sample'''


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitCheck:
    """``verdict``: split | duplicated | unconfirmed; ``evidence``: what was compared."""

    verdict: str
    evidence: tuple[str, ...]


def judge_split(zero: Mapping[str, Any] | None, two: Mapping[str, Any] | None,
                workers: int = CHECK_WORKERS) -> SplitCheck:
    """Compare the digest summaries (``digest_samples``, ``digest_distinct``, ``digest_set``) of the
    same batches read with 0 and with ``workers`` workers."""
    if not zero or not two:
        return SplitCheck(verdict="unconfirmed", evidence=("the first batches could not be compared",))
    seen = (f"first {two.get('digest_batches')} batches: {zero['digest_samples']} samples "
            f"({zero['digest_distinct']} distinct) with 0 workers, {two['digest_samples']} samples "
            f"({two['digest_distinct']} distinct) with {workers} workers")
    if two["digest_distinct"] < two["digest_samples"] and zero["digest_distinct"] == zero["digest_samples"]:
        return SplitCheck(verdict="duplicated", evidence=(seen, "every worker yields the same samples: the "
                                                          "dataset's __iter__ does not split the stream"))
    if two["digest_set"] == zero["digest_set"]:
        return SplitCheck(verdict="split", evidence=(seen, "the same samples either way: workers split the stream"))
    return SplitCheck(verdict="unconfirmed", evidence=(seen, "different samples, none repeated (a random or "
                                                       "reordered stream?): cannot confirm that workers split it"))


def duplicated_finding(check: SplitCheck) -> Finding:
    """The recommendation that replaces ``num_workers`` for a stream every worker would duplicate."""
    return Finding(rule_id="data.worker_split", title="Split the IterableDataset between loader workers before "
                   "adding workers (now each worker would yield every sample)", evidence=check.evidence,
                   confidence="high", action="yield only this worker's share in __iter__ (get_worker_info)",
                   code_change=GET_WORKER_INFO_FIX)


def check_in_process(make_loader: Callable[[int], Any]) -> SplitCheck:
    """The same comparison for a dataset in this process (recipes): ``make_loader(workers)`` builds the
    training DataLoader with that many workers; the first ``CHECK_BATCHES`` batches of each are hashed."""
    from throughput.capture.digests import DigestRecorder

    summaries: list[dict[str, Any]] = []
    for workers in (0, CHECK_WORKERS):
        got: dict[str, Any] = {}
        rec = DigestRecorder(CHECK_BATCHES, lambda **d: got.update(d))
        it = iter(make_loader(workers))
        try:
            while not rec.done:
                rec.add(next(it))
        except StopIteration:
            rec.flush()
        finally:
            del it          # shuts the workers down
        summaries.append(got)
    return judge_split(summaries[0], summaries[1])


def digest_context(session: Any) -> dict[str, Any] | None:
    """The ``batch digests`` context a run recorded (None when it recorded none)."""
    if session is None:
        return None
    for e in session.events:
        if e.kind == "context" and "digest_samples" in e.detail:
            return dict(e.detail)
    return None


def check_script(target: Any, workers_now: int, baseline_session: Any = None) -> SplitCheck:
    """Compare a script's first batches with 0 and with ``CHECK_WORKERS`` workers (``ScriptTarget`` runs,
    ``throughput profile --set num_workers=...``). ``baseline_session``: a run with digests already
    recorded at ``workers_now`` workers, reused for that side."""
    t = target.with_digests(CHECK_BATCHES)
    other = workers_now or CHECK_WORKERS
    got: dict[int, dict[str, Any] | None] = {}
    if baseline_session is not None:
        got[workers_now] = digest_context(baseline_session)
    for w in (0, other):
        if got.get(w) is None:
            t.run({"num_workers": w}, CHECK_BATCHES)
            got[w] = digest_context(t.last_session)
    return judge_split(got.get(0), got.get(other), other)
