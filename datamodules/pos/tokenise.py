"""Raw text for tagging: one sentence per line, split at whitespace and punctuation, as untagged CoNLL-U
sentences (``SpaceAfter=No`` where no space followed, so the text can be rebuilt).
"""

from __future__ import annotations

import re
from pathlib import Path

import conllu

from .conllu import FIELDS, Sentence

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
