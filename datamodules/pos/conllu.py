"""CoNLL-U reading and validation (Universal Dependencies), and writing predicted tags back.

``read_conllu`` / ``parse_conllu``: CoNLL-U through the ``conllu`` package. Multiword-token ranges (``1-2``) and
empty nodes (``1.1``) are kept for writing the file back but are not tagged; every malformed line raises a
``ConlluError`` naming ``file:line`` and what was expected. ``fill_tags``: a sentence's tokens with predicted
tags in a tag column (the other columns blank unless asked to keep them). ``split_feats`` / ``join_feats`` /
``universal_feats``: the FEATS column as a name -> value mapping, back, and as the scorer's UFeats compares it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import conllu

from ..paths import read_text_file

Tagset = Literal["upos", "xpos"]
TAGSETS = ("upos", "xpos")
Column = Literal["upos", "xpos", "feats"]
COLUMNS = ("upos", "xpos", "feats")  # the tag columns a tagger can predict
# The universal features of UD v2: what the CoNLL 2018 scorer compares as UFeats (it drops the others).
UNIVERSAL_FEATURES = frozenset({
    "PronType", "NumType", "Poss", "Reflex", "Foreign", "Abbr", "Gender", "Animacy", "Number", "Case", "Definite",
    "Degree", "VerbForm", "Mood", "Tense", "Aspect", "Voice", "Evident", "Polarity", "Person", "Polite"})
FIELDS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")


# The columns the tagger does not use are kept as the raw strings, so a CoNLL-U file is written back as read.
_RAW_FIELDS = {name: (lambda line, i: line[i]) for name in ("lemma", "feats", "head", "deprel", "deps", "misc")}
_ID = re.compile(r"(\d+)|(\d+)-(\d+)|(\d+)\.(\d+)")
_FEATURE = re.compile(r"[^=|\s]+=[^=|\s]+")  # Name=Value, as the UD guidelines write one feature


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

    def values(self, name: str) -> list[str] | None:
        """A column of the words as written (``_`` kept: in FEATS it is the class "no features"); None without
        tokens."""
        if self.tokens is None:
            return None
        return [str(t[name] or "_") for t in self.tokens if isinstance(t["id"], int)]


def split_feats(feats: str) -> dict[str, str]:
    """``"Case=Nom|Number=Sing"`` -> ``{"Case": "Nom", "Number": "Sing"}`` (``_`` -> {})."""
    if feats in ("_", ""):
        return {}
    return dict(item.split("=", 1) for item in feats.split("|"))


def feats_problem(feats: str) -> str | None:
    """What is wrong with a FEATS value, or None when it is ``_`` or ``Name=Value`` items joined by ``|``, each
    name once (a repeated name would silently keep one of its values: UD writes several as ``Case=Acc,Nom``)."""
    if feats in ("_", ""):
        return None
    names: set[str] = set()
    for item in feats.split("|"):
        if _FEATURE.fullmatch(item) is None:
            return f"FEATS (column 6) must be _ or Name=Value items joined by |, got {feats!r} (item {item!r})"
        name = item.split("=", 1)[0]
        if name in names:
            return f"FEATS (column 6) names {name} twice in {feats!r}: write several values as {name}=A,B"
        names.add(name)
    return None


def join_feats(features: dict[str, str]) -> str:
    """The inverse of ``split_feats``, names sorted case-insensitively as the UD guidelines write them."""
    return "|".join(f"{k}={features[k]}" for k in sorted(features, key=str.lower)) or "_"


def universal_feats(feats: str) -> str:
    """A FEATS value reduced to its universal features, sorted (``_`` and language-specific ones give ""): the
    string the official scorer's UFeats compares."""
    return "|".join(sorted(f"{name}={value}" for name, value in split_feats(feats).items()
                           if name in UNIVERSAL_FEATURES))


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
        if require_tags and (problem := feats_problem(columns[5])):
            fail(lineno, problem)
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
        _CACHE[key] = parse_conllu(read_text_file(path), str(path), tagset, require_tags)
    return _CACHE[key]


def _blank(token: dict) -> dict:
    """ID and FORM of a token, MISC reduced to its ``SpaceAfter=No`` (how the text is rebuilt), the rest ``_``."""
    misc = token.get("misc")
    glued = (isinstance(misc, str) and "SpaceAfter=No" in misc.split("|")) or (
        isinstance(misc, dict) and misc.get("SpaceAfter") == "No")
    return {**{name: "_" for name in FIELDS}, "id": token["id"], "form": token["form"],
            "misc": "SpaceAfter=No" if glued else "_"}


def fill_tags(sentence: Sentence, tags: Sequence[str], tagset: Tagset, keep_columns: bool = False,
              columns: dict[str, Sequence[str]] | None = None) -> conllu.TokenList:
    """A copy of the sentence's CoNLL-U tokens with the ``tagset`` column of its words set to ``tags`` (and each
    other predicted column of ``columns``, e.g. ``{"xpos": [...], "feats": [...]}``, set to its values).

    Why the other columns are blanked: a file of predictions should hold only what was predicted, else the
    input's LEMMA/XPOS/FEATS/HEAD... look like the tagger's output. ``keep_columns`` keeps every column as read
    (the predicted one replaced); ID, FORM and ``SpaceAfter=No`` (MISC) are always kept, and comments too.
    """
    source = sentence.tokens if sentence.tokens is not None else conllu.TokenList(
        [dict(zip(FIELDS, [i + 1, w, *["_"] * 8], strict=True)) for i, w in enumerate(sentence.words)])
    tokens = conllu.TokenList([dict(t) if keep_columns else _blank(t) for t in source], source.metadata)
    words = [t for t in tokens if isinstance(t["id"], int)]
    for name, values in {tagset: tags, **(columns or {})}.items():
        if len(words) != len(values):
            raise ValueError(f"{sentence.where}: {len(words)} words but {len(values)} predicted {name} values")
        for token, value in zip(words, values, strict=True):
            token[name] = value
    return tokens
