"""Speech: frame-level phone classification and utterance classification on one core.Encoder.

``FrameClassifier``: features -> linear -> encoder under ``Truncated(left, right)`` (frames; ``Full`` for
comparison) with relative or rotary positions -> per-frame phone logits. ``encoder: context_mlp`` swaps the
encoder for a plain MLP over ±``context`` stacked frames (the classic hybrid-system baseline), same loop.
``stream``/``stream_file`` run a trained model over a recording of any length chunk by chunk, with the
predictions of one offline pass (``core.StreamingEncoder`` documents what is cached).
``UtteranceClassifier``: the same encoder, then attention pooling (``core.AttentionPooling``) -> one label.

The label inventory, the feature settings and the global statistics come from the datamodule when training
and travel in every checkpoint (``speech_meta``), so a checkpoint alone can label new audio.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.export import Dim
from torchmetrics.classification import MulticlassAccuracy

from core import (
    AttentionPooling,
    EdgeMask,
    Encoder,
    EncoderConfig,
    Neighborhood2D,
    Pattern,
    StreamingEncoder,
    Truncated,
    masked_mean,
)
from datamodules.speech import (
    IGNORE,
    FeatureExtractor,
    FeatureStream,
    SpeechMeta,
    WindowedStream,
    iter_blocks,
    merge_frames,
    read_audio,
)

from .base import AttnLabModule, OptimConfig, ThroughputClock
from .export import ExportSpec
from .speech_figures import draw_speech


def splice(features: Tensor, mask: Tensor, context: int) -> Tensor:
    """(B, T, F) -> (B, T, F·(2·context+1)): each frame with its ±``context`` neighbours (zeros beyond the real
    frames, i.e. the mean of normalised features), oldest first."""
    if context == 0:
        return features
    x = features * mask.unsqueeze(-1).to(features.dtype)
    x = F.pad(x, (0, 0, context, context)).unfold(1, 2 * context + 1, 1)  # (B, T, F, 2c+1)
    return x.transpose(-1, -2).flatten(2)


def boundary_frames(labels: Tensor) -> Tensor:
    """(B, T) frame labels (``IGNORE`` = none) -> (B, T) True where a labelled frame's label differs from that of
    the frame before or after it: the last frame of a phone and the first of the next."""
    real = labels != IGNORE
    change = (labels[:, 1:] != labels[:, :-1]) & real[:, 1:] & real[:, :-1]  # between t and t+1
    out = torch.zeros_like(real)
    out[:, 1:] |= change
    out[:, :-1] |= change
    return out


def _and_end(items: Iterable[Tensor]) -> Iterator[Tensor | None]:
    """The items, then None (the end of the stream)."""
    yield from items
    yield None


class ContextMLP(nn.Module):
    """Baseline: each frame's ±``context`` neighbours stacked (zeros beyond the utterance) -> MLP -> logits."""

    def __init__(self, in_features: int, num_classes: int, context: int, hidden: int, layers: int,
                 dropout: float) -> None:
        super().__init__()
        self.context = context
        sizes = [in_features * (2 * context + 1)] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(sizes, sizes[1:], strict=False):
            blocks += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
        self.net = nn.Sequential(*blocks, nn.Linear(sizes[-1], num_classes))

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        return self.net(splice(features, mask, self.context))


# both speech apps' default encoder: relative positions up to ±32 frames
SPEECH_ENCODER = EncoderConfig(dim=128, depth=4, num_heads=4, mlp_ratio=2.0, dropout=0.1, position="relative",
                               max_relative_distance=32)


class SpeechModule(AttnLabModule):
    """What both speech apps share: the meta handshake with the datamodule, input projection and encoder.

    Fine-tuning (``init_from``, ``freeze``, ``head_lr_scale``, ``backbone_lr_scale``): see ``AttnLabModule``; the
    label inventory and features come from the new data, so a FrameClassifier's encoder can start an
    UtteranceClassifier (the input projection loads when the feature sizes agree; head and pooling are new).
    """

    monitor = "val/acc"
    monitor_mode = "max"
    data_state_key = "speech_meta"  # the label inventory and feature settings of the training data
    data_state_attr = "meta"

    def __init__(
        self,
        encoder: EncoderConfig = SPEECH_ENCODER,
        pattern: Pattern = Truncated(32, 32),
        input_context: int = 0,
        label_smoothing: float = 0.0,
        init_from: str | None = None,
        freeze: str | list[str] | None = None,
        head_lr_scale: float = 1.0,
        backbone_lr_scale: float = 1.0,
        optim: OptimConfig | None = None,
        compile: bool = False,
    ) -> None:
        """The options both speech apps take (each app adds its own and passes these on as ``**shared``).

        Args:
            encoder: the encoder (core.EncoderConfig); position relative (Shaw, max_relative_distance frames) or
                rotary; its dropout also drops the projected inputs and the head's input
            pattern: which frames attend to which: core.Truncated(left, right) in frames (streamable), core.Full,
                or another 1-D pattern (Longformer, BigBird, Strided, ...)
            input_context: frames on each side spliced into each input vector
            label_smoothing: of the training cross-entropy
            init_from: checkpoint (or bare state dict) to start a fit from (fine-tuning, see AttnLabModule)
            freeze: "backbone", fnmatch patterns of parameter names, or none: the parameters not trained
            head_lr_scale: multiplier of optim.lr for the head (and for what init_from could not load)
            backbone_lr_scale: multiplier of optim.lr for every other parameter
            optim: optimiser and schedule (OptimConfig)
            compile: torch.compile the encoder
        """
        super().__init__(optim=optim, compile=compile, init_from=init_from, freeze=freeze,
                         head_lr_scale=head_lr_scale, backbone_lr_scale=backbone_lr_scale)
        self.save_hyperparameters()  # with the calling app's own arguments (Lightning collects both frames)
        if encoder.position not in ("relative", "rotary"):
            raise ValueError(f"model.encoder.position must be 'relative' or 'rotary' (frames are compared by "
                             f"distance), got {encoder.position!r}")
        if isinstance(pattern, (EdgeMask, Neighborhood2D)):
            raise ValueError(f"model.pattern must be a pattern over frames (Truncated, Full, Longformer, BigBird, "
                             f"...), got {type(pattern).__name__}")
        if input_context < 0:
            raise ValueError(f"model.input_context must be >= 0, got {input_context}")
        self.pattern, self.input_context = pattern, input_context
        self.encoder_config, self.label_smoothing = encoder, label_smoothing
        self.dim = encoder.dim
        self.drop = nn.Dropout(encoder.dropout)
        self.meta: SpeechMeta | None = None
        self.input: nn.Linear | None = None
        self._clock = ThroughputClock()

    # ------------------------------------------------------------------ meta (model <-> datamodule)
    def set_meta(self, meta: SpeechMeta) -> None:
        """Build the layers whose size depends on the data (input projection, head, metrics); no-op if unchanged."""
        self.set_data_state(meta)

    def build_from_data(self, meta: SpeechMeta) -> None:
        self.build(meta)

    def build(self, meta: SpeechMeta) -> None:
        raise NotImplementedError

    def unpack_data_state(self, raw: dict[str, Any]) -> SpeechMeta:
        return SpeechMeta.from_dict(raw)

    def setup(self, stage: str) -> None:
        self.setup_data_state(stage)

    def explain_figures(self, batch: dict[str, Tensor], out: Path, example: int) -> list[Path]:
        return draw_speech(self, self.datamodule(), batch, out, example)

    def class_names(self) -> list[str] | None:
        return list(self.meta.labels) if self.meta is not None else None

    def item_features(self, items: list[Any]) -> tuple[Tensor, Tensor]:
        """Audio paths or mono waveforms (at the model's sample rate) -> padded normalised features and mask."""
        meta = self._require_meta()
        extract = FeatureExtractor(meta.features)
        waves = [read_audio(Path(w), meta.features.sample_rate)[0] if not isinstance(w, Tensor) else w for w in items]
        feats = [meta.normalise(extract(w.float())) for w in waves]
        length = max(1, *(f.size(0) for f in feats))
        features = torch.zeros(len(feats), length, meta.features.dim)
        mask = torch.zeros(len(feats), length, dtype=torch.bool)
        for i, f in enumerate(feats):
            features[i, :f.size(0)], mask[i, :f.size(0)] = f, True
        return features.to(self.device), mask.to(self.device)

    def export_example(self, batch: int = 2, length: int = 12) -> ExportSpec:
        """``forward(features, mask)`` on normalised features; batch and frame count are dynamic."""
        meta = self._require_meta()
        features = torch.randn(batch, length, meta.features.dim, generator=torch.Generator().manual_seed(length))
        mask = torch.ones(batch, length, dtype=torch.bool)
        mask[-1, max(1, length // 2):] = False
        dims = {"features": {0: Dim.DYNAMIC, 1: Dim.DYNAMIC}, "mask": {0: Dim.DYNAMIC, 1: Dim.DYNAMIC}}
        notes = {"inputs": "features (B, T, F) float: the speech_meta feature settings, normalised with its mean "
                           "and std; mask (B, T) bool, True = real frame",
                 "outputs": "logits (B, T, labels) per frame (FrameClassifier) or (B, labels) (UtteranceClassifier)"}
        return ExportSpec(self, (features, mask), dims, notes, backend="dense")

    def _require_meta(self) -> SpeechMeta:
        if self.meta is None:
            raise RuntimeError(f"{type(self).__name__} has no label inventory yet: train it (attnlab fit) or load "
                               "a checkpoint")
        return self.meta

    def encode(self, features: Tensor, mask: Tensor,
               return_weights: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """(B, T, F) features -> (B, T, dim) encoder outputs (and every layer's (B, heads, T, T) weights)."""
        x = self.drop(self.input(splice(features, mask, self.input_context)))
        return self.encoder(x, pattern=self.pattern, padding_mask=mask, return_weights=return_weights)

    # ------------------------------------------------------------------ throughput
    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        self._clock.start("train")

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self._clock.stop("train", batch["mask"].sum())  # forward, backward and optimizer step

    def on_train_epoch_end(self) -> None:
        self.log("train/frames_per_s", self._clock.rate("train"))


class FrameClassifier(SpeechModule):
    """One phone per 10 ms frame. Batches: dicts from ``datamodules.speech`` (features, mask, labels, index).

    Shared options (``encoder``, ``pattern``, ``input_context``, ...): see ``SpeechModule.__init__``.
    ``backbone: context_mlp`` ignores the encoder's attention settings (it uses ``encoder.dropout``) and
    uses ``context`` / ``mlp_hidden`` / ``mlp_layers``. Padding and unlabelled frames count in neither loss nor
    accuracy. ``predict`` writes ``<id>.frames`` (one phone per frame) and ``<id>.PHN`` (merged segments
    ``start end phone`` in samples of the audio) per utterance into ``data.predict_output``.

    Args:
        backbone: attention (the encoder) or context_mlp (an MLP over stacked frames, the hybrid-system baseline)
        context: frames on each side the context_mlp sees
        mlp_hidden: width of the context_mlp's hidden layers
        mlp_layers: hidden layers of the context_mlp
    """

    def __init__(
        self,
        backbone: Literal["attention", "context_mlp"] = "attention",
        context: int = 5,
        mlp_hidden: int = 512,
        mlp_layers: int = 2,
        **shared: Any,
    ) -> None:
        super().__init__(**shared)
        if backbone not in ("attention", "context_mlp"):
            raise ValueError(f"model.backbone must be 'attention' or 'context_mlp', got {backbone!r}")
        if context < 0 or mlp_layers < 0 or mlp_hidden < 1:
            raise ValueError(f"model.context ({context}) and model.mlp_layers ({mlp_layers}) must be >= 0, "
                             f"model.mlp_hidden ({mlp_hidden}) >= 1")
        self.encoder_kind = backbone
        self.encoder = Encoder(self.encoder_config) if backbone == "attention" else None
        self.head: nn.Linear | None = None
        self.context_mlp: ContextMLP | None = None

    def build(self, meta: SpeechMeta) -> None:
        h, num_classes = self.hparams, len(meta.labels)
        if self.encoder_kind == "attention":
            self.input = nn.Linear(meta.features.dim * (2 * self.input_context + 1), self.dim)
            self.head = nn.Linear(self.dim, num_classes)
        else:
            self.context_mlp = ContextMLP(meta.features.dim, num_classes, h.context, h.mlp_hidden, h.mlp_layers,
                                          self.encoder_config.dropout)
        self.setup_metrics({"acc": MulticlassAccuracy(num_classes, average="micro", ignore_index=IGNORE)})
        self.region_metrics = nn.ModuleDict({region: MulticlassAccuracy(num_classes, average="micro")
                                             for region in ("boundary", "interior")})

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        """(B, T, F) normalised features, (B, T) mask -> (B, T, num_phones) logits."""
        self._require_meta()
        if self.context_mlp is not None:
            return self.context_mlp(features, mask)
        return self.head(self.drop(self.encode(features, mask)))

    def _step(self, batch: dict[str, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        logits = self(batch["features"], batch["mask"])
        labels, mask = batch["labels"], batch["mask"]
        smoothing = self.label_smoothing if stage == "train" else 0.0
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE,
                               label_smoothing=smoothing)
        preds = logits.argmax(-1)
        self.log_step(stage, loss, preds[mask], labels[mask], batch_size=int((labels != IGNORE).sum()))
        return loss, preds

    def shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        return self._step(batch, stage)[0]

    def test_step(self, batch, batch_idx: int) -> None:
        """Frame accuracy, and separately on phone boundaries (where a 25 ms window mixes two phones) and inside
        phones: ``test/acc_boundary``, ``test/acc_interior``."""
        _, preds = self._step(batch, "test")
        labels = batch["labels"]
        boundary = boundary_frames(labels)
        for region, where in (("boundary", boundary), ("interior", ~boundary & (labels != IGNORE))):
            if bool(where.any()):
                self.region_metrics[region].update(preds[where], labels[where])

    def on_test_epoch_end(self) -> None:
        for region, metric in self.region_metrics.items():
            if metric.update_count:
                self.log(f"test/acc_{region}", metric.compute())
            metric.reset()

    # ------------------------------------------------------------------ predict
    def predict_step(self, batch, batch_idx: int) -> list[tuple[int, list[str]]]:
        labels = self._require_meta().labels
        preds = self(batch["features"], batch["mask"]).argmax(-1)
        return [(int(i), [labels[t] for t in p[:int(n)].tolist()])
                for i, p, n in zip(batch["index"].tolist(), preds, batch["mask"].sum(1), strict=True)]

    def format_predictions(self, outputs: list[list[tuple[int, list[str]]]]) -> list[tuple[Path, str]]:
        """Per utterance: ``<id>.frames`` (frame t on line t+1) and ``<id>.PHN`` (segments in audio samples)."""
        dm = self.datamodule()
        if dm is None or not hasattr(dm, "output_path"):
            return []
        out, cfg = self.prediction_path(dm.predict_output, dm.output_path().name), self._require_meta().features
        files = []
        for index, labels in sorted((item for batch in outputs for item in batch), key=lambda item: item[0]):
            p = dm.item("predict", index)
            segments = merge_frames(labels, cfg, p.audio_rate, p.num_samples)
            files.append((out / f"{p.utt.id}.frames", "\n".join(labels) + "\n"))
            files.append((out / f"{p.utt.id}.PHN", "".join(f"{s} {e} {lab}\n" for s, e, lab in segments)))
        return files

    def predict_items(self, items: list[Any]) -> list[list[str]]:
        """Audio paths or waveforms -> one phone label per frame of each."""
        features, mask = self.item_features(items)
        labels = self._require_meta().labels
        preds = self(features, mask).argmax(-1)
        return [[labels[t] for t in p[:int(n)].tolist()] for p, n in zip(preds, mask.sum(1), strict=True)]

    # ------------------------------------------------------------------ streaming
    @torch.no_grad()
    def stream(self, chunks: Iterable[Tensor]) -> Iterator[Tensor]:
        """Normalised feature chunks (C, F) of one recording -> (n, num_phones) logits of the next n frames, as
        soon as they are final; concatenated, they equal one offline pass.

        Lookahead (latency): ``input_context + depth · right`` frames. Cached between chunks: ``2·input_context``
        input frames and, per encoder block, ``left + right`` vectors (see ``core.streaming``)."""
        self._require_meta()
        if self.encoder is None or not isinstance(self.pattern, Truncated):
            raise ValueError("streaming needs model.backbone: attention with a core.Truncated pattern "
                             f"(bounded context), got backbone={self.encoder_kind!r}, pattern={self.pattern!r}")
        was_training = self.training
        self.eval()
        try:
            streamer = StreamingEncoder(self.encoder, self.pattern)
            context = self.input_context
            spliced = WindowedStream(lambda c: splice(c.T[None], c.new_ones(1, c.size(1), dtype=torch.bool),
                                                      context)[0].T, context) if context else None
            for chunk in _and_end(chunks):
                final = chunk is None
                x = self.input.weight.new_zeros(0, self.meta.features.dim) if final else chunk.to(self.input.weight)
                if spliced is not None:  # the input layer's ±context frames stream too
                    x = spliced.push(x.T, final).T
                    x = x if x.size(0) else x.new_zeros(0, self.input.in_features)
                h = streamer.push(self.input(x[None]), final)
                if h.size(1):
                    yield self.head(h)[0]
        finally:
            self.train(was_training)

    def stream_file(self, path: str | Path, seconds: float = 1.0) -> Iterator[Tensor]:
        """Logits of an audio file read ``seconds`` at a time: audio, features and encoder all stream, so
        memory does not grow with the recording. Needs ``normalize: global`` (or none) features and audio at
        the model's sample rate (per-utterance statistics or resampling would need the whole recording)."""
        meta = self._require_meta()
        cfg = meta.features
        if cfg.normalize == "utterance":
            raise ValueError("stream_file: features normalised per utterance need the whole recording; train with "
                             "data.features.normalize: global to stream audio (or stream() precomputed features)")
        features = FeatureStream(FeatureExtractor(cfg))

        def chunks() -> Iterator[Tensor]:
            for block, rate in iter_blocks(Path(path), seconds):
                if rate != cfg.sample_rate:
                    raise ValueError(f"{path}: {rate} Hz audio, the model expects {cfg.sample_rate} Hz; resample "
                                     "it first (streaming does not resample)")
                yield meta.normalise(features.push(block))
            yield meta.normalise(features.flush())

        yield from self.stream(chunks())


class UtteranceClassifier(SpeechModule):
    """One label per recording (spoken digits, keywords): the encoder, then ``pooling`` -> linear head.

    ``pooling: attention`` is a learned query per head over the frames (``core.AttentionPooling``, ``pool_heads``);
    ``mean`` averages the real frames. Shared options (``encoder``, ``pattern``, ...): see
    ``SpeechModule.__init__``. ``predict`` writes ``id<TAB>label<TAB>probability`` lines to
    ``data.predict_output``.

    Args:
        pooling: attention (a learned query per head over the frames) or mean (of the real frames)
        pool_heads: heads of the attention pooling
    """

    def __init__(
        self,
        pooling: Literal["attention", "mean"] = "attention",
        pool_heads: int = 4,
        **shared: Any,
    ) -> None:
        super().__init__(**shared)
        if pooling not in ("attention", "mean"):
            raise ValueError(f"model.pooling must be 'attention' or 'mean', got {pooling!r}")
        self.encoder = Encoder(self.encoder_config)
        self.pool = AttentionPooling(self.dim, pool_heads) if pooling == "attention" else None
        self.head: nn.Linear | None = None

    def build(self, meta: SpeechMeta) -> None:
        self.input = nn.Linear(meta.features.dim * (2 * self.input_context + 1), self.dim)
        self.head = nn.Linear(self.dim, len(meta.labels))
        self.setup_metrics({"acc": MulticlassAccuracy(len(meta.labels), average="micro")})

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        """(B, T, F), (B, T) -> (B, num_classes) logits."""
        self._require_meta()
        x = self.encode(features, mask)
        if self.pool is not None:
            pooled = self.pool(x, mask)
        else:
            pooled = masked_mean(x, mask)
        return self.head(self.drop(pooled))

    def shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        logits = self(batch["features"], batch["mask"])
        labels = batch["labels"]
        smoothing = self.label_smoothing if stage == "train" else 0.0
        loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        self.log_step(stage, loss, logits.argmax(-1), labels, batch_size=labels.size(0))
        return loss

    def predict_step(self, batch, batch_idx: int) -> list[tuple[int, str, float]]:
        labels = self._require_meta().labels
        probs = self(batch["features"], batch["mask"]).softmax(-1)
        best, ids = probs.max(-1)
        return [(int(i), labels[k], float(p)) for i, k, p in zip(batch["index"].tolist(), ids.tolist(),
                                                                   best.tolist(), strict=True)]

    def predict_items(self, items: list[Any]) -> list[tuple[str, float]]:
        """Audio paths or waveforms -> (label, probability) each."""
        features, mask = self.item_features(items)
        labels = self._require_meta().labels
        prob, index = self(features, mask).softmax(-1).max(-1)
        return [(labels[i], p) for i, p in zip(index.tolist(), prob.tolist(), strict=True)]

    def format_predictions(self, outputs: list[list[tuple[int, str, float]]]) -> list[tuple[Path, str]]:
        """``id, label, probability`` per recording, one TSV file."""
        dm = self.datamodule()
        if dm is None or not hasattr(dm, "output_path"):
            return []
        rows = [f"{dm.item('predict', i).utt.id}\t{lab}\t{p:.4f}\n"
                for i, lab, p in sorted((item for batch in outputs for item in batch), key=lambda item: item[0])]
        out = self.prediction_path(dm.predict_output, dm.output_path().name)
        return [(out, "id\tlabel\tprobability\n" + "".join(rows))]
