"""``UDTreebank``: a Universal Dependencies treebank in CoNLL-U; its train/dev/test files come from the config
(``data.train`` / ``data.dev`` / ``data.test``), there is no default location.
"""

from __future__ import annotations

from typing import Any

from core.errors import DataError

from ..paths import require_file
from .conllu import Sentence, read_conllu
from .datamodule import PosDataModule

UD_SOURCE = ("universaldependencies.org (e.g. UD_English-EWT: en_ewt-ud-{train,dev,test}.conllu); "
             "configs/pos/ewt.yaml names the development copy")


class UDTreebank(PosDataModule):
    """A Universal Dependencies treebank in CoNLL-U: ``train``/``dev``/``test`` paths, tags from ``tagset``.

    Args:
        train: CoNLL-U file of the training split (e.g. en_ewt-ud-train.conllu)
        dev: CoNLL-U file of the validation split
        test: CoNLL-U file of the test split
    """

    KEYS = {"train": "train", "val": "dev", "test": "test"}  # split -> config key

    def __init__(self, train: str | None = None, dev: str | None = None, test: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.paths = {"train": train, "val": dev, "test": test}

    def load_split(self, split: str) -> list[Sentence]:
        path = self.paths[split]
        if path is None:
            key = self.KEYS[split]
            raise ValueError(f"UDTreebank: set data.{key} (a CoNLL-U file) to use the {split} split")
        require_file(path, f"data.{self.KEYS[split]}", f"the {split} split as a CoNLL-U file", UD_SOURCE)
        sentences = read_conllu(path, self.tagset)
        if not sentences:  # only comments or blank lines
            raise DataError(f"no sentence in the {split} split (only comments or blank lines)", where=path,
                            expected=f"CoNLL-U sentences in data.{self.KEYS[split]}",
                            fix=f"Point data.{self.KEYS[split]} at the CoNLL-U file of the {split} split.")
        return sentences
