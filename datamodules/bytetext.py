"""Byte-level text classification (LRA's "Text" task, on an offline corpus): which genre is a passage from?

The corpus is the English Web Treebank in CoNLL-U (``en_ewt-ud-{train,dev,test}.conllu`` in ``data.root``).
Its sentence ids name the source, ``weblog-…``, ``newsgroup-…``, ``email-…``, ``answers-…``, ``reviews-…``,
and the document (the id without the trailing ``-NNNN``). Sentences of a document are joined with spaces
and cut into passages of at most ``max_len`` UTF-8 bytes at sentence boundaries (a longer sentence is cut
into pieces); the label is the genre. Like LRA's IMDb task the model sees raw bytes (no tokenizer), so
words and their order must be composed from hundreds of characters. The treebank's own train/dev/test files
are the splits, so documents never cross splits.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from core.errors import DataError

from .paths import read_text_file, require_dir, require_file
from .sequences import PaddedSequenceSplits, SequenceDataset

GENRES = ("answers", "email", "newsgroup", "reviews", "weblog")
PAD, CLS, OFFSET = 0, 1, 2  # byte b has token id b + 2
EWT_SOURCE = ("universaldependencies.org (UD_English-EWT); configs/lra/text.yaml names the development copy")


def read_documents(path: str | os.PathLike) -> list[tuple[str, list[str]]]:
    """[(genre, [sentence text, ...]) per document] in file order, from ``# sent_id`` and ``# text`` lines."""
    docs: dict[str, tuple[str, list[str]]] = {}
    sent_id = None
    for line_no, line in enumerate(read_text_file(path).splitlines(), 1):  # a BOM dropped, bad UTF-8 named
        if line.startswith("# sent_id = "):
            sent_id = line.split("=", 1)[1].strip()
        elif line.startswith("# text = "):
            if sent_id is None:
                raise DataError(f"{path}:{line_no}: '# text' without a preceding '# sent_id'")
            genre = sent_id.split("-", 1)[0]
            if genre not in GENRES:
                raise DataError(f"{path}:{line_no}: sentence id {sent_id!r} does not start with one of {GENRES}")
            doc = sent_id.rsplit("-", 1)[0]
            docs.setdefault(doc, (genre, []))[1].append(line.split("=", 1)[1].strip())
            sent_id = None
    if not docs:
        raise DataError(f"{path}: no '# sent_id' / '# text' sentence", expected="a UD CoNLL-U file with # text lines",
                        fix="Point data.root at UD_English-EWT.")
    return list(docs.values())


def passages(sentences: list[str], max_bytes: int) -> list[bytes]:
    """Consecutive sentences joined by spaces, packed greedily into pieces of at most ``max_bytes``."""
    out, current = [], b""
    for sentence in sentences:
        data = sentence.encode("utf-8")
        while len(data) > max_bytes:  # a sentence longer than a passage: its own pieces
            if current:
                out.append(current)
                current = b""
            out.append(data[:max_bytes])
            data = data[max_bytes:]
        candidate = current + b" " + data if current else data
        if len(candidate) > max_bytes:
            out.append(current)
            candidate = data
        current = candidate
    if current:
        out.append(current)
    return out


def encode(data: bytes, add_cls: bool = True) -> Tensor:
    ids = torch.frombuffer(bytearray(data), dtype=torch.uint8).long() + OFFSET
    return torch.cat([torch.tensor([CLS]), ids]) if add_cls else ids


class ByteText(PaddedSequenceSplits):
    """Batches ``(tokens (B, L), padding_mask (B, L), genre (B,))``: CLS + bytes of a passage, 5 genres.

    ``vocab_size`` = 258 (pad, CLS, 256 bytes). ``max_train`` / ``max_eval`` cap the passages per split
    (a fixed random subset, seeded) to bound the cost of a run; None keeps them all. ``root``: the folder with
    the EWT files, from the config (no default location).

    Args:
        root: folder with the UD English-EWT en_ewt-ud-{train,dev,test}.conllu files
        max_len: tokens per passage, CLS included (consecutive sentences packed up to max_len - 1 bytes)
        max_train: training passages kept (a fixed random subset); null: all
        max_eval: validation and test passages kept each; null: all
        seed: seed of the max_train / max_eval subsets
    """

    vocab_size = 256 + OFFSET
    num_classes = len(GENRES)

    def __init__(
        self,
        root: str | None = None,
        max_len: int = 1024,
        max_train: int | None = None,
        max_eval: int | None = None,
        seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory)
        if max_len < 1:
            raise ValueError(f"ByteText: max_len must be >= 1, got {max_len}")
        self.save_hyperparameters()
        self.datasets: dict[str, SequenceDataset] = {}

    def split_file(self, split: str) -> Path:
        name = f"en_ewt-ud-{ {'train': 'train', 'val': 'dev', 'test': 'test'}[split] }.conllu"
        expected = f"a folder with the EWT en_ewt-ud-{{train,dev,test}}.conllu files ({name} for the {split} split)"
        root = require_dir(self.hparams.root, "data.root", expected, EWT_SOURCE)
        return require_file(root / name, "data.root", expected, EWT_SOURCE)

    def build(self, split: str) -> SequenceDataset:
        h = self.hparams
        items = [(p, GENRES.index(genre)) for genre, sents in read_documents(self.split_file(split))
                 for p in passages(sents, h.max_len - 1)]  # -1: room for the CLS token
        cap = h.max_train if split == "train" else h.max_eval
        if cap is not None and len(items) > cap:
            g = torch.Generator().manual_seed(h.seed + len(split))
            keep = torch.randperm(len(items), generator=g)[:cap].sort().values.tolist()
            items = [items[i] for i in keep]
        return SequenceDataset([encode(p) for p, _ in items], torch.tensor([y for _, y in items]))

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val", "test"):
            if split not in self.datasets:
                self.datasets[split] = self.build(split)
