"""Vocabularies: word (lower-cased, min-frequency), character, word-ending and tag vocabularies, and the word
shape features, built from the training split only (``PosVocab``). The tagger stores them in its checkpoints,
so test/predict never rebuild them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from ..batching import IGNORE
from .conllu import UNIVERSAL_FEATURES, Column, Sentence, Tagset, split_feats, universal_feats


class Vocab:
    """Strings <-> ids; id 0 is ``<pad>``, id 1 is ``<unk>`` (what every unseen string maps to)."""

    PAD, UNK = "<pad>", "<unk>"

    def __init__(self, items: Iterable[str]) -> None:
        self.itos = [self.PAD, self.UNK, *(s for s in items if s not in (self.PAD, self.UNK))]
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("Vocab items must be unique")

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, item: str) -> bool:
        return item in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocab({len(self)} entries: {self.itos[2:8]}...)"

    def ids(self, items: Iterable[str]) -> list[int]:
        return [self.stoi.get(s, 1) for s in items]


# Shape features of a word: robust cues for words the word vocabulary has never seen.
SHAPES = ("title", "upper", "mixed_case", "has_digit", "number", "hyphen", "no_alnum", "url_or_email")
_NUMBER = re.compile(r"[+-]?[\d.,:/]*\d[\d.,:/]*")


def word_shape(word: str) -> list[bool]:
    letters = [c for c in word if c.isalpha()]
    return [
        word[:1].isupper() and not word.isupper(),
        len(letters) > 1 and word.isupper(),
        any(c.isupper() for c in word[1:]) and any(c.islower() for c in word),
        any(c.isdigit() for c in word),
        bool(_NUMBER.fullmatch(word)),
        "-" in word,
        not any(c.isalnum() for c in word),
        "@" in word or "://" in word or word.lower().startswith("www."),
    ]


def lower_form(word: str) -> str:
    """The key of a word in the word vocabulary: ``str.lower`` without the combining dot above (U+0307) that
    lowercasing a capital dotted I leaves ("İlk".lower() is "i̇lk", three letters and a mark), so that a Turkish
    or Azeri word capitalised at the start of a sentence is the word seen in lower case elsewhere."""
    return word.lower().replace("i\u0307", "i")


def word_suffixes(word: str, max_suffix: int) -> list[str]:
    """The endings of 1..``max_suffix`` characters that are shorter than ``word`` (so never the word itself)."""
    return [word[-k:] for k in range(1, min(max_suffix, len(word) - 1) + 1)]


def word_stems(word: str, stems: Container[str], max_stems: int, min_chars: int = 2) -> list[str]:
    """The ``max_stems`` longest entries of ``stems`` that ``word`` begins with (the word itself included),
    longest first: Turkish "evlerimizde" -> ["evler", "ev"] when both are training lemmas."""
    found = []
    for k in range(len(word), min_chars - 1, -1):
        if len(found) == max_stems:
            break
        if word[:k] in stems:
            found.append(word[:k])
    return found


BOW, EOW = "<w>", "</w>"  # begin / end of word markers around each word's characters
ABSENT = "_"  # the value of a feature a word does not have (factored FEATS)


@dataclass
class PosVocab:
    """Everything a tagger needs to turn sentences into ids and ids into tags; built from training data only.

    ``words``: lower-cased forms seen at least ``min_freq`` times; ``known``: every lower-cased training
    form (a word outside it is "unknown" in the known/unknown accuracy); ``chars``: characters of the
    training forms (case kept), plus the word markers; ``tags``: the tags of the training data (a gold
    tag outside it maps to ``<unk>``, which the tagger never predicts, so it counts as an error).
    ``max_word_chars``: longer words keep their first and last ``max_word_chars // 2`` characters.
    ``suffixes``: endings of 1..``max_suffix`` characters of lower-cased training forms longer than the ending,
    kept when at least ``min_suffix_words`` distinct forms share them ("-ing", "-ly", "-ness"): an unseen
    word gets an id for each ending it shares with training words, which tells its class more often than
    not (Brants 2000; Collobert et al. 2011). ``max_suffix`` 0: none (vocabularies saved before they existed).
    ``aux_tags``: the tags of a second column (``aux_tagset``, e.g. XPOS beside UPOS) for an auxiliary loss.
    ``columns``: the values of the other predicted columns (``xpos``, ``feats``: each FEATS string is one class,
    ``_`` included), in the order the tagger's heads read them; a column the training treebank leaves ``_``
    everywhere has no entry (it stays ``_`` in the output). ``ufeats``: the universal-feature strings of the
    training FEATS (``conllu.universal_feats``), the classes UFeats accuracy is counted in, as the scorer does.
    ``word_counts``: how often each of ``words`` (``itos[2:]``) occurs in training, for frequency-scaled word
    dropout; empty in vocabularies saved before they were kept.
    ``stems``: the lower-cased training lemmas (LEMMA column) of two or more characters; ``max_stems``: how many
    of them a word is looked up by, the longest it begins with first (``word_stems``). An unseen inflection of a
    seen lemma (Turkish "evlerimizde", lemma "ev") gets that lemma's id, which says its class far more often
    than its spelling alone: the largest share of unseen words in an agglutinative language. 0: none (no
    LEMMA column, or vocabularies saved before they existed).
    """

    words: Vocab
    chars: Vocab
    tags: Vocab
    tagset: str = "upos"
    known: frozenset[str] = field(default_factory=frozenset)
    max_word_chars: int = 24
    suffixes: Vocab = field(default_factory=lambda: Vocab([]))
    max_suffix: int = 0
    aux_tags: Vocab = field(default_factory=lambda: Vocab([]))
    aux_tagset: str | None = None
    columns: dict[str, Vocab] = field(default_factory=dict)
    ufeats: Vocab = field(default_factory=lambda: Vocab([]))
    word_counts: tuple[int, ...] = ()
    stems: Vocab = field(default_factory=lambda: Vocab([]))
    max_stems: int = 0

    @cached_property
    def features(self) -> dict[str, Vocab]:
        """Per FEATS feature name of the training data, its values after ``ABSENT`` (id 2): the classes of a
        factored FEATS head. Derived from the whole strings in ``columns["feats"]``, so nothing more is stored."""
        values: dict[str, set[str]] = {}
        for string in self.columns["feats"].itos[2:] if "feats" in self.columns else ():
            for name, value in split_feats(string).items():
                values.setdefault(name, set()).add(value)
        return {name: Vocab([ABSENT, *sorted(values[name])]) for name in sorted(values, key=str.lower)}

    @classmethod
    def build(cls, sentences: Sequence[Sentence], tagset: Tagset = "upos", min_freq: int = 2,
              max_word_chars: int = 24, max_suffix: int = 4, min_suffix_words: int = 3,
              aux_tagset: Tagset | None = None, columns: Sequence[Column] = (), max_stems: int = 0) -> PosVocab:
        if not sentences:
            raise ValueError("cannot build a vocabulary from no training sentences")
        aux = Counter(t for s in sentences for t in (s.column(aux_tagset) or ()) if t) if aux_tagset else Counter()
        if aux_tagset and not aux:
            raise ValueError(f"data.aux_tagset={aux_tagset}: the training sentences have no {aux_tagset} column "
                             "values (CoNLL-U files only; '_' everywhere?)")
        counts = Counter(lower_form(w) for s in sentences for w in s.words)
        lemmas: list[str] = []
        if max_stems:  # lower-cased first: a dotted capital I lowers to one letter, too short for a stem
            lowered = {lower_form(lemma) for s in sentences for lemma in (s.column("lemma") or ()) if lemma}
            lemmas = sorted(x for x in lowered if len(x) >= 2)
        if max_stems and not lemmas:
            rank_zero_warn("data.max_stems > 0 but the training sentences have no LEMMA column values ('_' "
                           "everywhere, or not CoNLL-U): the tagger runs without lemma stems")
        endings = Counter(e for w in counts for e in word_suffixes(w, max_suffix))
        chars = Counter(c for s in sentences for w in s.words for c in w)
        tags = Counter(t for s in sentences for t in (s.tags or ()))
        if not tags:
            raise ValueError("the training sentences carry no tags")
        column_vocabs = {}
        for name in columns:
            values = Counter(v for s in sentences for v in (s.values(name) or ()) if name == "feats" or v != "_")
            if not values or set(values) == {"_"}:
                rank_zero_warn(f"data.columns: the training treebank leaves {name} `_` on every word: no {name} "
                               f"head, the column stays `_` in predictions")
                continue
            column_vocabs[name] = Vocab(sorted(values))
        projected = sorted({universal_feats(v) for v in column_vocabs["feats"].itos[2:]}) if "feats" in \
            column_vocabs else []
        kept = [(w, n) for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_freq]
        return cls(
            words=Vocab(w for w, _ in kept),
            word_counts=tuple(n for _, n in kept),
            chars=Vocab([BOW, EOW, *sorted(chars)]),
            tags=Vocab(sorted(tags)),
            tagset=tagset,
            known=frozenset(counts),
            max_word_chars=max_word_chars,
            suffixes=Vocab(sorted(e for e, n in endings.items() if n >= min_suffix_words)),
            max_suffix=max_suffix,
            aux_tags=Vocab(sorted(aux)),
            aux_tagset=aux_tagset,
            columns=column_vocabs,
            ufeats=Vocab(projected),
            stems=Vocab(lemmas),
            max_stems=max_stems if lemmas else 0,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and strings: safe for ``torch.load(weights_only=True)`` inside a checkpoint."""
        return {"words": self.words.itos[2:], "chars": self.chars.itos[2:], "tags": self.tags.itos[2:],
                "tagset": self.tagset, "known": sorted(self.known), "max_word_chars": self.max_word_chars,
                "suffixes": self.suffixes.itos[2:], "max_suffix": self.max_suffix,
                "aux_tags": self.aux_tags.itos[2:], "aux_tagset": self.aux_tagset,
                "columns": {name: vocab.itos[2:] for name, vocab in self.columns.items()},
                "ufeats": self.ufeats.itos[2:], "word_counts": list(self.word_counts),
                "stems": self.stems.itos[2:], "max_stems": self.max_stems}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PosVocab:
        words, suffixes = Vocab(d["words"]), Vocab(d.get("suffixes", []))
        known = set(d["known"])
        # A vocabulary saved before ``lower_form`` keyed "İlk" as str.lower's "i̇lk": let "ilk" find that entry.
        for vocab in (words, suffixes):
            for key in vocab.itos:
                vocab.stoi.setdefault(lower_form(key), vocab.stoi[key])
        known |= {lower_form(w) for w in known}
        return cls(words, Vocab(d["chars"]), Vocab(d["tags"]), d["tagset"], frozenset(known),
                   d["max_word_chars"], suffixes, d.get("max_suffix", 0),
                   Vocab(d.get("aux_tags", [])), d.get("aux_tagset"),
                   {name: Vocab(items) for name, items in d.get("columns", {}).items()}, Vocab(d.get("ufeats", [])),
                   tuple(d.get("word_counts", ())), Vocab(d.get("stems", [])), d.get("max_stems", 0))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PosVocab) and self.to_dict() == other.to_dict()

    @property
    def tag_names(self) -> list[str]:
        return self.tags.itos

    def char_ids(self, word: str) -> list[int]:
        half = self.max_word_chars // 2
        chars = word if len(word) <= self.max_word_chars else word[:half] + word[-half:]
        return [self.chars.stoi[BOW], *self.chars.ids(chars), self.chars.stoi[EOW]]

    def suffix_ids(self, word: str) -> list[int]:
        """Ids of the word's endings, shortest first, 0 where the word is too short for one (``max_suffix``,)."""
        ids = self.suffixes.ids(word_suffixes(word, self.max_suffix))
        return ids + [0] * (self.max_suffix - len(ids))

    @cached_property
    def _stem_set(self) -> frozenset[str]:
        """The lemmas a word is looked up by: ``stems`` without ``<pad>`` / ``<unk>`` (a word "<unk>x" has none)."""
        return frozenset(self.stems.itos[2:])

    def stem_ids(self, word: str) -> list[int]:
        """Ids of the training lemmas the (lower-cased) word begins with, longest first, 0-padded to
        ``max_stems``."""
        ids = [self.stems.stoi[s] for s in word_stems(word, self._stem_set, self.max_stems)]
        return ids + [0] * (self.max_stems - len(ids))

    def ufeats_map(self) -> Tensor:
        """(len(columns["feats"]),) the ``ufeats`` id of every FEATS class (``IGNORE`` for <pad>/<unk>)."""
        feats = self.columns["feats"]
        return torch.tensor([IGNORE, IGNORE, *(self.ufeats.stoi[universal_feats(v)] for v in feats.itos[2:])])

    def encode_columns(self, values: dict[str, Sequence[str] | None], length: int) -> dict[str, Tensor]:
        """columns (L, K): each predicted column's class ids in ``columns`` order (``IGNORE`` where the word
        has no value or ``_`` outside FEATS; an unseen value is <unk>, an error), ufeats (L,): the gold
        universal-feature ids, features (L, F): the value id of every feature of ``features`` (``ABSENT``'s
        where the word lacks it, <unk> for a value never seen in training; on every universal feature when the
        word has a universal feature never seen in training, so such a word counts as an error)."""
        out = torch.full((length, len(self.columns)), IGNORE, dtype=torch.long)
        for k, (name, vocab) in enumerate(self.columns.items()):
            given = values.get(name)
            if given is not None:
                out[:, k] = torch.tensor([IGNORE if v == "_" and name != "feats" else vocab.stoi.get(v, 1)
                                          for v in given])
        feats = values.get("feats")
        ufeats = torch.full((length,), IGNORE, dtype=torch.long)
        names = self.features
        per_feature = torch.full((length, len(names)), IGNORE, dtype=torch.long)
        if feats is not None and "feats" in self.columns:
            ufeats = torch.tensor([self.ufeats.stoi.get(universal_feats(v), 1) for v in feats])
            for i, v in enumerate(feats):
                given = split_feats(v)
                per_feature[i] = torch.tensor([vocab.stoi.get(given.get(name, ABSENT), 1)
                                               for name, vocab in names.items()], dtype=torch.long)
                if any(n in UNIVERSAL_FEATURES and n not in names for n in given):
                    per_feature[i, self.universal_feature_mask()] = 1  # a feature never seen in training: an error
        return {"columns": out, "ufeats": ufeats, "features": per_feature}

    def universal_feature_mask(self) -> Tensor:
        """(len(features),) True for the universal features, the ones UFeats accuracy compares."""
        return torch.tensor([name in UNIVERSAL_FEATURES for name in self.features], dtype=torch.bool)

    def encode(self, words: Sequence[str], tags: Sequence[str] | None = None,
               aux_tags: Sequence[str | None] | None = None,
               columns: dict[str, Sequence[str] | None] | None = None) -> dict[str, Tensor]:
        """One sentence as tensors: words (L,), chars (L, C), suffixes (L, K), stems (L, M), shapes (L, S), known (L,),
        tags (L,), aux_tags (L,) (``IGNORE`` where a word has no tag in the second column or none is given), and the
        other predicted columns (``encode_columns``; all ``IGNORE`` without gold values)."""
        chars = [self.char_ids(w) for w in words]
        width = max(len(c) for c in chars)
        lowered = [lower_form(w) for w in words]
        item = {
            "words": torch.tensor(self.words.ids(lowered)),
            "chars": torch.tensor([c + [0] * (width - len(c)) for c in chars]),
            "suffixes": torch.tensor([self.suffix_ids(w) for w in lowered], dtype=torch.long).view(len(words), -1),
            "stems": torch.tensor([self.stem_ids(w) for w in lowered], dtype=torch.long).view(len(words), -1),
            "shapes": torch.tensor([word_shape(w) for w in words]),
            "known": torch.tensor([w in self.known for w in lowered]),
        }
        item["tags"] = torch.tensor(self.tags.ids(tags)) if tags is not None else torch.full((len(words),), IGNORE)
        item["aux_tags"] = torch.tensor([IGNORE if t is None else self.aux_tags.stoi.get(t, 1)
                                         for t in (aux_tags or [None] * len(words))], dtype=torch.long)
        item.update(self.encode_columns(columns or {}, len(words)))
        return item
