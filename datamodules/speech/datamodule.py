"""``SpeechDataModule``: what every speech corpus shares: reading, features, bad-file policy, labels,
normalisation and batches.

* Features are computed once per file and cached in memory (per process) and, with ``cache_dir``, on disk
  (``datamodules.speech.cache``); SpecAugment acts on training batches only. Batches are length-bucketed
  (``datamodules.batching.BucketBatchSampler``) and padded, with a padding mask.
* Bad files are handled as ``on_bad_file`` says (``datamodules.speech.errors``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from core.errors import CheckpointError

from ..base import BucketedSplits
from ..batching import IGNORE
from .alignments import Segment, alignment_rate_mismatch, frame_phones, read_alignment, read_fold_map
from .audio import AUDIO_SUFFIXES, audio_files, read_audio, resample
from .augment import SpecAugment
from .batches import FeatureDataset, collate
from .cache import cache_key, lookup, store
from .errors import OnBadFile, SpeechDataError
from .features import FeatureConfig, FeatureExtractor
from .records import Prepared, SpeechMeta, Utterance, meta_preview

SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


class SpeechDataModule(BucketedSplits):
    """Shared by every speech corpus: reading, features, bad-file policy, labels, normalisation, batches.

    ``setup("fit")`` builds ``self.meta`` (labels from train, global statistics) unless it holds one already;
    test/predict take it from the model's checkpoint before the dataloaders are made.
    ``predict_path``: an audio file or a folder of them (searched recursively); ``predict_output``: where the
    model writes its predictions (default: ``<input stem>.phones/`` or ``<input stem>.labels.tsv``).
    ``frame_shifts`` (frame-level training data): n > 1 keeps n versions of every training utterance whose frame
    grid starts 0, hop/n, 2·hop/n, … samples into the audio, with features and frame labels of their own, and
    each epoch draws one per utterance. Most frame errors sit on phone boundaries, where a 25 ms window mixes
    two phones; shifted grids show the model the same boundaries at new mixing proportions (n× the training
    features in memory; val/test/predict are never shifted).

    Args:
        features: the frame features (FeatureConfig: kind logmel|mfcc, sample_rate, n_mels, n_mfcc, win_ms, hop_ms,
            deltas, normalize utterance|global|none)
        spec_augment: training-only masking (SpecAugment: freq_masks, freq_width features, time_masks, time_width
            frames; 0 masks: off)
        fold_map: file of "phone target" lines folding the phone set (e.g. TIMIT 61 -> 39; a phone alone: ignored);
            null: none
        on_bad_file: a bad file (unreadable or empty audio, missing or malformed alignment, unknown phone): error (stop,
            naming it) or skip (leave it out, counted in one warning per split)
        frame_shifts: frame-level training: n > 1 keeps n copies of each training utterance on frame grids shifted by
            hop/n
        cache_dir: folder to keep computed features in across runs; null: in memory only
        predict_path: an audio file or folder (searched recursively) that attnlab predict / explain reads
        predict_output: where predict writes; null: <input stem>.phones/ (frames) or <input stem>.labels.tsv
            (utterances) in the predict run's folder
        seed: seed of the length-bucketed batch order (and of generated corpora)
    """

    level: Literal["frame", "utterance"] = "frame"

    def __init__(
        self,
        features: FeatureConfig | None = None,
        spec_augment: SpecAugment | None = None,
        fold_map: str | None = None,
        on_bad_file: OnBadFile = "error",
        frame_shifts: int = 1,
        cache_dir: str | None = None,
        predict_path: str | None = None,
        predict_output: str | None = None,
        seed: int = 0,
        batch_size: int = 16,
        num_workers: int = 0,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory)
        if on_bad_file not in ("error", "skip"):
            raise ValueError(f"data.on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
        if frame_shifts < 1:
            raise ValueError(f"data.frame_shifts must be >= 1 (1 = no shifted copies), got {frame_shifts}")
        self.frame_shifts = frame_shifts
        self.features = features or FeatureConfig()
        self.spec_augment = spec_augment or SpecAugment()
        self.fold = read_fold_map(fold_map) if fold_map else None
        self.on_bad_file, self.seed = on_bad_file, seed
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.predict_path, self.predict_output = predict_path, predict_output
        self.extractor = FeatureExtractor(self.features)
        self.meta: SpeechMeta | None = None
        self.skipped: dict[str, Counter] = {}
        self.feature_computations = 0  # files whose features were computed (not taken from a cache)
        self._records: dict[str, list[Utterance]] = {}
        self._prepared: dict[str, list[Prepared]] = {}
        self._encoded: dict[str, tuple[SpeechMeta, FeatureDataset]] = {}
        self._first_bad: dict[str, str] = {}

    # subclasses: the utterances of "train", "val" or "test"
    def load_split(self, split: str) -> list[Utterance]:
        raise NotImplementedError

    # ------------------------------------------------------------------ bad files
    def _bad(self, split: str, error: SpeechDataError) -> None:
        if self.on_bad_file == "error":
            raise error
        self.skipped.setdefault(split, Counter())[error.kind] += 1
        self._first_bad.setdefault(split, str(error))

    def _warn_skipped(self, split: str, total: int) -> None:
        counts = self.skipped.get(split)
        if counts:
            detail = ", ".join(f"{n} {kind}" for kind, n in counts.most_common())
            rank_zero_warn(f"{type(self).__name__} {split}: skipped {sum(counts.values())} of {total} files "
                           f"(on_bad_file=skip): {detail}; first: {self._first_bad[split]}")

    # ------------------------------------------------------------------ reading
    def records(self, split: str) -> list[Utterance]:
        if split not in self._records:
            self._records[split] = self.load_predict() if split == "predict" else self.load_split(split)
        return self._records[split]

    def _features_of(self, utt: Utterance, shift: int = 0) -> tuple[Tensor, int, int]:
        """(features, num_samples, audio_rate) of one utterance, from a cache when possible. ``shift``: the
        frames start that many samples (at the features' rate) into the audio."""
        if utt.waveform is not None:
            rate = utt.sample_rate or self.features.sample_rate
            wave = resample(utt.waveform, rate, self.features.sample_rate)
            self.feature_computations += 1
            return self.extractor(wave[shift:]), utt.waveform.numel(), rate
        assert utt.audio is not None
        try:
            key = cache_key(utt.audio, self.features) + (f"-shift{shift}" if shift else "")
        except OSError as err:
            raise SpeechDataError("unreadable audio", f"{utt.audio}: unreadable audio ({err})") from err
        cached = lookup(key, self.cache_dir)
        if cached is not None:
            return cached
        wave, rate, num_samples = read_audio(utt.audio, self.features.sample_rate)
        features = self.extractor(wave[shift:])
        self.feature_computations += 1
        return store(key, (features, num_samples, rate), self.cache_dir)

    def _prepare_one(self, utt: Utterance, split: str) -> Prepared:
        features, num_samples, rate = self._features_of(utt)
        if features.size(0) == 0:
            raise SpeechDataError("empty audio", f"{utt.where}: audio too short for one frame ({num_samples} "
                                                 f"samples at {rate} Hz, a frame needs {self.features.win_ms} ms)")
        segments = None
        if self.level == "frame" and split != "predict":
            segments = utt.segments if utt.segments is not None else None
            if segments is None:
                if utt.alignment is None or not utt.alignment.is_file():
                    raise SpeechDataError("no alignment", f"{utt.where}: no alignment file (expected "
                                                          f"{utt.alignment or 'ID.PHN next to the audio'})")
                segments = read_alignment(utt.alignment)
            name = utt.alignment or utt.where
            last = segments[-1]
            if last.end > num_samples:
                raise SpeechDataError("alignment past the end of the audio",
                                      f"{name}:{last.line}: segment ends at sample {last.end}, past the end of "
                                      f"the audio ({num_samples} samples in {utt.where})")
            written_for = alignment_rate_mismatch(last.end, num_samples, rate)
            if written_for:
                raise SpeechDataError("alignment at another sample rate",
                                      f"{name}:{last.line}: the alignment ends at sample {last.end} of "
                                      f"{num_samples} ({last.end / num_samples:.0%}), as if written for "
                                      f"{written_for} Hz audio, but {utt.where} is {rate} Hz; expected sample "
                                      f"numbers at the audio's rate. Resample the audio to {written_for} Hz or "
                                      f"rescale the alignment")
            segments = self._folded(segments, name)
        return Prepared(utt, features, num_samples, rate, segments)

    def _folded(self, segments: list[Segment], name: Any) -> list[Segment]:
        if self.fold is None:
            return segments
        out = []
        for seg in segments:
            if seg.phone not in self.fold:
                raise SpeechDataError("unknown phone", f"{name}:{seg.line}: phone {seg.phone!r} is not in the "
                                                       f"fold map (data.fold_map)")
            target = self.fold[seg.phone]
            if target is not None:
                out.append(Segment(seg.start, seg.end, target, seg.line))
        return out

    def prepared(self, split: str) -> list[Prepared]:
        """Features and alignments of a split, bad files handled as ``on_bad_file`` says; computed once."""
        if split not in self._prepared:
            records = self.records(split)
            if not records:
                raise ValueError(f"{type(self).__name__}: the {split} split has no audio files")
            done = []
            for utt in records:
                try:
                    done.append(self._prepare_one(utt, split))
                except SpeechDataError as err:
                    self._bad(split, err)
            self._prepared[split] = done
            self._warn_skipped(split, len(records))
            if not done:
                raise ValueError(f"{type(self).__name__}: every file of the {split} split was skipped "
                                 f"({dict(self.skipped.get(split, {}))})")
        return self._prepared[split]

    # ------------------------------------------------------------------ labels, statistics
    def build_meta(self) -> SpeechMeta:
        train = self.prepared("train")
        if self.level == "frame":
            labels = sorted({s.phone for p in train for s in p.segments or ()})
        else:
            labels = sorted({p.utt.label for p in train if p.utt.label is not None})
        if not labels:
            raise ValueError(f"{type(self).__name__}: the training split carries no labels")
        mean = std = None
        frames = sum(p.features.size(0) for p in train)
        if self.features.normalize == "global":  # running sums in float64: no copy of all training frames
            total = sum(p.features.double().sum(0) for p in train)
            squares = sum(p.features.double().square().sum(0) for p in train)
            mu = total / frames
            mean = mu.float().tolist()
            std = (squares / frames - mu.square()).clamp_min(1e-10).sqrt().clamp_min(1e-5).float().tolist()
        kind = "phones" if self.level == "frame" else "classes"
        rank_zero_info(f"{type(self).__name__}: {len(train)} training utterances, {frames:,} frames of "
                       f"{self.features.dim} features; {len(labels)} {kind}")
        return SpeechMeta(labels, self.features, self.level, mean, std)

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS.get(stage or "fit", ()):
            self.prepared(split)
        if stage in (None, "fit") and self.meta is None:
            self.meta = self.build_meta()
        if self.meta is not None:
            for split in SPLITS.get(stage or "fit", ()):
                self.dataset(split)

    def _check_meta(self) -> SpeechMeta:
        if self.meta is None:
            raise RuntimeError(f"{type(self).__name__}: no label inventory to encode the data with. test/predict "
                               "take it from the model's checkpoint: pass --ckpt_path (best, last or a file) of a "
                               "model trained with `attnlab fit`")
        if self.meta.features != self.features:  # e.g. another sample_rate: every frame would mean something else
            ours, saved = self.features.to_dict(), self.meta.features.to_dict()
            diff = ", ".join(f"data.features.{k}={ours.get(k)!r} (checkpoint: {saved.get(k)!r})"
                             for k in sorted(set(ours) | set(saved)) if ours.get(k) != saved.get(k))
            raise CheckpointError(f"{diff} differ from the features the model was trained on",
                                  fix="Use the training config's data.features.")
        if self.meta.level != self.level:
            raise ValueError(f"{type(self).__name__} gives {self.level} labels but the model was trained on "
                             f"{self.meta.level} labels")
        return self.meta

    def dataset(self, split: str) -> FeatureDataset:
        meta = self._check_meta()
        cached = self._encoded.get(split)
        if cached is not None and cached[0] is meta:
            return cached[1]
        index, items = meta.index, []
        prepared = self.prepared(split)
        before = sum(self.skipped.get(split, Counter()).values())
        for p in prepared:
            try:
                items.append(self._encode(p, index, split))
            except SpeechDataError as err:
                self._bad(split, err)
        if sum(self.skipped.get(split, Counter()).values()) > before:
            self._warn_skipped(split, len(self.records(split)))
        if not items:
            raise ValueError(f"{type(self).__name__}: every file of the {split} split was skipped")
        if split == "train" and self.level == "frame" and self.frame_shifts > 1:
            self._add_shifted(items, index)
        augment = self.spec_augment if split == "train" else None
        dataset = FeatureDataset(items, augment, groups=1 + self.features.deltas)
        self._encoded[split] = (meta, dataset)
        return dataset

    def _frame_labels(self, p: Prepared, index: dict[str, int], num_frames: int, offset: int = 0) -> Tensor:
        """The phone id of every frame (``IGNORE`` where no segment covers its centre); ``offset`` as in
        ``frame_phones``."""
        assert self.meta is not None
        if p.segments is None:
            return torch.full((num_frames,), IGNORE, dtype=torch.long)
        name = p.utt.alignment or p.utt.where
        for seg in p.segments:
            if seg.phone not in index:
                raise SpeechDataError("unknown phone", f"{name}:{seg.line}: phone {seg.phone!r} does not "
                                                       f"occur in the training data (the model's phones: "
                                                       f"{' '.join(meta_preview(self.meta.labels))})")
        ids = torch.tensor([index[s.phone] for s in p.segments] + [IGNORE])
        return ids[torch.tensor(frame_phones(p.segments, num_frames, self.features, p.audio_rate, offset))]

    def _add_shifted(self, items: list[dict[str, Any]], index: dict[str, int]) -> None:
        """Give every training item ``frame_shifts - 1`` copies whose frame grid starts k·hop/frame_shifts
        samples later, with their own features and labels (see ``frame_shifts`` in the class doc)."""
        assert self.meta is not None
        shifts = [round(k * self.features.hop_length / self.frame_shifts) for k in range(1, self.frame_shifts)]
        for item in items:
            p: Prepared = item["prepared"]
            copies = []
            for shift in shifts:
                features = self._features_of(p.utt, shift)[0]
                if features.size(0):
                    copies.append({"features": self.meta.normalise(features),
                                   "frame_labels": self._frame_labels(p, index, features.size(0), shift)})
            item["shifted"] = copies

    def _encode(self, p: Prepared, index: dict[str, int], split: str) -> dict[str, Any]:
        assert self.meta is not None
        item: dict[str, Any] = {"features": self.meta.normalise(p.features), "prepared": p}
        if self.level == "frame":
            item["frame_labels"] = self._frame_labels(p, index, p.features.size(0))
        else:
            label = p.utt.label
            if split != "predict" and label not in index:
                raise SpeechDataError("unknown label", f"{p.utt.where}: class {label!r} does not occur in the "
                                                       f"training data (classes: {' '.join(self.meta.labels)})")
            item["label"] = index.get(label, IGNORE) if label is not None else IGNORE
        return item

    # ------------------------------------------------------------------ loaders
    collate = staticmethod(collate)

    def item_lengths(self, data) -> list[int]:
        return data.lengths

    # ------------------------------------------------------------------ prediction input / output
    def load_predict(self) -> list[Utterance]:
        """The recordings at ``predict_path``; two files with one name and other suffixes (``a.wav``, ``a.flac``)
        keep their suffix in the id, so their outputs do not overwrite each other."""
        utterances = self._predict_files()
        stems = Counter(u.id for u in utterances)
        clashes = sorted(stem for stem, n in stems.items() if n > 1)
        if clashes:
            rank_zero_warn(f"data.predict_path: {len(clashes)} recording name(s) with several audio files, e.g. "
                           f"{clashes[0]} ({', '.join(Path(u.where).name for u in utterances if u.id == clashes[0])})"
                           f"; their outputs are named with the suffix (<name>.wav.PHN, <name>.flac.PHN)")
            for u in utterances:
                if u.id in clashes and u.audio is not None:
                    u.id = f"{u.id}{u.audio.suffix}"
        return utterances

    def _predict_files(self) -> list[Utterance]:
        if self.predict_path is None:
            raise ValueError(f"{type(self).__name__}: set data.predict_path (an audio file or a folder of "
                             f"{'/'.join(AUDIO_SUFFIXES)} files) to run predict")
        path = Path(self.predict_path)
        if path.is_file():
            return [Utterance(path.stem, str(path), audio=path)]
        if not path.is_dir():
            raise ValueError(f"data.predict_path: {path} does not exist")
        return [Utterance(f.relative_to(path).with_suffix("").as_posix(), str(f), audio=f) for f in audio_files(path)]

    def output_path(self) -> Path:
        if self.predict_output:
            return Path(self.predict_output)
        stem = Path(self.predict_path or "predictions").stem
        return Path(f"{stem}.phones") if self.level == "frame" else Path(f"{stem}.labels.tsv")

    def item(self, split: str, index: int) -> Prepared:
        """The prepared utterance behind ``index`` of a batch of ``split``."""
        return self.dataset(split).items[index]["prepared"]
