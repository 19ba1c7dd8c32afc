"""``AttnLabModule``: what every app shares — optimiser + schedule, optional compile, metric logging.

Apps subclass it, build ``self.encoder`` (a ``core.Encoder``) and call ``self.log_step`` from their
``*_step`` methods. The CLI reads ``monitor`` / ``monitor_mode`` to configure checkpointing.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.model_helpers import _restricted_classmethod
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection

from core import Causal, Full, LearnedPositions, RelativePositionBias, Truncated
from core.errors import CheckpointError

from .checkpoint_io import read_checkpoint
from .data_state import DataStateMixin
from .options import init_params, with_shared_args
from .predictions import PredictionWriter
from .reports import ClassReportMixin, ClassReportWriter
from .runs import write_atomic
from .upgrade import upgraded_checkpoint

STAGES = ("train", "val", "test")


@dataclass
class OptimConfig:
    """AdamW + per-step LR schedule: linear warmup, then cosine decay to ``min_lr_ratio * lr`` (or constant).

    Warmup is either ``warmup_steps`` or ``warmup_ratio`` of all training steps, not both.
    ``optimizer: adam`` is Adam with L2 regularisation coupled into the gradient (``weight_decay`` as in
    the GCN/GAT papers' recipes) instead of AdamW's decoupled decay.
    """

    optimizer: Literal["adamw", "adam"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    scheduler: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.warmup_steps and self.warmup_ratio:
            raise ValueError(f"OptimConfig: set warmup_steps ({self.warmup_steps}) or warmup_ratio "
                             f"({self.warmup_ratio}), not both")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"OptimConfig: warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"OptimConfig: min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")

    def warmup_for(self, total_steps: int) -> int:
        return self.warmup_steps or int(self.warmup_ratio * total_steps)


# Hyperparameters saved by apps built in Python (the CLI saves plain config dicts instead) may hold these;
# allow them so such checkpoints load under torch.load's weights_only default.
torch.serialization.add_safe_globals([OptimConfig, Full, Causal, Truncated])


class ThroughputClock:
    """Items per second of the batches between ``start(key)`` and ``stop(key, items)`` (forward, backward and
    optimizer step when called from the train batch hooks; data loading excluded), summed until ``rate(key)``
    reads and resets them. One clock for every app that reports tokens/s or frames/s."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._seconds: dict[str, float] = {}
        self.items: dict[str, float] = {}

    def start(self, key: str) -> None:
        self._started[key] = time.perf_counter()

    def stop(self, key: str, items: float) -> None:
        began = self._started.pop(key, None)
        if began is not None:
            self._seconds[key] = self._seconds.get(key, 0.0) + time.perf_counter() - began
        self.items[key] = self.items.get(key, 0.0) + float(items)

    def rate(self, key: str) -> float:
        seconds, items = self._seconds.pop(key, 0.0), self.items.pop(key, 0.0)
        return items / seconds if seconds > 0 else 0.0


def lr_factor(
    step: int,
    *,
    warmup_steps: int,
    total_steps: int,
    scheduler: Literal["cosine", "constant"] = "cosine",
    min_lr_ratio: float = 0.0,
) -> float:
    """Multiplier of the base LR at optimizer step ``step`` (0-based).

    Warmup rises linearly to 1 over ``warmup_steps`` steps (1/w, 2/w, ..., 1) so no step is spent at LR 0;
    cosine then falls from 1 at step ``warmup_steps`` to ``min_lr_ratio`` at ``total_steps``, and stays there.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if scheduler == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class AttnLabModule(DataStateMixin, ClassReportMixin, L.LightningModule):
    """Base class of every attnlab app.

    ``monitor`` / ``monitor_mode``: the metric the CLI's default ModelCheckpoint keeps the best of.
    ``app_name``: the folder under ``runs/``; defaults to the lower-cased class name.
    No weight decay (it would pull lookup tables and gains towards 0) for: parameters with ndim < 2
    (biases, norms), parameters of ``no_decay_modules`` (embeddings, positional tables), and
    parameters whose own name contains one of ``no_decay_keywords`` (e.g. ``pos_embed``, ``cls_token``).

    Fine-tuning, the same for every app (applied when a fit starts, after ``setup`` built the model):
    ``init_from`` (a checkpoint of ours, or a bare state dict: every weight whose name and shape match is
    loaded, the rest reported), ``freeze`` ("backbone" = everything but the head and what init_from could not
    load, or fnmatch patterns of parameter names), ``head_lr_scale`` / ``backbone_lr_scale`` (multipliers of
    ``optim.lr``; the head is ``head_prefixes`` plus the parameters init_from could not load, e.g. a new input
    projection). Apps adapt a source state dict (``adapt_state``) or read other sources (``read_init_source``).
    """

    monitor: str | None = "val/acc"
    monitor_mode: Literal["min", "max"] = "max"
    app_name: str | None = None
    no_decay_modules: tuple[type[nn.Module], ...] = (nn.Embedding, LearnedPositions, RelativePositionBias)
    no_decay_keywords: tuple[str, ...] = ("pos", "embed", "token")
    head_prefixes: tuple[str, ...] = ("head.",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Each app's docstring gets the "Args:" lines of the shared options (``apps.options``: ``--help`` text)."""
        super().__init_subclass__(**kwargs)
        cls.__doc__ = with_shared_args(cls.__doc__, init_params(cls))

    def __init__(
        self,
        optim: OptimConfig | None = None,
        compile: bool = False,
        init_from: str | None = None,
        freeze: str | list[str] | None = None,
        head_lr_scale: float = 1.0,
        backbone_lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if head_lr_scale < 0 or backbone_lr_scale < 0:
            raise ValueError(f"model.head_lr_scale ({head_lr_scale}) and model.backbone_lr_scale "
                             f"({backbone_lr_scale}) must be >= 0")
        self.optim = optim or OptimConfig()
        self.compile_encoder = compile
        self._compiled = False
        self.init_from = init_from
        self.freeze_patterns = None if freeze in (None, "none", []) else freeze
        self.head_lr_scale, self.backbone_lr_scale = head_lr_scale, backbone_lr_scale
        self.init_report: dict[str, list[str]] | None = None
        self._fresh: set[str] = set()  # parameters init_from could not load: trained like the head
        self._frozen = False

    @_restricted_classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:
        """Lightning's ``load_from_checkpoint``; checkpoints saved before the encoder's options were grouped
        load too (their hyperparameters upgraded first, see ``apps.upgrade``)."""
        return super().load_from_checkpoint(upgraded_checkpoint(cls, checkpoint_path), *args, **kwargs)

    # ---------------------------------------------------------- predictions and pictures
    def configure_callbacks(self) -> list:
        """The prediction writer (every app's predictions are written by ``apps.predictions.PredictionWriter``,
        atomically, rank 0) and the test report writer (``apps.reports``: per-class P/R/F1 and a confusion
        picture next to the metrics), in whatever loop runs ``predict`` / ``test`` (CLI or Python)."""
        return [PredictionWriter(), ClassReportWriter()]

    def format_predictions(self, outputs: list[Any]) -> list[tuple[Path, str]]:
        """The files that the ``predict_step`` outputs of one predict run make: ``(path, text)`` pairs in the app's
        own format (CSV, CoNLL-U, .PHN, ...); the writer writes them. Default: no files (outputs are returned)."""
        return []

    def prediction_path(self, given: str | os.PathLike | None, default_name: str) -> Path:
        """Where a predict run writes: ``given`` (``data.predict_output``) when set, else ``default_name`` inside
        this run's folder (``<root>/<app>/version_N/``, made by the predict run's loggers; the working directory
        only without a logger), so predictions never land beside the user's files unasked."""
        if given:
            return Path(given)
        log_dir = self.trainer.log_dir if self._trainer is not None and self.trainer.logger is not None else None
        return Path(log_dir or ".") / default_name

    def explain_batch(self, loader: Any) -> Any:
        """The validation batch that ``attnlab explain`` draws (default: the first one)."""
        for batch in loader:
            return batch
        raise ValueError("explain: the validation loader is empty")

    def explain_figures(self, batch: Any, out: Path, example: int) -> list[Path]:
        """Draw this model's attention on ``batch`` into PNG files in ``out``; returns them (apps override)."""
        raise ValueError(f"explain: no pictures defined for {type(self).__name__}")

    def export_example(self, batch: int = 2, length: int = 12) -> Any:
        """What ``attnlab export`` traces: an ``apps.export.ExportSpec`` (module, example inputs of ``batch`` items
        of ``length`` positions, dynamic dimensions, notes on inputs and outputs). Apps that can be traced
        override it; calling it with other sizes gives inputs the export did not see (the round-trip test)."""
        raise ValueError(f"export: {type(self).__name__} cannot be exported (it defines no export_example)")

    def predict_items(self, items: list[Any]) -> list[Any]:
        """One result per item of a plain Python list (``apps.inference``: sentences, image paths, waveforms, ...);
        apps override it, the table in ``apps.inference`` says what each takes and returns."""
        raise ValueError(f"{type(self).__name__} defines no predict_items; use `attnlab predict`")

    # ---------------------------------------------------------------- steps
    def shared_step(self, batch: Any, stage: str) -> Tensor:
        """Loss of one batch at ``stage`` ("train", "val" or "test"), logged. The default train/val/test steps
        call it, so an app whose stages differ only in name writes this one method (apps override a step
        where a stage does more, e.g. mixup in training or a test report)."""
        raise NotImplementedError(f"{type(self).__name__} defines neither shared_step nor its own steps")

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self.shared_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.shared_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.shared_step(batch, "test")

    # ---------------------------------------------------------------- metrics
    def resolve_monitor(self, datamodule: object) -> None:
        """Settle ``monitor`` from the data before the CLI builds its checkpoint callback (apps whose metric
        depends on the data override this; the default keeps the class attribute)."""

    def setup_metrics(self, metrics: Metric | MetricCollection | dict[str, Metric]) -> None:
        """Give each stage its own copy of ``metrics`` (own state), logged as ``<stage>/<name>``."""
        if isinstance(metrics, Metric):
            metrics = {type(metrics).__name__.lower(): metrics}
        collection = metrics if isinstance(metrics, MetricCollection) else MetricCollection(metrics)
        for stage in STAGES:
            setattr(self, f"{stage}_metrics", collection.clone(prefix=f"{stage}/"))
        self.setup_class_report(collection)

    def log_step(
        self,
        stage: str,
        loss: Tensor,
        preds: Tensor | None = None,
        target: Tensor | None = None,
        batch_size: int | None = None,
    ) -> None:
        """Log ``<stage>/loss``, update and log the stage metrics (computed and reset per epoch)."""
        train = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=train, on_epoch=True, prog_bar=True,
                 batch_size=batch_size, sync_dist=not train)
        if stage == "test":
            self.update_class_report(preds, target, batch_size)
        metrics: MetricCollection | None = getattr(self, f"{stage}_metrics", None)
        if metrics is not None and preds is not None:
            metrics.update(preds, target)
            self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch_size)

    # ------------------------------------------------------------ optimiser
    def parameter_groups(self) -> list[dict]:
        """AdamW groups: with weight decay (matrices), without (biases, norms, embeddings, positions).

        The first two groups hold the parameters at the base learning rate; parameters for which
        ``lr_scale(name)`` is not 1 (layer-wise decay, a faster head) get groups of their own with
        ``lr = optim.lr * scale``. Frozen parameters (requires_grad False) are left out.
        """
        groups: dict[tuple[bool, float], list] = {(True, 1.0): [], (False, 1.0): []}
        seen: set[int] = set()
        for module_name, module in self.named_modules():
            for name, param in module.named_parameters(recurse=False):
                if not param.requires_grad or id(param) in seen:
                    continue
                seen.add(id(param))
                skip = (
                    param.ndim < 2
                    or isinstance(module, self.no_decay_modules)
                    or any(k in name for k in self.no_decay_keywords)
                )
                scale = float(self.lr_scale(f"{module_name}.{name}" if module_name else name))
                groups.setdefault((not skip, scale), []).append(param)
        return [
            {"params": params, "weight_decay": self.optim.weight_decay if decay else 0.0,
             **({"lr": self.optim.lr * scale} if scale != 1.0 else {})}
            for (decay, scale), params in groups.items()
            if params or scale == 1.0
        ]

    def lr_scale(self, name: str) -> float:
        """Multiplier of the learning rate for parameter ``name``: ``head_lr_scale`` for the head (and what
        init_from could not load), ``backbone_lr_scale`` for the rest (apps refine it, e.g. layer-wise decay)."""
        return self.head_lr_scale if self.is_head(name) else self.backbone_lr_scale

    def is_head(self, name: str) -> bool:
        """Whether parameter ``name`` belongs to the task head: under ``head_prefixes`` or new after init_from."""
        return name.startswith(self.head_prefixes) or name in self._fresh

    def freeze(self, patterns: str | list[str], exclude: tuple[str, ...] = ()) -> list[str]:
        """Stop training the parameters whose name matches a pattern (fnmatch, e.g. ``encoder.*``), except names
        starting with an ``exclude`` prefix; returns the frozen names.

        A pattern that matches nothing is an error that lists the top-level modules, so a typo is not silently
        ignored."""
        patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        names = [n for n, _ in self.named_parameters() if not n.startswith(exclude)]
        frozen = []
        for pattern in patterns:
            hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                tops = sorted({n.split(".")[0] for n in names})
                raise ValueError(f"freeze: pattern {pattern!r} matches no parameter of {type(self).__name__}; "
                                 f"parameter names start with {tops}")
            frozen += hits
        params = dict(self.named_parameters())
        for n in frozen:
            params[n].requires_grad_(False)
        if frozen:
            rank_zero_info(f"freeze: {len(set(frozen))} of {len(params)} parameter tensors frozen ({patterns}"
                           f"{f', except {list(exclude)}' if exclude else ''})")
        return sorted(set(frozen))

    def configure_optimizers(self):
        cfg = self.optim
        if cfg.optimizer not in ("adamw", "adam"):
            raise ValueError(f"model.optim.optimizer must be 'adamw' or 'adam', got {cfg.optimizer!r}")
        kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        optimizer = kind(self.parameter_groups(), lr=cfg.lr, betas=cfg.betas)
        total = self.trainer.estimated_stepping_batches
        if cfg.scheduler == "cosine" and not math.isfinite(total):
            raise ValueError(
                "optim.scheduler='cosine' needs a finite training length: set trainer.max_epochs or "
                "trainer.max_steps, or use optim.scheduler='constant'"
            )
        total = int(total) if math.isfinite(total) else 0
        warmup = cfg.warmup_for(total)

        def factor(step: int) -> float:
            return lr_factor(step, warmup_steps=warmup, total_steps=total, scheduler=cfg.scheduler,
                             min_lr_ratio=cfg.min_lr_ratio)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ---------------------------------------------------------- init_from
    def read_init_source(self, source: str) -> Mapping[str, Tensor]:
        """The state dict behind ``init_from``: our checkpoint or a bare state dict (apps add other sources)."""
        checkpoint = read_checkpoint(source, key="model.init_from")  # missing/truncated: one CheckpointError
        if not isinstance(checkpoint, Mapping):
            raise CheckpointError(f"model.init_from={source}: holds a {type(checkpoint).__name__}",
                                  expected="a checkpoint or a state dict (parameter name -> tensor)")
        return checkpoint.get("state_dict", checkpoint)

    def adapt_state(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Reshape source weights that can be reshaped meaningfully before loading (apps override: e.g. vision
        interpolates position tables); by default unchanged."""
        return dict(state)

    def initialise_from(self, source: str) -> dict[str, list[str]]:
        """Load what fits of ``source`` into this model (see ``load_matching_weights``); returns the report.

        What stays as initialised besides the head is logged by name, so a fine-tune that silently starts from
        scratch in the middle of the network is visible."""
        report = self.load_matching_weights(self.adapt_state(self.read_init_source(source)), name=source)
        params = {n for n, _ in self.named_parameters()}
        self._fresh = {k for k in report["reshaped"] + report["missing"] if k in params}
        surprising = [k for k in report["reshaped"] + report["missing"] if not k.startswith(self.head_prefixes)]
        if surprising:
            rank_zero_info(f"init_from {source}: NOT loaded besides the head (kept as initialised, trained with "
                           f"head_lr_scale): {surprising}")
        return report

    def prepare_fine_tuning(self) -> None:
        """``init_from`` then ``freeze``, once, when a fit starts (from ``configure_model``: after ``setup`` built
        the layers, before a resumed checkpoint is restored and before the optimizer is made). The report is
        written next to the logs as ``init_from.json``."""
        if self._trainer is None or self.trainer.state.fn != "fit":
            return
        if self.init_from and self.init_report is None:
            self.init_report = self.initialise_from(self.init_from)
            log_dir = self.trainer.log_dir if self.trainer.logger is not None else None
            if log_dir and self.trainer.is_global_zero:
                write_atomic(Path(log_dir) / "init_from.json",
                             json.dumps({"source": str(self.init_from), **self.init_report}, indent=2) + "\n")
        if self.freeze_patterns is not None and not self._frozen:
            if self.freeze_patterns == "backbone":
                keep = tuple(self.head_prefixes) + tuple(sorted(self._fresh))
                self.freeze("*", exclude=keep)
            else:
                self.freeze(self.freeze_patterns)
            self._frozen = True

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """As ``nn.Module.load_state_dict``; strict loading of a state dict that does not fit (a checkpoint of
        another app or other sizes) raises one ValueError naming the mismatching keys."""
        if strict:
            own = self.state_dict()
            shapes = [f"{k}: checkpoint {tuple(v.shape)}, model {tuple(own[k].shape)}" for k, v in state_dict.items()
                      if k in own and isinstance(v, Tensor) and v.shape != own[k].shape]
            missing = sorted(k for k in own if k not in state_dict)
            unexpected = sorted(k for k in state_dict if k not in own)
            if shapes or missing or unexpected:
                ckpt = getattr(self._trainer, "ckpt_path", None) if self._trainer is not None else None
                parts = [f"shape mismatch for {len(shapes)} keys: {shapes[:8]}" if shapes else "",
                         f"{len(missing)} keys missing from the checkpoint: {missing[:8]}" if missing else "",
                         f"{len(unexpected)} unexpected keys: {unexpected[:8]}" if unexpected else ""]
                raise ValueError(
                    f"checkpoint {ckpt or ''} does not fit this {type(self).__module__}.{type(self).__name__} "
                    f"(another app, or other sizes): {'; '.join(p for p in parts if p)}. Evaluate it with the config "
                    "it was trained with; to start a new model from part of it use model.init_from"
                )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def load_matching_weights(self, source: str | os.PathLike | Mapping[str, Tensor],
                              name: str = "state dict") -> dict[str, list[str]]:
        """Initialise from another run (fine-tuning): copy every weight whose name and shape match.

        ``source``: a checkpoint file (Lightning ``.ckpt`` or a bare state dict) or a state dict. Returns and
        logs the names that were ``loaded``, ``reshaped`` (same name, other shape: kept as initialised),
        ``missing`` (not in the source: kept as initialised) and ``unexpected`` (in the source only).
        """
        if not isinstance(source, Mapping):
            name = str(source)
            source = read_checkpoint(source, key="init_from")
        state = source.get("state_dict", source)
        own = self.state_dict()
        matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        report = {
            "loaded": sorted(matching),
            "reshaped": sorted(k for k in state if k in own and own[k].shape != state[k].shape),
            "missing": sorted(k for k in own if k not in state),
            "unexpected": sorted(k for k in state if k not in own),
        }
        if not matching:
            raise ValueError(f"init_from: no weight of {name} matches this {type(self).__name__} "
                             f"(reshaped: {report['reshaped'][:5]}, unexpected: {report['unexpected'][:5]})")
        self.load_state_dict(matching, strict=False)
        summary = ", ".join(f"{len(v)} {k}" + (f" {v[:8]}" if v and k != "loaded" else "") for k, v in report.items())
        rank_zero_info(f"init_from {name}: {summary}")
        return report

    # -------------------------------------------------------------- compile
    def configure_model(self) -> None:
        """Fine-tuning set-up (``prepare_fine_tuning``), then compile ``self.encoder`` in place (state_dict keys
        unchanged, so checkpoints stay portable)."""
        self.prepare_fine_tuning()
        if not self.compile_encoder or self._compiled:
            return
        encoder = getattr(self, "encoder", None)
        if not isinstance(encoder, nn.Module):
            rank_zero_warn(f"{type(self).__name__}: compile=True but no `self.encoder` to compile; ignored")
            return
        encoder.compile()
        self._compiled = True
