"""Part-of-speech tagging data: CoNLL-U treebanks (Universal Dependencies) or a synthetic tagged corpus.

* ``read_conllu``: CoNLL-U through the ``conllu`` package. Multiword-token ranges (``1-2``) and empty
  nodes (``1.1``) are kept for writing the file back but are not tagged; every malformed line raises a
  ``ConlluError`` naming ``file:line`` and what was expected.
* ``read_text``: raw text, one sentence per line, split at whitespace and punctuation.
* ``PosVocab``: word (lower-cased, min-frequency), character and tag vocabularies, built from the
  training split only. The tagger stores it in its checkpoints, so test/predict never rebuild it.
* ``UDTreebank`` / ``SyntheticTreebank``: the datamodules. Batches are length-bucketed and padded,
  with a padding mask; sentences are never truncated (the tagger windows long ones).
"""

from __future__ import annotations

import math
import random
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import conllu
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from .base import AttnLabDataModule

Tagset = Literal["upos", "xpos"]
TAGSETS = ("upos", "xpos")
FIELDS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
IGNORE = -100  # target of padding positions (cross_entropy's default ignore_index)

# The columns the tagger does not use are kept as the raw strings, so a CoNLL-U file is written back as read.
_RAW_FIELDS = {name: (lambda line, i: line[i]) for name in ("lemma", "feats", "head", "deprel", "deps", "misc")}
_ID = re.compile(r"(\d+)|(\d+)-(\d+)|(\d+)\.(\d+)")


class ConlluError(ValueError):
    """A malformed CoNLL-U line: the message starts with ``file:line``."""


@dataclass
class Sentence:
    """The words of one sentence (multiword ranges and empty nodes left out) and their gold tags.

    ``tokens`` is the whole CoNLL-U sentence (comments, ranges, empty nodes), filled in when predictions
    are written; ``where`` is ``file:line`` of its first line, for messages.
    """

    words: list[str]
    tags: list[str] | None = None
    tokens: conllu.TokenList | None = None
    where: str = ""

    def column(self, name: str) -> list[str | None] | None:
        """Another column of the words (``xpos`` beside ``upos`` tags), None per blank value; None without tokens."""
        if self.tokens is None:
            return None
        return [None if t[name] in (None, "_", "") else str(t[name]) for t in self.tokens if isinstance(t["id"], int)]


# ----------------------------------------------------------------------------------------------- CoNLL-U
def parse_conllu(text: str, name: str = "<string>", tagset: Tagset = "upos", require_tags: bool = True
                 ) -> list[Sentence]:
    """Sentences of CoNLL-U ``text``; ``name`` is the file name used in error messages.

    ``require_tags``: every word must have a tag in the ``tagset`` column (training and evaluation data);
    off for files that are only to be tagged.
    """
    if tagset not in TAGSETS:
        raise ValueError(f"tagset must be one of {TAGSETS}, got {tagset!r}")
    column = FIELDS.index(tagset)
    sentences: list[Sentence] = []
    block: list[str] = []
    start = 0  # line number of the block's first line
    tokens_seen = False
    words: list[str] = []
    tags: list[str] = []
    expected_id = 1

    def fail(lineno: int, message: str) -> None:
        raise ConlluError(f"{name}:{lineno}: {message}")

    def finish() -> None:
        nonlocal block, words, tags, tokens_seen, expected_id
        if words:
            try:
                tokens = conllu.parse_token_and_metadata("\n".join(block), fields=FIELDS, field_parsers=_RAW_FIELDS)
            except conllu.exceptions.ParseException as err:  # our checks should have caught it first
                raise ConlluError(f"{name}:{start}: {err}") from err
            sentences.append(Sentence(words, tags if require_tags else None, tokens, f"{name}:{start}"))
        elif tokens_seen:
            fail(start, "sentence has no words (only multiword ranges or empty nodes)")
        block, words, tags, tokens_seen, expected_id = [], [], [], False, 1

    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for lineno, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            finish()
            continue
        if not block:
            start = lineno
        if line.startswith("#"):
            if tokens_seen:
                fail(lineno, "comment line inside a sentence: comments go before its first token line "
                             "(is a blank line missing between two sentences?)")
            block.append(line)
            continue
        columns = line.split("\t")
        if len(columns) != 10:
            fail(lineno, f"expected 10 tab-separated columns (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC), "
                         f"found {len(columns)}: {line[:80]!r}")
        tokens_seen = True
        block.append(line)
        match = _ID.fullmatch(columns[0])
        if match is None:
            fail(lineno, f"ID must be a word index (3), a multiword range (3-4) or an empty node (3.1), "
                         f"got {columns[0]!r}")
        if match.group(1) is None:  # range or empty node: not tagged
            continue
        if int(columns[0]) != expected_id:
            fail(lineno, f"expected word ID {expected_id} (IDs count 1, 2, 3, ... within a sentence), "
                         f"got {columns[0]}")
        expected_id += 1
        form, tag = columns[1], columns[column]
        if not form.strip():
            fail(lineno, "FORM (column 2) is empty")
        if require_tags and tag in ("", "_"):
            fail(lineno, f"{tagset.upper()} (column {column + 1}) of word {form!r} is {tag!r}: "
                         f"tagset={tagset} needs a tag on every word")
        words.append(form)
        tags.append(tag)
    finish()
    return sentences


_CACHE: dict[tuple[str, float, int, str, bool], list[Sentence]] = {}


def read_conllu(path: str | Path, tagset: Tagset = "upos", require_tags: bool = True) -> list[Sentence]:
    """``parse_conllu`` of a file (memoised per process on path, mtime and size: the tests read files twice)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CoNLL-U file {path} does not exist")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime, stat.st_size, tagset, require_tags)
    if key not in _CACHE:
        _CACHE[key] = parse_conllu(path.read_text(encoding="utf-8"), str(path), tagset, require_tags)
    return _CACHE[key]


# ------------------------------------------------------------------------------------------------ raw text
_TOKEN = re.compile(r"\w+(?:[-'’.]\w+)*|[^\w\s]")


def tokenize(line: str) -> list[re.Match]:
    """Whitespace/punctuation tokenisation: words (with inner hyphens, apostrophes, dots) and single symbols."""
    return list(_TOKEN.finditer(line))


def text_sentence(line: str, sent_id: str) -> conllu.TokenList:
    """One line of raw text as an untagged CoNLL-U sentence (``SpaceAfter=No`` where no space followed)."""
    matches = tokenize(line)
    tokens = []
    for i, m in enumerate(matches):
        glued = i + 1 < len(matches) and matches[i + 1].start() == m.end()
        values = [i + 1, m.group(), "_", "_", "_", "_", "_", "_", "_", "SpaceAfter=No" if glued else "_"]
        tokens.append(dict(zip(FIELDS, values, strict=True)))
    return conllu.TokenList(tokens, conllu.models.Metadata(sent_id=sent_id, text=line.strip()))


def read_text(path: str | Path) -> list[Sentence]:
    """Raw text, one sentence per line (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text file {path} does not exist")
    sentences = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        tokens = text_sentence(line, f"{path.stem}-{lineno}")
        sentences.append(Sentence([t["form"] for t in tokens], None, tokens, f"{path}:{lineno}"))
    return sentences


def fill_tags(sentence: Sentence, tags: Sequence[str], tagset: Tagset) -> conllu.TokenList:
    """The sentence's CoNLL-U tokens with the ``tagset`` column of its words set to ``tags``."""
    tokens = sentence.tokens if sentence.tokens is not None else conllu.TokenList(
        [dict(zip(FIELDS, [i + 1, w, *["_"] * 8], strict=True)) for i, w in enumerate(sentence.words)])
    words = [t for t in tokens if isinstance(t["id"], int)]
    if len(words) != len(tags):
        raise ValueError(f"{sentence.where}: {len(words)} words but {len(tags)} predicted tags")
    for token, tag in zip(words, tags, strict=True):
        token[tagset] = tag
    return tokens


# ------------------------------------------------------------------------------------------- vocabularies
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


def word_suffixes(word: str, max_suffix: int) -> list[str]:
    """The endings of 1..``max_suffix`` characters that are shorter than ``word`` (so never the word itself)."""
    return [word[-k:] for k in range(1, min(max_suffix, len(word) - 1) + 1)]


BOW, EOW = "<w>", "</w>"  # begin / end of word markers around each word's characters


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

    @classmethod
    def build(cls, sentences: Sequence[Sentence], tagset: Tagset = "upos", min_freq: int = 2,
              max_word_chars: int = 24, max_suffix: int = 4, min_suffix_words: int = 3,
              aux_tagset: Tagset | None = None) -> PosVocab:
        if not sentences:
            raise ValueError("cannot build a vocabulary from no training sentences")
        aux = Counter(t for s in sentences for t in (s.column(aux_tagset) or ()) if t) if aux_tagset else Counter()
        if aux_tagset and not aux:
            raise ValueError(f"data.aux_tagset={aux_tagset}: the training sentences have no {aux_tagset} column "
                             "values (CoNLL-U files only; '_' everywhere?)")
        counts = Counter(w.lower() for s in sentences for w in s.words)
        endings = Counter(e for w in counts for e in word_suffixes(w, max_suffix))
        chars = Counter(c for s in sentences for w in s.words for c in w)
        tags = Counter(t for s in sentences for t in (s.tags or ()))
        if not tags:
            raise ValueError("the training sentences carry no tags")
        return cls(
            words=Vocab(w for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_freq),
            chars=Vocab([BOW, EOW, *sorted(chars)]),
            tags=Vocab(sorted(tags)),
            tagset=tagset,
            known=frozenset(counts),
            max_word_chars=max_word_chars,
            suffixes=Vocab(sorted(e for e, n in endings.items() if n >= min_suffix_words)),
            max_suffix=max_suffix,
            aux_tags=Vocab(sorted(aux)),
            aux_tagset=aux_tagset,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and strings: safe for ``torch.load(weights_only=True)`` inside a checkpoint."""
        return {"words": self.words.itos[2:], "chars": self.chars.itos[2:], "tags": self.tags.itos[2:],
                "tagset": self.tagset, "known": sorted(self.known), "max_word_chars": self.max_word_chars,
                "suffixes": self.suffixes.itos[2:], "max_suffix": self.max_suffix,
                "aux_tags": self.aux_tags.itos[2:], "aux_tagset": self.aux_tagset}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PosVocab:
        return cls(Vocab(d["words"]), Vocab(d["chars"]), Vocab(d["tags"]), d["tagset"], frozenset(d["known"]),
                   d["max_word_chars"], Vocab(d.get("suffixes", [])), d.get("max_suffix", 0),
                   Vocab(d.get("aux_tags", [])), d.get("aux_tagset"))

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

    def encode(self, words: Sequence[str], tags: Sequence[str] | None = None,
               aux_tags: Sequence[str | None] | None = None) -> dict[str, Tensor]:
        """One sentence as tensors: words (L,), chars (L, C), suffixes (L, K), shapes (L, S), known (L,), tags (L,),
        aux_tags (L,) (``IGNORE`` where a word has no tag in the second column or none is given)."""
        chars = [self.char_ids(w) for w in words]
        width = max(len(c) for c in chars)
        lowered = [w.lower() for w in words]
        item = {
            "words": torch.tensor(self.words.ids(lowered)),
            "chars": torch.tensor([c + [0] * (width - len(c)) for c in chars]),
            "suffixes": torch.tensor([self.suffix_ids(w) for w in lowered], dtype=torch.long).view(len(words), -1),
            "shapes": torch.tensor([word_shape(w) for w in words]),
            "known": torch.tensor([w in self.known for w in lowered]),
        }
        item["tags"] = torch.tensor(self.tags.ids(tags)) if tags is not None else torch.full((len(words),), IGNORE)
        item["aux_tags"] = torch.tensor([IGNORE if t is None else self.aux_tags.stoi.get(t, 1)
                                         for t in (aux_tags or [None] * len(words))], dtype=torch.long)
        return item


def collate(items: list[tuple[int, dict[str, Tensor]]]) -> dict[str, Tensor]:
    """Pad a list of ``(index, encoded sentence)`` into a batch; ``mask`` is True on real words."""
    indices, sentences = zip(*items, strict=True)
    lengths = torch.tensor([len(s["words"]) for s in sentences])
    batch, length = len(sentences), int(lengths.max())
    width = max(s["chars"].size(1) for s in sentences)
    out = {
        "words": torch.zeros(batch, length, dtype=torch.long),
        "chars": torch.zeros(batch, length, width, dtype=torch.long),
        "suffixes": torch.zeros(batch, length, sentences[0]["suffixes"].size(1), dtype=torch.long),
        "shapes": torch.zeros(batch, length, len(SHAPES), dtype=torch.bool),
        "known": torch.zeros(batch, length, dtype=torch.bool),
        "tags": torch.full((batch, length), IGNORE, dtype=torch.long),
        "aux_tags": torch.full((batch, length), IGNORE, dtype=torch.long),
    }
    for i, s in enumerate(sentences):
        n, c = len(s["words"]), s["chars"].size(1)
        for key in ("words", "suffixes", "shapes", "known", "tags", "aux_tags"):
            out[key][i, :n] = s[key]
        out["chars"][i, :n, :c] = s["chars"]
    out["mask"] = torch.arange(length)[None, :] < lengths[:, None]
    out["index"] = torch.tensor(indices)
    return out


class EncodedSentences(Dataset):
    def __init__(self, sentences: Sequence[Sentence], vocab: PosVocab) -> None:
        aux = vocab.aux_tagset
        self.items = [vocab.encode(s.words, s.tags, s.column(aux) if aux else None) for s in sentences]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, dict[str, Tensor]]:
        return i, self.items[i]


# Lightning cannot see that the sampler below yields every index when predicting; it does.
warnings.filterwarnings("ignore", message=r".*custom batch sampler `BucketBatchSampler` for prediction")


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of sentences of similar length (little padding).

    Training (``shuffle``): each epoch draws a random order, sorts pools of ``50 * batch_size`` sentences
    by length, cuts them into batches and shuffles the batches. Evaluation: sorted by length, in order.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool, seed: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths, self.batch_size, self.shuffle, self.seed = list(lengths), batch_size, shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = list(range(len(self.lengths)))
        if not self.shuffle:
            order.sort(key=lambda i: self.lengths[i])
            yield from (order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size))
            return
        rng = random.Random(self.seed * 100_003 + self.epoch)
        self.epoch += 1  # a new order next time even if nobody calls set_epoch
        rng.shuffle(order)
        pool = 50 * self.batch_size
        batches = []
        for p in range(0, len(order), pool):
            chunk = sorted(order[p:p + pool], key=lambda i: self.lengths[i])
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        rng.shuffle(batches)
        yield from batches


# ------------------------------------------------------------------------------------------- datamodules
class PosDataModule(AttnLabDataModule):
    """Shared by the treebank and the synthetic corpus: vocabulary, bucketed batches, prediction input/output.

    ``setup("fit")`` builds ``self.vocab`` from the training split (unless it already holds one, e.g. the
    tagger's, when fine-tuning); test/predict never build it: the tagger hands over the one in its
    checkpoint before the dataloaders are made.

    ``predict_path``: raw text (one sentence per line) or CoNLL-U, chosen by ``predict_format`` ("auto":
    ``.conllu`` suffix means CoNLL-U); ``predict_output``: the CoNLL-U file written with the tags filled in
    (default: ``<input stem>.tagged.conllu`` in the working directory).
    """

    def __init__(
        self,
        tagset: Tagset = "upos",
        min_word_freq: int = 2,
        max_word_chars: int = 24,
        max_suffix: int = 4,
        min_suffix_words: int = 3,
        aux_tagset: Tagset | None = None,
        predict_path: str | None = None,
        predict_format: Literal["auto", "conllu", "text"] = "auto",
        predict_output: str | None = None,
        seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory)
        if tagset not in TAGSETS:
            raise ValueError(f"data.tagset must be one of {TAGSETS}, got {tagset!r}")
        if min_word_freq < 1:
            raise ValueError(f"data.min_word_freq must be >= 1, got {min_word_freq}")
        if max_word_chars < 2:
            raise ValueError(f"data.max_word_chars must be >= 2, got {max_word_chars}")
        if max_suffix < 0 or min_suffix_words < 1:
            raise ValueError(f"data.max_suffix must be >= 0 and data.min_suffix_words >= 1, got {max_suffix} and "
                             f"{min_suffix_words}")
        self.tagset, self.min_word_freq, self.max_word_chars = tagset, min_word_freq, max_word_chars
        if aux_tagset is not None and (aux_tagset not in TAGSETS or aux_tagset == tagset):
            raise ValueError(f"data.aux_tagset must be null or the other one of {TAGSETS} than data.tagset "
                             f"({tagset}), got {aux_tagset!r}")
        self.max_suffix, self.min_suffix_words, self.aux_tagset = max_suffix, min_suffix_words, aux_tagset
        self.predict_path, self.predict_format, self.predict_output = predict_path, predict_format, predict_output
        self.seed = seed
        self.vocab: PosVocab | None = None
        self.sentences: dict[str, list[Sentence]] = {}
        self._encoded: dict[str, tuple[PosVocab, EncodedSentences]] = {}

    # subclasses: the gold-tagged sentences of "train", "val" or "test"
    def load_split(self, split: str) -> list[Sentence]:
        raise NotImplementedError

    def _split(self, split: str) -> list[Sentence]:
        if split not in self.sentences:
            self.sentences[split] = self.load_predict() if split == "predict" else self.load_split(split)
        return self.sentences[split]

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}
        for split in splits.get(stage or "fit", ()):
            self._split(split)
        if stage in (None, "fit") and self.vocab is None:
            self.vocab = self.build_vocab()

    def build_vocab(self) -> PosVocab:
        train = self._split("train")
        vocab = PosVocab.build(train, self.tagset, self.min_word_freq, self.max_word_chars, self.max_suffix,
                               self.min_suffix_words, self.aux_tagset)
        rank_zero_info(f"vocabulary from {len(train)} training sentences: {len(vocab.words)} words "
                       f"(min_freq={self.min_word_freq}), {len(vocab.chars)} characters, "
                       f"{len(vocab.suffixes) - 2} endings of up to {self.max_suffix} characters, "
                       f"{len(vocab.tags) - 2} {self.tagset} tags"
                       + (f", {len(vocab.aux_tags) - 2} {self.aux_tagset} tags" if self.aux_tagset else ""))
        return vocab

    def dataset(self, split: str) -> EncodedSentences:
        if self.vocab is None:
            raise RuntimeError(f"{type(self).__name__}: no vocabulary to encode the {split} data with. "
                               "test/predict take it from the tagger's checkpoint: pass --ckpt_path "
                               "(best, last or a file) of a tagger trained with `attnlab fit`")
        cached = self._encoded.get(split)
        if cached is None or cached[0] is not self.vocab:
            sentences = self._split(split)
            if not sentences:
                raise ValueError(f"{type(self).__name__}: the {split} split has no sentences")
            if split != "predict":
                self._warn_unseen_tags(split, sentences)
            cached = self._encoded[split] = (self.vocab, EncodedSentences(sentences, self.vocab))
        return cached[1]

    def _warn_unseen_tags(self, split: str, sentences: list[Sentence]) -> None:
        unseen = Counter(t for s in sentences for t in (s.tags or ()) if t not in self.vocab.tags)
        if unseen:
            rank_zero_warn(f"{split}: {sum(unseen.values())} words have tags the tagger was not trained on "
                           f"({dict(unseen.most_common(5))}); they count as errors")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        data = self.dataset(split)
        lengths = [len(item["words"]) for item in data.items]
        sampler = BucketBatchSampler(lengths, self.batch_size, shuffle=shuffle, seed=self.seed)
        return self.loader(data, collate_fn=collate, batch_sampler=sampler)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)

    # ------------------------------------------------------------------ prediction input / output
    def load_predict(self) -> list[Sentence]:
        if self.predict_path is None:
            raise ValueError(f"{type(self).__name__}: set data.predict_path (a raw text file, one sentence per "
                             "line, or a .conllu file) to run predict")
        path = Path(self.predict_path)
        fmt = self.predict_format
        if fmt == "auto":
            fmt = "conllu" if path.suffix.lower() in (".conllu", ".conll") else "text"
        if fmt not in ("conllu", "text"):
            raise ValueError(f"data.predict_format must be 'auto', 'conllu' or 'text', got {fmt!r}")
        if fmt == "conllu":
            return read_conllu(path, self.tagset, require_tags=False)
        return read_text(path)

    def output_path(self) -> Path:
        if self.predict_output:
            return Path(self.predict_output)
        return Path(f"{Path(self.predict_path or 'predictions').stem}.tagged.conllu")

    def render_predictions(self, tags_by_index: dict[int, list[str]], tagset: str | None = None) -> str:
        """The predict input as CoNLL-U text, the ``tagset`` column of every word filled in."""
        sentences = self._split("predict")
        missing = [i for i in range(len(sentences)) if i not in tags_by_index]
        if missing:
            raise ValueError(f"no predictions for {len(missing)} of {len(sentences)} sentences (first: "
                             f"{sentences[missing[0]].where})")
        tagset = tagset or self.tagset
        return "".join(fill_tags(s, tags_by_index[i], tagset).serialize() for i, s in enumerate(sentences))


class UDTreebank(PosDataModule):
    """A Universal Dependencies treebank in CoNLL-U: ``train``/``dev``/``test`` paths, tags from ``tagset``."""

    def __init__(self, train: str | None = None, dev: str | None = None, test: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.paths = {"train": train, "val": dev, "test": test}

    def load_split(self, split: str) -> list[Sentence]:
        path = self.paths[split]
        if path is None:
            key = {"train": "train", "val": "dev", "test": "test"}[split]
            raise ValueError(f"UDTreebank: set data.{key} (a CoNLL-U file) to use the {split} split")
        return read_conllu(path, self.tagset)


# -------------------------------------------------------------------------------- synthetic tagged corpus
# A small probabilistic grammar with words that are NOUN or VERB (and "can": AUX or NOUN) depending on
# context, sentence-initial capitals, numbers and proper names drawn fresh per split (unknown words).
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
    """The offline default: sentences of a small probabilistic grammar with ambiguous words (UPOS only)."""

    def __init__(self, num_train: int = 3000, num_val: int = 300, num_test: int = 500, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.tagset != "upos":
            raise ValueError(f"SyntheticTreebank has UPOS tags only; set data.tagset: upos (got {self.tagset!r})")
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}

    def load_split(self, split: str) -> list[Sentence]:
        return make_synthetic(self.sizes[split], seed=self.seed * 10 + ("train", "val", "test").index(split))
