"""Part-of-speech tagging: word + character + shape features -> positions -> core.Encoder (Full) -> per-word tags.

``encoder: attention`` is the self-attention tagger; ``encoder: bilstm`` swaps the encoder for a
``torch.nn.LSTM`` with the same features, head, loss and training loop, for the lecture's comparison.
The vocabularies come from the datamodule when training and travel inside every checkpoint, so a
checkpoint alone can tag text (``Tagger.load_from_checkpoint(path).tag([...])``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn
from torch.export import Dim
from torchmetrics.classification import MulticlassAccuracy

from core import EdgeMask, Encoder, EncoderConfig, Full, LearnedPositions, Neighborhood2D, Pattern, sinusoidal_positions
from datamodules.pos import IGNORE, WORD_INPUTS, PosVocab, collate

from .base import AttnLabModule, OptimConfig, ThroughputClock
from .export import ExportSpec
from .plotting import first_batch_with_length
from .pos_features import WordFeatures
from .pos_figures import draw_tagger
from .pos_heads import ColumnHeads, FeatsHead, best_real_ids
from .reports import per_class, summary


def window_starts(length: int, window: int) -> list[int]:
    """Starts of windows of ``window`` tokens covering ``length`` tokens, overlapping by half a window."""
    if length <= window:
        return [0]
    stride = max(1, window // 2)
    starts = list(range(0, length - window, stride))
    return starts + [length - window]


def window_owners(starts: list[int], window: int, length: int) -> Tensor:
    """(length,) index of the window each token takes its output from: the one it is most central in."""
    bounds = [(a + b + window) // 2 for a, b in zip(starts, starts[1:], strict=False)]  # between centres
    return torch.bucketize(torch.arange(length), torch.tensor(bounds, dtype=torch.long), right=True)


# the Tagger's default encoder: relative positions up to ±16 words
TAGGER_ENCODER = EncoderConfig(dim=128, depth=2, num_heads=4, dropout=0.1, position="relative",
                               max_relative_distance=16)


class Tagger(AttnLabModule):
    """Tag every word of a sentence. Batches: dicts from ``datamodules.pos`` (words, chars, shapes, mask, tags).

    Longer sentences than ``max_len`` are tagged in windows overlapping by half (each word keeps the output of
    the window it is most central in), never truncated. Fine-tuning keeps ``init_from``'s vocabularies (see
    ``AttnLabModule``). ``aux_weight``: the finer tags (VBD/VBN/VBG, NN/NNS) teach the shared encoder more per word.

    Args:
        encoder: the attention encoder (core.EncoderConfig; relative positions by default)
        position: sinusoidal|learned added to the word vectors, or none: only encoder.position (inside attention)
        pattern: which words each word attends to (a 1-D core pattern: Full, Truncated, Longformer, BigBird, ...)
        max_len: the longest window of words the attention encoder sees at once
        backbone: attention or bilstm (uses encoder.dim and encoder.dropout, and lstm_layers)
        lstm_layers: layers of the bilstm backbone
        word_dim: size of the word embedding
        char_dim: size of the character embedding
        char_channels: filters of each character convolution (or the character LSTM's width)
        char_kernel: width of the character convolution, or a list of widths (one convolution each)
        char_encoder: cnn (max over the word) or bilstm (the spelling read in both directions)
        suffix_dim: embed the word's endings (data.max_suffix) into this many numbers; 0 = off
        stem_dim: embed each training lemma the word begins with (data.max_stems) into this many numbers; 0 = off
        aux_weight: weight of a second head's loss on data.aux_tagset's tags (training only); 0 = off
        columns_weight: weight of the losses of the other predicted columns (data.columns: xpos, feats)
        feats_head: FEATS as one class per whole string (whole) or one classifier per feature (factored); see
            ``apps.pos_heads``
        word_dropout: probability of replacing a training word by <unk> (teaches the unknown-word path)
        word_dropout_by: uniform (every word alike) or frequency (α / (α + count), α = word_dropout: rare words
            more often); see ``WordFeatures``
        label_smoothing: of the training cross-entropy
    """

    monitor = "val/acc"
    monitor_mode = "max"
    data_state_key = "pos_vocab"  # word, character, ending and tag vocabularies of the training treebank
    data_state_attr = "vocab"
    keep_init_data_state = True  # fine-tuning keeps the source's vocabularies (its embeddings index them)
    head_prefixes = ("head.", "aux_head.", "column_heads.")

    def __init__(
        self,
        encoder: EncoderConfig = TAGGER_ENCODER,
        position: Literal["sinusoidal", "learned", "none"] = "none",
        pattern: Pattern = Full(),
        max_len: int = 256,
        backbone: Literal["attention", "bilstm"] = "attention",
        lstm_layers: int = 2,
        word_dim: int = 100,
        char_dim: int = 32,
        char_channels: int = 100,
        char_kernel: int | list[int] = 3,
        char_encoder: Literal["cnn", "bilstm"] = "cnn",
        suffix_dim: int = 0,
        stem_dim: int = 0,
        aux_weight: float = 0.0,
        columns_weight: float = 1.0,
        feats_head: FeatsHead = "whole",
        word_dropout: float = 0.1,
        word_dropout_by: Literal["uniform", "frequency"] = "uniform",
        label_smoothing: float = 0.0,
        init_from: str | None = None,
        freeze: str | list[str] | None = None,
        head_lr_scale: float = 1.0,
        backbone_lr_scale: float = 1.0,
        optim: OptimConfig | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__(optim=optim, compile=compile, init_from=init_from, freeze=freeze,
                         head_lr_scale=head_lr_scale, backbone_lr_scale=backbone_lr_scale)
        self.save_hyperparameters()
        if position not in ("sinusoidal", "learned", "none"):
            raise ValueError(f"model.position must be sinusoidal, learned or none, got {position!r} (positions "
                             "inside attention: model.encoder.position relative|rotary)")
        if isinstance(pattern, (EdgeMask, Neighborhood2D)):
            raise ValueError(f"model.pattern must be a pattern over the words of a sentence (Full, Truncated, "
                             f"Longformer, BigBird, Strided, ...), got {type(pattern).__name__}")
        self.pattern = pattern
        if backbone not in ("attention", "bilstm"):
            raise ValueError(f"model.backbone must be 'attention' or 'bilstm', got {backbone!r}")
        if word_dropout_by not in ("uniform", "frequency"):
            raise ValueError(f"model.word_dropout_by must be 'uniform' or 'frequency', got {word_dropout_by!r}")
        if not 0 <= word_dropout <= 1 and word_dropout_by == "uniform":
            raise ValueError(f"model.word_dropout must be a probability in [0, 1], got {word_dropout}")
        if word_dropout < 0:
            raise ValueError(f"model.word_dropout must be >= 0 (α of word_dropout_by: frequency), got {word_dropout}")
        if char_encoder not in ("cnn", "bilstm"):
            raise ValueError(f"model.char_encoder must be 'cnn' or 'bilstm', got {char_encoder!r}")
        if aux_weight < 0:
            raise ValueError(f"model.aux_weight must be >= 0, got {aux_weight}")
        if suffix_dim < 0 or stem_dim < 0:
            raise ValueError(f"model.suffix_dim and model.stem_dim must be >= 0, got {suffix_dim} and {stem_dim}")
        if max_len < 2:
            raise ValueError(f"model.max_len must be >= 2, got {max_len}")
        self.position, self.max_len, self.encoder_kind, self.init_from = position, max_len, backbone, init_from
        self.encoder_config = encoder
        dim, dropout = encoder.dim, encoder.dropout
        self.drop = nn.Dropout(dropout)
        self.learned_positions = None
        self.lstm = None
        if backbone == "attention":
            if position == "learned":
                self.learned_positions = LearnedPositions(max_len, dim)
            self.encoder = Encoder(encoder)
        else:
            if dim % 2:
                raise ValueError(f"model.encoder.dim must be even for the bilstm backbone (dim/2 per direction), "
                                 f"got {dim}")
            self.lstm = nn.LSTM(dim, dim // 2, num_layers=lstm_layers, bidirectional=True, batch_first=True,
                                dropout=dropout if lstm_layers > 1 else 0.0)
            self.lstm_norm = nn.LayerNorm(dim)
        self.vocab: PosVocab | None = None
        self.features: WordFeatures | None = None
        self.head: nn.Linear | None = None
        self.aux_head: nn.Linear | None = None
        self.column_heads: ColumnHeads | None = None
        self._clock = ThroughputClock()
        self._unknown_tokens = 0.0

    # ------------------------------------------------------------------ vocabulary (model <-> datamodule)
    def set_vocab(self, vocab: PosVocab) -> None:
        """Build the vocabulary-sized layers (embeddings, head, metrics) for ``vocab``; no-op if unchanged."""
        self.set_data_state(vocab)

    def unpack_data_state(self, raw: dict[str, Any]) -> PosVocab:
        return PosVocab.from_dict(raw)

    def build_from_data(self, vocab: PosVocab) -> None:
        h, dim = self.hparams, self.encoder_config.dim
        self.features = WordFeatures(vocab, dim, h.word_dim, h.char_dim, h.char_channels, h.char_kernel,
                                     self.encoder_config.dropout, h.word_dropout, h.get("char_encoder", "cnn"),
                                     h.get("suffix_dim", 0), h.get("word_dropout_by", "uniform"),
                                     h.get("stem_dim", 0))
        self.head = nn.Linear(dim, len(vocab.tags))
        if h.get("suffix_dim", 0) > 0 and self.features.suffixes is None:
            rank_zero_warn("model.suffix_dim > 0 but the vocabulary has no word endings (data.max_suffix: 0, or a "
                           "vocabulary saved before endings existed): the tagger runs without them")
        if h.get("stem_dim", 0) > 0 and self.features.stems is None:
            rank_zero_warn("model.stem_dim > 0 but the vocabulary has no lemma stems (data.max_stems: 0, or no "
                           "LEMMA column in the training data): the tagger runs without them")
        if h.get("aux_weight", 0.0) > 0:
            if vocab.aux_tagset is None:
                raise ValueError("model.aux_weight > 0 needs tags of a second column: set data.aux_tagset "
                                 "(e.g. xpos while data.tagset is upos)")
            self.aux_head = nn.Linear(dim, len(vocab.aux_tags))
        self.column_heads = ColumnHeads(vocab, dim, h.get("feats_head", "whole")) if vocab.columns else None
        num_tags = len(vocab.tags)
        self.setup_metrics({"acc": MulticlassAccuracy(num_tags, average="micro", ignore_index=IGNORE)})
        self.report_metrics = nn.ModuleDict({  # per-tag P/R/F1 come from the shared report (apps.reports)
            "acc_known": MulticlassAccuracy(num_tags, average="micro", ignore_index=IGNORE),
            "acc_unknown": MulticlassAccuracy(num_tags, average="micro", ignore_index=IGNORE),
        })

    def setup(self, stage: str) -> None:
        """fit: the vocabulary of ``init_from`` (when it has one), else the datamodule's (built from train).
        Either way the datamodule encodes with the tagger's vocabulary. test/predict: the checkpoint brings it.
        The weights of ``init_from`` are loaded afterwards, by ``AttnLabModule.prepare_fine_tuning``."""
        self.setup_data_state(stage)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("state_dict", {})
        for name in [k for k in state if ".chars.conv." in k]:  # single-width CharCNN of earlier checkpoints
            state[name.replace(".chars.conv.", ".chars.convs.0.")] = state.pop(name)
        super().on_load_checkpoint(checkpoint)

    # ------------------------------------------------------------------ model
    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """A batch dict -> (B, L, num_tags) logits."""
        return self.head(self.hidden(batch))

    def hidden(self, batch: dict[str, Tensor]) -> Tensor:
        """A batch dict -> (B, L, dim) encoder output (after dropout), what the tag heads read."""
        if self.features is None:
            raise RuntimeError("Tagger has no vocabulary yet: train it (attnlab fit) or load a checkpoint")
        mask = batch["mask"]
        x = self.drop(self.features.embed(batch))
        x = self._encode_lstm(x, mask) if self.lstm is not None else self._encode_windows(x, mask)
        return self.drop(x)

    def _encode(self, x: Tensor, mask: Tensor, return_weights: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        if self.position == "sinusoidal":
            x = x + sinusoidal_positions(x.size(1), x.size(-1), device=x.device).to(x.dtype)
        elif self.learned_positions is not None:
            x = x + self.learned_positions(x.size(1))
        return self.encoder(x, pattern=self.pattern, padding_mask=mask, return_weights=return_weights)

    def _encode_windows(self, x: Tensor, mask: Tensor) -> Tensor:
        """The encoder over windows of ``max_len`` tokens when the batch is longer (see the class doc)."""
        length = x.size(1)
        if length <= self.max_len:
            return self._encode(x, mask)
        starts = window_starts(length, self.max_len)
        span = torch.arange(self.max_len, device=x.device)
        idx = torch.tensor(starts, device=x.device)[:, None] + span  # (W, max_len)
        batch, windows = x.size(0), len(starts)
        xs = x[:, idx].flatten(0, 1)  # (B·W, max_len, dim)
        ms = mask[:, idx].flatten(0, 1)
        out = self._encode(xs, ms).view(batch, windows, self.max_len, -1)
        owner = window_owners(starts, self.max_len, length).to(x.device)  # (L,)
        offset = torch.arange(length, device=x.device) - torch.tensor(starts, device=x.device)[owner]
        return out[:, owner, offset]

    def _encode_lstm(self, x: Tensor, mask: Tensor) -> Tensor:
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return self.lstm_norm(out)

    # ------------------------------------------------------------------ steps
    def _step(self, batch: dict[str, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        hidden = self.hidden(batch)
        logits = self.head(hidden)
        tags = batch["tags"]
        smoothing = self.hparams.label_smoothing if stage == "train" else 0.0
        loss = F.cross_entropy(logits.flatten(0, 1), tags.flatten(), ignore_index=IGNORE, label_smoothing=smoothing)
        if stage == "train" and self.aux_head is not None and bool((batch["aux_tags"] != IGNORE).any()):
            aux = F.cross_entropy(self.aux_head(hidden).flatten(0, 1), batch["aux_tags"].flatten(),
                                  ignore_index=IGNORE, label_smoothing=smoothing)
            self.log("train/aux_loss", aux, batch_size=int(batch["mask"].sum()))
            loss = loss + self.hparams.aux_weight * aux
        if self.column_heads is not None:  # xpos / feats heads: trained with the main one, accuracy per column
            columns = self.column_heads.logits(hidden)
            loss = loss + self.hparams.get("columns_weight", 1.0) * self.column_heads.loss(columns, batch, smoothing)
            for name, (right, counted) in self.column_heads.correct(columns, batch).items():
                if int(counted):  # words-weighted over the epoch: the micro accuracy of the split
                    self.log(f"{stage}/{name}", right.float() / counted, on_step=False, on_epoch=True,
                             batch_size=int(counted), prog_bar=stage == "val")
        mask = batch["mask"]
        preds = best_real_ids(logits)  # what predict writes: <pad>/<unk> never, so test agrees with the scorer
        self.log_step(stage, loss, preds[mask], tags[mask], batch_size=int(mask.sum()))
        return loss, preds

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        self._clock.start("train")

    def shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        return self._step(batch, stage)[0]

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self._clock.stop("train", batch["mask"].sum())  # forward, backward and optimizer step

    def on_train_epoch_end(self) -> None:
        self.log("train/tokens_per_s", self._clock.rate("train"))

    def on_test_epoch_start(self) -> None:
        for metric in self.report_metrics.values():
            metric.reset()

    def test_step(self, batch, batch_idx: int) -> None:
        self._clock.start("test")
        _, preds = self._step(batch, "test")
        self._clock.stop("test", batch["mask"].sum())
        mask, tags, known = batch["mask"], batch["tags"], batch["known"]
        for name, where in (("acc_known", mask & known), ("acc_unknown", mask & ~known)):
            if bool(where.any()):  # torchmetrics refuses an empty update (a batch without unknown words)
                self.report_metrics[name].update(preds[where], tags[where])
        self._unknown_tokens += float((mask & ~known).sum())

    def on_test_epoch_end(self) -> None:
        """Log known/unknown-word accuracy (unknown: only when the test set has unknown words), macro F1 and per-tag
        F1 (from the shared per-class report, ``apps.reports``, which also writes them next to the metrics)."""
        tokens, unknown = self._clock.items.get("test", 0.0), self._unknown_tokens
        self._unknown_tokens = 0.0
        report: dict[str, Any] = {"tokens": int(tokens), "unknown_tokens": int(unknown),
                                  "tokens_per_s": self._clock.rate("test")}
        for name in ("acc_known", "acc_unknown"):
            metric = self.report_metrics[name]
            report[name] = float(metric.compute()) if metric.update_count else None
        confusion = self.test_confusion
        rows = per_class(confusion.compute(), self.vocab.tag_names) if confusion.update_count else {}
        report["f1_macro"] = summary(rows).get("macro_f1", 0.0)
        logged = {"test/unknown_rate": unknown / max(1.0, tokens), "test/f1_macro": report["f1_macro"],
                  "test/tokens_per_s": report["tokens_per_s"]}
        logged.update({f"test/{k}": report[k] for k in ("acc_known", "acc_unknown") if report[k] is not None})
        self.log_dict(logged)
        self.log_dict({f"test/f1/{tag}": row["f1"] for tag, row in rows.items()})
        self.test_report = report
        known = "n/a" if report["acc_known"] is None else f"{report['acc_known']:.4f}"
        unknown_acc = "n/a" if report["acc_unknown"] is None else f"{report['acc_unknown']:.4f}"
        rank_zero_info(f"known-word acc {known}, unknown-word acc {unknown_acc} ({report['unknown_tokens']} of "
                       f"{report['tokens']} words unknown), {report['tokens_per_s']:.0f} tokens/s")

    def class_names(self) -> list[str] | None:
        return self.vocab.tag_names if self.vocab is not None else None

    def report_extras(self) -> dict[str, Any]:
        """Known/unknown-word accuracy, word counts and tokens/s of the test (``on_test_epoch_end``)."""
        return dict(getattr(self, "test_report", {}))

    # ------------------------------------------------------------------ predict
    best_tags = staticmethod(best_real_ids)  # the most likely real tag per word, never <pad>/<unk>

    def predict_step(self, batch, batch_idx: int) -> list[tuple[int, dict[str, list[str]]]]:
        """Per sentence: its index and ``{column: values}`` of every predicted column (the tag column first)."""
        hidden = self.hidden(batch)
        lengths = batch["mask"].sum(1).tolist()
        names = self.vocab.tags.itos
        predicted = {self.vocab.tagset: [[names[t] for t in row[:n]]
                                         for row, n in zip(self.best_tags(self.head(hidden)).tolist(), lengths,
                                                           strict=True)]}
        if self.column_heads is not None:
            predicted.update(self.column_heads.best_values(self.column_heads.logits(hidden), lengths))
        return [(int(i), {name: values[row] for name, values in predicted.items()})
                for row, i in enumerate(batch["index"].tolist())]

    def format_predictions(self, outputs: list[list[tuple[int, dict[str, list[str]]]]]) -> list[tuple[Path, str]]:
        """The predict input written back as CoNLL-U with every predicted column filled (path:
        data.predict_output); columns without a head stay ``_`` (or as read, with data.keep_columns)."""
        dm = self.datamodule()
        if dm is None or not hasattr(dm, "render_predictions"):
            return []
        predicted = dict(item for batch in outputs for item in batch)
        out = self.prediction_path(dm.predict_output, dm.output_path().name)
        return [(out, dm.render_predictions(predicted, self.vocab.tagset))]

    def export_example(self, batch: int = 2, length: int = 12) -> ExportSpec:
        """``forward(batch)`` on a dict of encoded sentences (``datamodules.pos.collate`` of ``vocab.encode``):
        sentences, words and characters per word are dynamic, up to ``max_len`` words (no windows)."""
        if self.vocab is None or self.lstm is not None:
            raise ValueError("export: the tagger needs a vocabulary and backbone: attention (the BiLSTM's packed "
                             "sequences do not trace)")
        generator = torch.Generator().manual_seed(batch * 31 + length)
        words = self.vocab.words.itos[2:] or ["word"]
        picks = torch.randint(0, len(words), (batch, length), generator=generator).tolist()
        sentences = [[words[i] for i in row[: length - (k % 2) * (length // 2)]] for k, row in enumerate(picks)]
        encoded = collate([(i, self.vocab.encode(s)) for i, s in enumerate(sentences)])
        inputs = {k: encoded[k] for k in (*WORD_INPUTS, "mask") if k in encoded}
        dims = {k: {d: Dim.DYNAMIC if d < 2 else Dim.AUTO for d in range(v.dim())} for k, v in inputs.items()}
        notes = {"inputs": "batch: dict of words, shapes, mask (B, L), chars (B, L, C) and, with word endings, "
                           "suffixes (B, L, S) and, with lemma stems, stems (B, L, M): datamodules.pos.collate of "
                           "pos_vocab.encode(sentence)",
                 "outputs": "logits (B, L, tags); tag names: pos_vocab tags (ids 0, 1: <pad>, <unk>)"}
        return ExportSpec(self, (inputs,), {"batch": dims}, notes)

    # ------------------------------------------------------------------ explain
    def explain_batch(self, loader: Any) -> dict[str, Tensor]:
        return first_batch_with_length(loader)

    def explain_figures(self, batch: dict[str, Tensor], out: Path, example: int) -> list[Path]:
        return draw_tagger(self, self.datamodule(), batch, out, example)

    def predict_items(self, items: list[str | list[str]]) -> list[list[str]]:
        """Sentences (strings split at whitespace, or token lists) -> their tags (``tag``)."""
        return self.tag([s.split() if isinstance(s, str) else list(s) for s in items])

    @torch.no_grad()
    def tag(self, sentences: list[list[str]], batch_size: int = 64) -> list[list[str]]:
        """Tag already tokenised sentences with this model (no trainer needed)."""
        if self.vocab is None:
            raise RuntimeError("Tagger has no vocabulary yet: train it (attnlab fit) or load a checkpoint")
        was_training = self.training
        self.eval()
        names, result = self.vocab.tag_names, []
        try:
            for b in range(0, len(sentences), batch_size):
                chunk = sentences[b:b + batch_size]
                batch = collate([(i, self.vocab.encode(s)) for i, s in enumerate(chunk)])
                batch = {k: v.to(self.device) for k, v in batch.items()}
                preds = self.best_tags(self(batch)).tolist()
                result += [[names[t] for t in p[:len(s)]] for p, s in zip(preds, chunk, strict=True)]
        finally:
            self.train(was_training)
        return result
