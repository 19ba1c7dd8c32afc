"""Per-class test reports for every classification app: precision, recall, F1 and support per class, and a
confusion-matrix picture, written next to the metrics of the checkpoint a test evaluated.

One implementation for all apps: ``AttnLabModule.log_step`` feeds every test batch's predictions to
``ClassReportMixin.update_class_report`` (a torchmetrics ``MulticlassConfusionMatrix``, synchronised across
processes like any metric), and ``ClassReportWriter`` (a callback every app gets) turns the matrix into
``<checkpoint>.report.json``, ``<checkpoint>.report.txt`` and ``<checkpoint>.confusion.png`` when the test ends.
Apps only name their classes (``class_names``) and may add app-specific numbers (``report_extras``: POS adds its
known/unknown-word accuracies), so the reports of all apps read alike.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.aggregation import SumMetric
from torchmetrics.classification import MulticlassConfusionMatrix

from datamodules.batching import IGNORE  # targets the datamodules mark as "no label"

from .plotting import plt, save
from .runs import evaluation_path, write_atomic

MAX_LABELLED_CLASSES = 60  # above this many classes the picture has no class names on its axes


class ClassReportMixin:
    """Mixed into ``AttnLabModule``: the test-time confusion matrix and count of evaluated examples."""

    def class_names(self) -> list[str] | None:
        """Names of the class ids (index = id); None: the ids themselves. Apps with a label inventory override."""
        return None

    def report_extras(self) -> dict[str, Any]:
        """App-specific numbers added to the test report (default none)."""
        return {}

    def setup_class_report(self, metrics: MetricCollection) -> None:
        """Make the test confusion matrix for the class count of ``metrics`` (called by ``setup_metrics``)."""
        sizes = [getattr(m, "num_classes", None) for m in metrics.values()]
        num_classes = next((int(n) for n in sizes if n), None)
        self.test_examples = SumMetric()
        self.test_confusion = (MulticlassConfusionMatrix(num_classes, ignore_index=IGNORE)
                               if num_classes else None)

    def update_class_report(self, preds: Tensor | None, target: Tensor | None, batch_size: int | None) -> None:
        """Count one test batch: its examples (``batch_size``, else the targets) and, for classifiers, its
        predictions (ids, or logits with classes last) against the targets. Empty batches are skipped
        (torchmetrics refuses an empty update)."""
        examples: Metric | None = getattr(self, "test_examples", None)
        if examples is None:
            return
        count = batch_size if batch_size is not None else (target.numel() if target is not None else 0)
        examples.update(torch.tensor(float(count)))
        confusion = getattr(self, "test_confusion", None)
        if confusion is None or preds is None or target is None or target.numel() == 0:
            return
        if preds.is_floating_point() and preds.dim() == target.dim() + 1:
            preds = preds.argmax(-1)
        confusion.update(preds.reshape(-1), target.reshape(-1))

    def reset_class_report(self) -> None:
        for name in ("test_examples", "test_confusion"):
            metric = getattr(self, name, None)
            if metric is not None:
                metric.reset()


def per_class(confusion: Tensor, names: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each class of a (true x predicted) confusion matrix. Classes that
    neither occur nor are predicted (padding or unknown-tag ids, classes absent from a small test set) are left
    out; a class never predicted has precision 0."""
    confusion = confusion.double()
    hits, support, predicted = confusion.diagonal(), confusion.sum(1), confusion.sum(0)
    rows = {}
    for i in range(confusion.size(0)):
        if support[i] == 0 and predicted[i] == 0:
            continue
        p = float(hits[i] / predicted[i]) if predicted[i] else 0.0
        r = float(hits[i] / support[i]) if support[i] else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        name = names[i] if names is not None and i < len(names) else str(i)
        rows[name] = {"precision": p, "recall": r, "f1": f1, "support": int(support[i])}
    return rows


def summary(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    """Macro averages (every listed class counts once) and support-weighted averages."""
    if not rows:
        return {}
    total = sum(r["support"] for r in rows.values()) or 1
    out = {}
    for key in ("precision", "recall", "f1"):
        out[f"macro_{key}"] = sum(r[key] for r in rows.values()) / len(rows)
        out[f"weighted_{key}"] = sum(r[key] * r["support"] for r in rows.values()) / total
    return out


def report_text(report: dict[str, Any]) -> str:
    """The report as an aligned table (one class per row), then the averages and the app's extras."""
    rows = report["classes"]
    width = max([len("weighted avg"), *(len(n) for n in rows)])
    lines = [f"{'class':<{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>9}"]
    lines += [f"{n:<{width}} {r['precision']:>9.4f} {r['recall']:>9.4f} {r['f1']:>9.4f} {r['support']:>9d}"
              for n, r in rows.items()]
    avg = report["averages"]
    if avg:
        for kind in ("macro", "weighted"):
            lines.append(f"{kind + ' avg':<{width}} {avg[f'{kind}_precision']:>9.4f} {avg[f'{kind}_recall']:>9.4f} "
                         f"{avg[f'{kind}_f1']:>9.4f} {report['examples']:>9d}")
    lines += [f"{k}: {v}" for k, v in report.get("extras", {}).items()]
    return "\n".join(lines) + "\n"


def confusion_picture(confusion: Tensor, names: list[str], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix (true class x predicted class; each row sums to 1) as a PNG."""
    counts = confusion.double()
    rates = (counts / counts.sum(1, keepdim=True).clamp(min=1)).numpy()
    n = len(names)
    size = min(16.0, max(4.0, 0.35 * n + 2.0))
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    if n <= MAX_LABELLED_CLASSES:
        fontsize = 8 if n <= 20 else 6
        ax.set_xticks(range(n), names, rotation=90, fontsize=fontsize)
        ax.set_yticks(range(n), names, fontsize=fontsize)
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    if counts[i, j]:
                        ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                                color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class (numbers: counts)")
    return save(fig, path)


def class_report(module: Any, confusion: Tensor | None, examples: int, split: str = "test") -> dict[str, Any]:
    """The report of one evaluation: per class (when the model classifies), averages, extras."""
    report: dict[str, Any] = {"split": split, "examples": examples, "classes": {}, "averages": {}}
    if confusion is not None:
        names = module.class_names()
        report["classes"] = per_class(confusion, names)
        report["averages"] = summary(report["classes"])
        report["accuracy"] = float(confusion.diagonal().sum() / confusion.sum().clamp(min=1))
    report["extras"] = module.report_extras()
    return report


class ClassReportWriter(Callback):
    """Writes the per-class report and confusion picture when a test ends (computed on every process, written by
    rank 0), next to the checkpoint's metrics (``apps.runs.evaluation_path``), and leaves a summary for the
    metrics JSON in ``module.test_summary``."""

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.reset_class_report()

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        examples_metric = getattr(pl_module, "test_examples", None)
        if examples_metric is None:
            return
        confusion_metric = getattr(pl_module, "test_confusion", None)
        seen = confusion_metric is not None and bool(confusion_metric.update_count)
        confusion = confusion_metric.compute().cpu() if seen else None
        examples = int(examples_metric.compute()) if examples_metric.update_count else 0
        pl_module.reset_class_report()
        report = class_report(pl_module, confusion, examples)
        summary_ = {"split": "test", "examples": examples}
        if trainer.is_global_zero:
            ckpt, log_dir = trainer.ckpt_path, trainer.log_dir or trainer.default_root_dir
            written = [write_atomic(evaluation_path(ckpt, log_dir, "report.json"), json.dumps(report, indent=2) + "\n"),
                       write_atomic(evaluation_path(ckpt, log_dir, "report.txt"), report_text(report))]
            if confusion is not None:
                names = module_names(pl_module, confusion.size(0))
                title = f"{type(pl_module).__name__}: confusion on {examples} test examples"
                written.append(confusion_picture(confusion, names, evaluation_path(ckpt, log_dir, "confusion.png"),
                                                 title))
            summary_["report"] = [os.fspath(p) for p in written]
            rank_zero_info("test report: " + ", ".join(str(p) for p in written))
        pl_module.test_summary = summary_


def module_names(module: Any, num_classes: int) -> list[str]:
    names = module.class_names() or []
    return [names[i] if i < len(names) else str(i) for i in range(num_classes)]
