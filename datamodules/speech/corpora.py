"""Speech corpora on disk: ``PhoneCorpus`` (TIMIT layout: ``ID.wav|flac`` + ``ID.PHN`` in train/dev/test folders
or a TIMIT tree) and ``UtteranceCorpus`` (Free Spoken Digit Dataset naming, or a folder per class as in Speech
Commands). Their ``root`` comes from the config (``data.root``); there is no default location.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from ..paths import require_dir
from .audio import AUDIO_SUFFIXES, audio_files
from .datamodule import SpeechDataModule
from .features import FeatureConfig
from .records import Utterance

PHONE_SOURCES = ("TIMIT (LDC93S1, catalog.ldc.upenn.edu) or any corpus in its layout, e.g. festival-kal "
                 "(configs/speech/festival.yaml names the development copy)")
UTTERANCE_SOURCES = ("the Free Spoken Digit Dataset (github.com/Jakobovski/free-spoken-digit-dataset, recordings/) "
                     "or Speech Commands (a folder per class)")


def _hash_fraction(key: str) -> float:
    """A stable number in [0, 1) per key (Python's hash() changes per process)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2**32


def _child(root: Path, names: Sequence[str]) -> Path | None:
    """The sub-folder of ``root`` named one of ``names``, in any case."""
    if not root.is_dir():
        return None
    wanted = {n.lower() for n in names}
    return next((c for c in sorted(root.iterdir()) if c.is_dir() and c.name.lower() in wanted), None)


class PhoneCorpus(SpeechDataModule):
    """Phone-aligned audio in the TIMIT layout: ``ID.wav``/``ID.flac`` with ``ID.PHN`` (``start end phone``).

    ``root`` holds one folder per split, found by name in any case (``train``; ``dev``/``val``/``valid``;
    ``test``) and searched recursively, so both ``festival-kal/{train,dev,test}/ID.flac`` and a TIMIT tree
    (``TRAIN/DR1/FCJF0/SA1.WAV``) work. Without a dev folder, ``dev_fraction`` of the training speakers
    (the utterance's parent folder; each utterance when all share one folder) is held out, stably.
    ``exclude``: file-name globs to leave out (e.g. ``SA*`` for TIMIT's shared sentences).

    Args:
        root: folder with train/, dev/ (or val/), test/ of ID.wav/ID.flac + ID.PHN files, searched recursively
        dev_fraction: share of training speakers held out for validation when there is no dev folder
        exclude: file-name globs to leave out (e.g. SA* for TIMIT)
    """

    def __init__(self, root: str | None = None, dev_fraction: float = 0.1,
                 exclude: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 < dev_fraction < 1.0:
            raise ValueError(f"data.dev_fraction must be in (0, 1), got {dev_fraction}")
        self.root = Path(root) if root is not None else None
        self.dev_fraction, self.exclude = dev_fraction, list(exclude or [])

    def load_split(self, split: str) -> list[Utterance]:
        require_dir(self.root, "data.root", "a folder with train/, dev/, test/ inside (TIMIT layout: ID.wav or "
                    "ID.flac with ID.PHN)", PHONE_SOURCES)
        names = {"train": ("train",), "val": ("dev", "val", "valid", "validation"), "test": ("test",)}
        folder = _child(self.root, names[split])
        if split == "val" and folder is None:
            folder = _child(self.root, names["train"])
        if folder is None:
            raise ValueError(f"data.root: {self.root} has no {'/'.join(names[split])} folder for the {split} split")
        utterances = []
        hold_out = split in ("train", "val") and _child(self.root, names["val"]) is None
        for audio in audio_files(folder, self.exclude):
            rel = audio.relative_to(folder)
            if hold_out:
                group = rel.parent.as_posix() if rel.parent != Path(".") else rel.as_posix()
                if (_hash_fraction(group) < self.dev_fraction) != (split == "val"):
                    continue
            stem = audio.with_suffix("")
            if stem.suffix.lower() in AUDIO_SUFFIXES:  # "SA1.WAV.wav" (converted TIMIT)
                stem = stem.with_suffix("")
            alignment = next((stem.with_suffix(s) for s in (".PHN", ".phn") if stem.with_suffix(s).is_file()),
                             stem.with_suffix(".PHN"))
            utterances.append(Utterance(rel.with_suffix("").as_posix(), str(audio), audio=audio, alignment=alignment))
        return utterances


class UtteranceCorpus(SpeechDataModule):
    """One label per recording.

    ``layout: fsdd`` — the Free Spoken Digit Dataset: ``{digit}_{speaker}_{index}.wav`` in ``root`` (or its
    ``recordings/``); official split: index 0-4 test, the rest train, of which ``val_fraction`` (by file) is
    held out for validation. ``layout: folders`` — a folder per class (Speech Commands): ``root/<class>/*.wav``
    with ``validation_list.txt`` / ``testing_list.txt`` when present, or ``root/{train,dev,test}/<class>/``,
    else a stable ``val_fraction`` / ``test_fraction`` split by file; folders starting with ``_`` are skipped.

    Args:
        root: folder of recordings (layout fsdd) or of one folder per class (layout folders)
        layout: fsdd ({digit}_{speaker}_{index}.wav) or folders (root/<class>/*.wav, or root/{train,dev,test}/<class>/)
        val_fraction: share of files held out (stable by name) for validation when the layout has no val split
        test_fraction: layout folders: share of files held out for test when there is no test split
    """

    level = "utterance"

    def __init__(self, root: str | None = None, layout: Literal["fsdd", "folders"] = "fsdd",
                 val_fraction: float = 0.1, test_fraction: float = 0.1, **kwargs: Any) -> None:
        if kwargs.get("features") is None:  # FSDD is 8 kHz
            kwargs["features"] = FeatureConfig(sample_rate=8000)
        super().__init__(**kwargs)
        if layout not in ("fsdd", "folders"):
            raise ValueError(f"data.layout must be 'fsdd' or 'folders', got {layout!r}")
        for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"data.{key} must be in [0, 1), got {value}")
        self.root, self.layout = Path(root) if root is not None else None, layout
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    def load_split(self, split: str) -> list[Utterance]:
        require_dir(self.root, "data.root", "a folder of recordings ({digit}_{speaker}_{index}.wav, data.layout: "
                    "fsdd) or of class folders (data.layout: folders)", UTTERANCE_SOURCES)
        return self._fsdd(split) if self.layout == "fsdd" else self._folders(split)

    def _fsdd(self, split: str) -> list[Utterance]:
        folder = self.root / "recordings" if (self.root / "recordings").is_dir() else self.root
        out = []
        for f in audio_files(folder):
            parts = f.stem.split("_")
            if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
                raise ValueError(f"{f}: FSDD files are named {{digit}}_{{speaker}}_{{index}}.wav (data.layout: "
                                 "fsdd); use data.layout: folders for a folder per class")
            index = int(parts[2])
            which = "test" if index <= 4 else ("val" if _hash_fraction(f.name) < self.val_fraction else "train")
            if which == split:
                out.append(Utterance(f.stem, str(f), audio=f, label=parts[0]))
        return out

    def _folders(self, split: str) -> list[Utterance]:
        names = {"train": ("train",), "val": ("dev", "val", "valid", "validation"), "test": ("test",)}
        folder = _child(self.root, names[split])
        if _child(self.root, ("train",)) is not None:
            if folder is None:
                raise ValueError(f"data.root: {self.root} has train/ but no {'/'.join(names[split])} folder")
            return [self._labelled(f, folder) for f in self._class_files(folder)]
        lists = {"val": self.root / "validation_list.txt", "test": self.root / "testing_list.txt"}
        listed = {s: set(p.read_text().split()) for s, p in lists.items() if p.is_file()}
        out = []
        for f in self._class_files(self.root):
            rel = f.relative_to(self.root).as_posix()
            if listed:
                which = next((s for s, names_ in listed.items() if rel in names_), "train")
            else:
                r = _hash_fraction(rel)
                which = "test" if r < self.test_fraction else "val" if r < self.test_fraction + self.val_fraction \
                    else "train"
            if which == split:
                out.append(self._labelled(f, self.root))
        return out

    @staticmethod
    def _class_files(folder: Path) -> list[Path]:
        return [f for f in audio_files(folder) if not f.relative_to(folder).parts[0].startswith("_")
                and len(f.relative_to(folder).parts) >= 2]

    @staticmethod
    def _labelled(f: Path, folder: Path) -> Utterance:
        rel = f.relative_to(folder)
        return Utterance(rel.with_suffix("").as_posix(), str(f), audio=f, label=rel.parts[0])
