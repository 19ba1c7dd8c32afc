"""Raw text for tagging: one sentence per line, tokenised, as untagged CoNLL-U sentences (``SpaceAfter=No``
where no space followed, so the text can be rebuilt).

Tokenisers (``data.tokenizer``):
    spacy       spaCy's rule-based tokeniser of a blank language (``spacy.blank("en")``: no model download), the
                default. Why: UD treebanks split clitics and possessives ("isn't" -> "is n't", "dog's" ->
                "dog 's", "can't" -> "ca n't"), and a tagger trained on such tokens tags unsplit ones badly;
                spaCy's English exceptions and affix rules follow the same conventions and are well kept.
                ``data.language`` picks another of spaCy's languages.
    whitespace  the text is already tokenised: tokens are split at whitespace only.
    regex       words (with inner hyphens, apostrophes, dots) and single symbols: the fallback that needs no
                package, but leaves "isn't" whole, unlike UD.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import conllu

from core.errors import ConfigError

from ..paths import read_text_file, require_file
from .conllu import FIELDS, Sentence

Tokenizer = Literal["spacy", "whitespace", "regex"]
TOKENIZERS = ("spacy", "whitespace", "regex")
_TOKEN = re.compile(r"\w+(?:[-'’.]\w+)*|[^\w\s]")


def tokenize(line: str) -> list[re.Match]:
    """The ``regex`` tokeniser: words (with inner hyphens, apostrophes, dots) and single symbols."""
    return list(_TOKEN.finditer(line))


@lru_cache(maxsize=4)
def spacy_tokenizer(language: str = "en") -> Any:
    """spaCy's tokeniser of the blank ``language`` pipeline (loaded once per process)."""
    try:
        import spacy
    except ImportError as err:
        raise ConfigError("data.tokenizer=spacy needs the spacy package (pip install spacy; attnlab lists it in its "
                         "dependencies); or set data.tokenizer to whitespace (pretokenised text) or regex") from err
    try:
        return spacy.blank(language).tokenizer
    except Exception as err:  # unknown language code
        raise ConfigError(f"data.language = {language!r}: spaCy has no such language ({err})") from err


def split_tokens(line: str, tokenizer: Tokenizer = "spacy", language: str = "en") -> list[tuple[str, bool]]:
    """``(token, space_after)`` pairs of one line of text."""
    line = line.strip()
    if tokenizer == "whitespace":
        return [(token, True) for token in line.split()]
    if tokenizer == "regex":
        matches = tokenize(line)
        return [(m.group(), not (i + 1 < len(matches) and matches[i + 1].start() == m.end()))
                for i, m in enumerate(matches)]
    if tokenizer == "spacy":
        tokens = [t for t in spacy_tokenizer(language)(line) if not t.is_space]
        return [(t.text, bool(t.whitespace_) or i + 1 == len(tokens)) for i, t in enumerate(tokens)]
    raise ConfigError(f"data.tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")


def text_sentence(line: str, sent_id: str, tokenizer: Tokenizer = "spacy", language: str = "en"
                  ) -> conllu.TokenList:
    """One line of raw text as an untagged CoNLL-U sentence (``SpaceAfter=No`` where no space followed)."""
    tokens = []
    for i, (form, space_after) in enumerate(split_tokens(line, tokenizer, language)):
        values = [i + 1, form, "_", "_", "_", "_", "_", "_", "_", "_" if space_after else "SpaceAfter=No"]
        tokens.append(dict(zip(FIELDS, values, strict=True)))
    return conllu.TokenList(tokens, conllu.models.Metadata(sent_id=sent_id, text=line.strip()))


def read_text(path: str | Path, tokenizer: Tokenizer = "spacy", language: str = "en") -> list[Sentence]:
    """Raw text, one sentence per line (blank lines skipped), tokenised by ``tokenizer``."""
    path = require_file(path, "data.predict_path", "a text file, one sentence per line (or a .conllu file)",
                        "your own text")
    sentences = []
    for lineno, line in enumerate(read_text_file(path, "data.predict_path").splitlines(), start=1):
        if not line.strip():
            continue
        tokens = text_sentence(line, f"{path.stem}-{lineno}", tokenizer, language)
        sentences.append(Sentence([t["form"] for t in tokens], None, tokens, f"{path}:{lineno}"))
    return sentences
