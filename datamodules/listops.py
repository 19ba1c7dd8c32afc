"""ListOps (Nangia & Bowman 2018, Long Range Arena's long version), generated here with a fixed seed.

An example is a nested expression in LRA's bracket format, e.g. ``[MAX 2 9 [MIN 4 7 ] 0 ]`` -> 9, with the
operators MAX, MIN, MED (median, rounded down like LRA's ``int(np.median)``) and SM (sum modulo 10) over
digits 0-9; the label (10 classes) is the value of the whole expression. Reading the answer needs the
whole hierarchy, so it tests long-range structure. LRA's sequences have 500-2000 tokens; ``min_len`` /
``max_len`` set the range here. Generation grows a random tree inside a token budget drawn uniformly from
the range and rejects the rare result outside it, so every split is a pure function of its seed.
"""

from __future__ import annotations

import random
import statistics

import torch
from torch import Tensor

from .sequences import PaddedSequenceSplits, SequenceDataset

OPERATORS = ("MAX", "MIN", "MED", "SM")
PAD, CLS = 0, 1  # token ids; digits are 2..11, then "[MAX" "[MIN" "[MED" "[SM", then "]"
VOCAB = ["<pad>", "<cls>", *[str(d) for d in range(10)], *[f"[{op}" for op in OPERATORS], "]"]
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}


def evaluate(tree) -> int:
    """Value of a tree: an int digit or (operator, [children])."""
    if isinstance(tree, int):
        return tree
    op, args = tree
    values = [evaluate(a) for a in args]
    if op == "MAX":
        return max(values)
    if op == "MIN":
        return min(values)
    if op == "MED":
        return int(statistics.median(values))
    return sum(values) % 10


def to_tokens(tree) -> list[str]:
    if isinstance(tree, int):
        return [str(tree)]
    op, args = tree
    return [f"[{op}"] + [t for a in args for t in to_tokens(a)] + ["]"]


def _grow(budget: int, depth: int, rng: random.Random, max_depth: int, max_args: int):
    """A tree of at most ``budget`` tokens: an operator spends 2 tokens and splits the rest among 2..max_args args."""
    if budget < 4 or depth >= max_depth:
        return rng.randrange(10)
    n = rng.randint(2, min(max_args, budget - 2))
    cuts = sorted(rng.sample(range(1, budget - 2), n - 1))
    shares = [b - a for a, b in zip([0, *cuts], [*cuts, budget - 2], strict=True)]
    return (rng.choice(OPERATORS), [_grow(s, depth + 1, rng, max_depth, max_args) for s in shares])


def make_listops(n: int, *, min_len: int, max_len: int, seed: int, max_depth: int = 10,
                 max_args: int = 10) -> tuple[list[list[str]], list[int]]:
    """``n`` expressions (as token lists) with min_len <= tokens <= max_len, and their values."""
    rng = random.Random(seed)
    expressions, labels = [], []
    while len(expressions) < n:
        tree = _grow(rng.randint(min_len, max_len), 0, rng, max_depth, max_args)
        tokens = to_tokens(tree)
        if min_len <= len(tokens) <= max_len:
            expressions.append(tokens)
            labels.append(evaluate(tree))
    return expressions, labels


def encode(tokens: list[str], add_cls: bool = True) -> Tensor:
    ids = [TOKEN_ID[t] for t in tokens]
    return torch.tensor(([CLS] if add_cls else []) + ids, dtype=torch.long)


class ListOps(PaddedSequenceSplits):
    """Batches ``(tokens (B, L), padding_mask (B, L), label (B,))``; a CLS token (id 1) leads every sequence.

    Splits are generated from ``seed``, ``seed + 1``, ``seed + 2`` (train, val, test), so they are fixed and
    disjoint in their random streams. ``vocab_size`` = 17, ``num_classes`` = 10.

    Args:
        min_len: fewest tokens of an expression (LRA: 500)
        max_len: most tokens of an expression (LRA: 2000)
        num_train: generated training expressions
        num_val: generated validation expressions
        num_test: generated test expressions
        max_depth: deepest nesting of operators
        max_args: most arguments of one operator
        seed: seed of the generated splits (train seed, val seed + 1, test seed + 2)
    """

    vocab_size = len(VOCAB)
    num_classes = 10

    def __init__(
        self,
        min_len: int = 500,
        max_len: int = 2000,
        num_train: int = 2000,
        num_val: int = 200,
        num_test: int = 500,
        max_depth: int = 10,
        max_args: int = 10,
        seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory)
        if not 1 <= min_len <= max_len:
            raise ValueError(f"ListOps: need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
        self.save_hyperparameters()
        self.datasets: dict[str, SequenceDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        for offset, (split, n) in enumerate({"train": h.num_train, "val": h.num_val, "test": h.num_test}.items()):
            if split not in self.datasets:
                exprs, labels = make_listops(n, min_len=h.min_len, max_len=h.max_len, seed=h.seed + offset,
                                             max_depth=h.max_depth, max_args=h.max_args)
                self.datasets[split] = SequenceDataset([encode(e) for e in exprs], torch.tensor(labels))
