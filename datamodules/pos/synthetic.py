"""A synthetic tagged corpus, the offline default (``SyntheticTreebank``).

A small probabilistic grammar with words that are NOUN or VERB (and "can": AUX or NOUN) depending on context,
sentence-initial capitals, numbers and proper names drawn fresh per split (unknown words).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from .conllu import Sentence
from .datamodule import PosDataModule

AMBIGUOUS = ("saw", "watch", "book", "fly", "plant", "can")
LEXICON: dict[str, tuple[str, ...]] = {
    "DET": ("the", "a", "this", "every", "my", "her"),
    "ADJ": ("old", "big", "red", "quick", "little", "new", "sharp", "green"),
    "NOUN": ("man", "dog", "park", "telescope", "bird", "table", "letter", "garden", "woman", "car",
             "saw", "watch", "book", "fly", "plant", "can"),
    "VERB": ("sees", "likes", "found", "bought", "carried", "painted", "saw", "watch", "book", "fly", "plant"),
    "PRON": ("she", "he", "they", "we", "you"),
    "ADP": ("in", "on", "with", "near", "under"),
    "ADV": ("quickly", "often", "never", "today", "slowly"),
    "AUX": ("will", "can", "did", "must"),
    "CCONJ": ("and", "but"),
    "PUNCT": (".", "!", "?"),
}
_SYLLABLES = ("ka", "lo", "mi", "ren", "to", "sa", "vi", "dor", "an", "el", "zu", "bek", "ri", "mon")


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def generate_sentence(rng: random.Random, names: Sequence[str]) -> list[tuple[str, str]]:
    """One sentence of (word, UPOS) pairs:  S -> CLAUSE (CCONJ CLAUSE)? PUNCT."""

    def word(tag: str) -> tuple[str, str]:
        return rng.choice(LEXICON[tag]), tag

    def noun_phrase() -> list[tuple[str, str]]:
        if rng.random() < 0.15:
            return [(str(rng.randint(2, 2000)), "NUM"), word("NOUN")]
        phrase = [word("DET")] + ([word("ADJ")] if rng.random() < 0.4 else []) + [word("NOUN")]
        if rng.random() < 0.2:
            phrase += [word("ADP")] + noun_phrase()
        return phrase

    def subject() -> list[tuple[str, str]]:
        r = rng.random()
        return [word("PRON")] if r < 0.3 else [(rng.choice(names), "PROPN")] if r < 0.5 else noun_phrase()

    def clause() -> list[tuple[str, str]]:
        verb = ([word("AUX")] if rng.random() < 0.35 else []) + [word("VERB")]
        rest = [word("ADV")] if rng.random() < 0.2 else noun_phrase()
        if rng.random() < 0.25:
            rest += [word("ADP")] + noun_phrase()
        return subject() + verb + rest

    words = clause()
    if rng.random() < 0.2:
        words += [word("CCONJ")] + clause()
    words.append(word("PUNCT"))
    words[0] = (words[0][0][:1].upper() + words[0][0][1:], words[0][1])
    return words


def make_synthetic(n: int, seed: int, num_names: int = 30) -> list[Sentence]:
    """``n`` sentences; each seed draws its own proper names, so other splits hold unknown names."""
    rng = random.Random(seed)
    names = [_name(rng) for _ in range(num_names)]
    sentences = []
    for i in range(n):
        pairs = generate_sentence(rng, names)
        words, tags = [w for w, _ in pairs], [t for _, t in pairs]
        sentences.append(Sentence(words, tags, None, f"synthetic(seed={seed})#{i}"))
    return sentences


class SyntheticTreebank(PosDataModule):
    """The offline default: sentences of a small probabilistic grammar with ambiguous words (UPOS only).

    Args:
        num_train: generated training sentences
        num_val: generated validation sentences
        num_test: generated test sentences
    """

    def __init__(self, num_train: int = 3000, num_val: int = 300, num_test: int = 500, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.tagset != "upos":
            raise ValueError(f"SyntheticTreebank has UPOS tags only; set data.tagset: upos (got {self.tagset!r})")
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}

    def load_split(self, split: str) -> list[Sentence]:
        return make_synthetic(self.sizes[split], seed=self.seed * 10 + ("train", "val", "test").index(split))
