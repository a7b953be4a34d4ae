"""A generated, offline corpus of variable-length documents and a tokenizer that does real work.

The documents are sentences drawn from a small grammar over a Zipf-distributed vocabulary, so the
text has learnable structure (a model's loss falls) without any download. Lengths follow a lognormal,
as real web documents do, which makes padding waste realistic (about half of the tokens when each
document is padded to the row length).
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass

_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "si", "vo", "de", "pa", "zu", "be", "ko", "ri", "na")
_WORD_RE = re.compile(r"[a-z]+|[.,;!?]")


def _make_words(n: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))))
    return sorted(words)


@dataclass(frozen=True, slots=True, kw_only=True)
class CorpusConfig:
    documents: int = 2000
    vocab_words: int = 400
    median_tokens: int = 80
    max_tokens: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.documents < 1 or self.vocab_words < 10 or self.median_tokens < 1 or self.max_tokens < 2:
            raise ValueError(f"invalid corpus config: {self}")


def generate_corpus(cfg: CorpusConfig = CorpusConfig()) -> list[str]:
    """Documents as text. Deterministic for a seed."""
    rng = random.Random(cfg.seed)
    words = _make_words(cfg.vocab_words, rng)
    weights = [1.0 / (i + 1) for i in range(len(words))]           # Zipf(1)
    # Accumulated once: ``choices(words, weights)`` would re-accumulate all the weights on every call
    # (most of the generation time); with the same sums it draws exactly the same words.
    cum = list(itertools.accumulate(weights))
    docs = []
    for _ in range(cfg.documents):
        target = max(4, min(cfg.max_tokens - 2, int(rng.lognormvariate(0, 0.8) * cfg.median_tokens)))
        out: list[str] = []
        while len(out) < target:
            subject = rng.choices(words, cum_weights=cum)[0]
            # a simple grammar: subject verb-like word object, with agreement through a suffix
            sentence = [subject, subject[:2] + "ta", *rng.choices(words, cum_weights=cum, k=rng.randint(1, 5)), "."]
            out.extend(sentence)
        docs.append(" ".join(out[:target]))
    return docs


class WordTokenizer:
    """Word-level tokenizer with normalization; ~tens of microseconds per document of real Python work.

    Ids: 0 = pad, 1 = bos, 2 = eos, 3 = unk, then the vocabulary.
    """

    PAD, BOS, EOS, UNK = 0, 1, 2, 3

    def __init__(self, corpus: list[str], max_vocab: int = 2000) -> None:
        counts: dict[str, int] = {}
        for doc in corpus:
            for w in _WORD_RE.findall(doc.lower()):
                counts[w] = counts.get(w, 0) + 1
        ranked = sorted(counts, key=lambda w: (-counts[w], w))[: max_vocab - 4]
        self.vocab = {w: i + 4 for i, w in enumerate(ranked)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + 4

    def encode(self, text: str, work: int = 1) -> list[int]:
        """Token ids with bos/eos. ``work`` repeats the normalization pass to emulate a heavier
        tokenizer (real per-sample CPU work, so that loading can be the bottleneck)."""
        ids: list[int] = []
        for _ in range(max(1, work)):
            ids = [self.BOS] + [self.vocab.get(w, self.UNK) for w in _WORD_RE.findall(text.lower())] + [self.EOS]
        return ids
