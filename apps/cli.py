"""The ``attnlab`` command: one LightningCLI for every app.

    attnlab fit  --config configs/demo/majority.yaml
    attnlab test --config configs/demo/majority.yaml --ckpt_path best

On top of LightningCLI it adds defaults every app inherits unless the config sets its own:
checkpointing of the model's ``monitor`` metric (best + last), CSV + TensorBoard logs under
``runs/<app>/version_N``, a rich progress bar, an LR monitor, bf16 on GPUs that support it.
``--ckpt_path best|last`` also works outside a fit run (it looks in the newest run of the app),
and ``test`` writes its metrics as JSON next to the checkpoint it evaluated. ``explain`` draws a trained
model's attention as PNG pictures (``apps.explain``; ``--data.predict_path``: of your own inputs), ``export``
writes it as a ``torch.export`` program (``apps.export``), ``attnlab --version`` names the installed version.
NaN/Inf checks (``nonfinite.action``) are on by default; in deterministic mode every epoch is seeded from its
number, so a killed fit resumed with ``--ckpt_path last`` ends where the uninterrupted one does. A misspelt
config key is an error that lists the valid ones.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import importlib
import importlib.metadata
import inspect
import io
import json
import logging
import re
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import (
    Callback,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
    RichProgressBar,
)
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_info
from rich.console import Console
from rich.table import Table

# Imported so that short names (--model SequenceClassifier, --data SyntheticSequences, Tagger, UDTreebank,
# NodeClassifier, GraphData) resolve.
import apps.graph  # noqa: F401
import apps.lra  # noqa: F401
import apps.pos  # noqa: F401
import apps.sequence  # noqa: F401
import apps.speech  # noqa: F401
import apps.vision  # noqa: F401
import datamodules.bytetext  # noqa: F401
import datamodules.graph  # noqa: F401
import datamodules.listops  # noqa: F401
import datamodules.pos  # noqa: F401
import datamodules.speech  # noqa: F401
import datamodules.synthetic  # noqa: F401
import datamodules.vision  # noqa: F401
from apps.base import AttnLabModule
from apps.callbacks import EpochSeed, NonFiniteGuard
from apps.checkpoint_io import AtomicCheckpointIO, atomic_link
from apps.runs import (
    app_name,
    find_checkpoint,
    metrics_path,
    next_version,
    runs_root,
    version_of,
    write_atomic,
    write_best_pointer,
)
from apps.trainer import AttnLabTrainer
from apps.upgrade import checkpoint_model_config
from apps.user_errors import discard_failed_run, run_reporting_user_errors


def _quiet_lightning() -> None:
    """Drop Lightning's advertising tips and a torch-2.11 deprecation raised inside Lightning, not ours."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not str(record.msg).startswith("💡 Tip")
    )
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")


def package_version() -> str:
    """The installed attnlab's version (``importlib.metadata``); "unknown" when run from an uninstalled tree."""
    try:
        return importlib.metadata.version("attnlab")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def default_precision() -> str:
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


class AttnLabCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that also writes ``best.txt`` (name of the best checkpoint) so ``--ckpt_path best``
    can be resolved later without loading any checkpoint, and keeps ``last.ckpt`` the latest state.

    Lightning 2.6 writes ``last.ckpt`` only when a top-k checkpoint is written in the same step, so after
    the monitored metric stops improving ``last`` would stay behind at the best epoch: resuming with
    ``--ckpt_path last`` would silently repeat epochs. Here ``last`` follows every checkpoint trigger.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_behind(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_behind(trainer)

    def _save_last_if_behind(self, trainer: L.Trainer) -> None:
        # skipped when nothing was trained since the last save (which then wrote last.ckpt already)
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero and self.best_model_path and self.dirpath:
            write_best_pointer(self.dirpath, self.best_model_path)

    @staticmethod
    def _link_checkpoint(trainer: L.Trainer, filepath: str, linkpath: str) -> None:
        """``save_last: link``: an atomic copy (Lightning links, or copies in place when it cannot)."""
        if trainer.is_global_zero:
            atomic_link(filepath, linkpath)
        trainer.strategy.barrier()


def _import(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _init_params(cls: type) -> list[str]:
    """The keyword arguments ``cls`` accepts (its config keys)."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"]


def _suggest(bad: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(bad, valid, n=3, cutoff=0.6)
    return (f"did you mean {' or '.join(close)}? " if close else "") + f"valid keys: {', '.join(valid)}"


class AttnLabArgumentParser(LightningArgumentParser):
    """LightningArgumentParser whose errors about unknown keys start with one line that names the key, the
    class it was given to, the closest valid keys and all valid ones (jsonargparse's own report follows)."""

    def error(self, message: str, ex: Exception | None = None):
        hints = self.unknown_key_hints(message)
        if hints:
            message = "\n".join(hints) + "\n" + message
        super().error(message, ex)

    def unknown_key_hints(self, message: str) -> list[str]:
        hints = []
        # a class given a keyword it does not take: "... class_path 'C' ... Option 'k' is not accepted"
        for match in re.finditer(r"Option '([\w.]+)' is not accepted", message):
            paths = re.findall(r"class_path '([\w.]+)'", message[: match.start()])
            bad = match.group(1)
            if not paths:
                continue
            try:
                cls = _import(paths[-1])
            except (ImportError, AttributeError, ValueError):
                continue
            hints.append(f"unknown key {bad!r} for {paths[-1]}: {_suggest(bad, _init_params(cls))}")
        # a key no parser section has: trainer.*, seed_everything, ckpt_path, ...
        subparsers = getattr(self, "_attnlab_subparsers", {})
        named = re.search(r"Subcommand '(\w+)'", message)
        parsers = [subparsers[named.group(1)]] if named and named.group(1) in subparsers else [self]
        dests = {a.dest for parser in parsers for a in parser._actions
                 if a.dest not in ("help", "config", "subcommand", "print_config", "print_shtab")}
        for bad in re.findall(r"(?:does not accept option|unrecognized arguments:) '?-*([\w.]+)", message):
            parts = bad.split(".")
            for depth in range(len(parts) - 1, -1, -1):  # the longest known section the key is in
                prefix = ".".join(parts[:depth])
                valid = sorted({d[len(prefix) + 1 if prefix else 0:].split(".")[0] for d in dests
                                if not prefix or d.startswith(prefix + ".")})
                if valid:
                    where = f" in {prefix}" if prefix else ""
                    hints.append(f"unknown key {bad!r}{where}: {_suggest(parts[depth], valid)}")
                    break
        return hints


class ResumingCSVLogger(CSVLogger):
    """CSVLogger that, for a resumed fit, keeps the rows of ``metrics.csv`` logged before the checkpoint's step
    (Lightning's writer deletes the file; later rows are logged again by the resumed run)."""

    def __init__(self, *args: Any, keep_until_step: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep_until_step = keep_until_step

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is not None:
            return self._experiment
        path = Path(self.log_dir) / "metrics.csv"
        header, rows = None, []
        if self.keep_until_step is not None and path.is_file():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                header = reader.fieldnames
                rows = [r for r in reader if r.get("step", "").isdigit() and int(r["step"]) < self.keep_until_step]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Previous log files in this directory will be deleted")
            experiment = super().experiment
        if header:  # the kept rows, written atomically (a kill here must not lose the log)
            text = io.StringIO(newline="")
            writer = csv.DictWriter(text, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
            write_atomic(path, text.getvalue())
            experiment.metrics_keys = sorted(header)
        return experiment


class AttnLabCLI(LightningCLI):
    """LightningCLI with attnlab's defaults; see the module docstring."""

    def __init__(self, args: ArgsType = None, **kwargs: Any) -> None:
        kwargs.setdefault("trainer_defaults", {"precision": default_precision(), "accelerator": "auto"})
        kwargs.setdefault("trainer_class", AttnLabTrainer)
        kwargs.setdefault("parser_class", AttnLabArgumentParser)
        super().__init__(
            model_class=AttnLabModule,
            subclass_mode_model=True,
            datamodule_class=L.LightningDataModule,
            subclass_mode_data=True,
            seed_everything_default=42,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,  # one way to configure optimisation: model.optim
            args=args,
            **kwargs,
        )

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's four subcommands plus ``explain`` (attention pictures of a trained model) and ``export``
        (a ``torch.export`` program of it, ``apps.export``)."""
        return {**LightningCLI.subcommands(), "explain": {"model", "datamodule"}, "export": {"model", "datamodule"}}

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """Lightning's parser plus ``attnlab --version`` (the installed package's version)."""
        parser = super().init_parser(**kwargs)
        parser.add_argument("--version", action="version", version=f"attnlab {package_version()}")
        return parser

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """``nonfinite``: the NaN/Inf guard's settings (``nonfinite.action: error|skip|warn|off``)."""
        parser.add_lightning_class_args(NonFiniteGuard, "nonfinite")

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        super()._add_subcommands(parser, **kwargs)
        parser._attnlab_subparsers = self._subcommand_parsers  # for AttnLabArgumentParser's hints

    # ------------------------------------------------------------------ parsing
    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse, then turn ``ckpt_path: best|last`` into a file of this app's newest run.

        Lightning resolves these names only inside the fit run that made the checkpoints; resolving them
        here also lets LightningCLI restore the model's hyperparameters from that checkpoint.
        """
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        which = config.get("ckpt_path")
        if which not in ("best", "last"):
            return
        app_dir = runs_root(config.trainer.default_root_dir) / app_name(_import(config.model.class_path))
        try:
            config.ckpt_path = str(find_checkpoint(app_dir, which, config.get("data")))  # a run of this data set
        except FileNotFoundError as err:
            parser.error(str(err))
        rank_zero_info(f"ckpt_path={which!r} resolved to {config.ckpt_path}")

    def _parse_ckpt_path(self) -> None:
        """Before LightningCLI takes the model's hyperparameters from ``ckpt_path``: a file that is missing, not a
        checkpoint, or saved by another app than the config's model is one clear error (Lightning would build
        the checkpoint's app on this config's data, or fail deep inside torch.load)."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path:
            path = Path(ckpt_path)
            if not path.is_file():
                self.parser.error(f"ckpt_path={ckpt_path}: no such file (best/last name the newest run's checkpoints)")
            try:
                ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except Exception as err:  # a truncated file, not a torch file, unsafe pickles: one message for all
                self.parser.error(f"ckpt_path={ckpt_path}: not a readable checkpoint ({type(err).__name__}: {err})")
            saved = (ckpt.get("hyper_parameters") or {}).get("_class_path") if isinstance(ckpt, dict) else None
            configured = self.config[subcommand].get("model", {}).get("class_path")
            if saved and configured and saved != configured:
                self.parser.error(
                    f"ckpt_path={ckpt_path} was saved by {saved}, but the config's model is {configured}: evaluate a "
                    f"checkpoint with the config it was trained with (to start a {configured.rsplit('.', 1)[-1]} "
                    "from part of it, use model.init_from in a fit)")
            # LightningCLI's own step (the model's hyperparameters from the checkpoint), with hyperparameters
            # of older versions upgraded to today's keys first (apps.upgrade)
            model = checkpoint_model_config(ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None,
                                            configured)
            if model:
                self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)
            return
        super()._parse_ckpt_path()

    # ------------------------------------------------------------------ trainer
    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """Add default callbacks and loggers unless the config has its own (needs the instantiated model)."""
        config = self._get(self.config_init, "trainer", default={})
        user = config.get("callbacks") or []
        user = list(user) if isinstance(user, list | tuple) else [user]
        callback_keys = self._parser(self.subcommand).callback_keys
        present = user + [self._get(self.config_init, key) for key in callback_keys]
        kwargs.setdefault("callbacks", user + self.default_callbacks(config, present))
        if self.subcommand in ("explain", "export"):
            kwargs.setdefault("logger", False)  # pictures or a program only: no run folder
        elif config.get("logger") is None:
            kwargs.setdefault("logger", self.default_loggers(config))
        if self.subcommand in ("validate", "test", "predict", "explain", "export"):
            # Evaluating a checkpoint never needs the training callbacks whose state it holds.
            warnings.filterwarnings("ignore", message=".*callbacks used to create the checkpoint need to be")
        if config.get("plugins") is None:  # checkpoints written next to the target and renamed (apps.checkpoint_io)
            kwargs.setdefault("plugins", [AtomicCheckpointIO()])
        trainer = super().instantiate_trainer(**kwargs)
        if self.subcommand in ("explain", "export"):  # no run folder: the config would land in the working directory
            trainer.callbacks = [cb for cb in trainer.callbacks if not isinstance(cb, SaveConfigCallback)]
        return trainer

    def default_callbacks(self, trainer_config: dict[str, Any], present: list[Callback]) -> list[Callback]:
        """Checkpointing of the model's ``monitor`` and an LR monitor (when training), a rich progress bar;
        each unless present or switched off in the trainer config (Lightning rejects, e.g., a progress bar
        with enable_progress_bar=False)."""

        def has(kind: type) -> bool:
            return any(isinstance(cb, kind) for cb in present)

        callbacks: list[Callback] = []
        training = self.subcommand in (None, "fit")
        if training and trainer_config.get("enable_checkpointing") is not False and not has(ModelCheckpoint):
            self.model.resolve_monitor(self.datamodule)
            callbacks.append(AttnLabCheckpoint(
                monitor=self.model.monitor, mode=self.model.monitor_mode, filename="best-{epoch}-{step}",
                save_last=True,
            ))
        if trainer_config.get("enable_progress_bar") is not False and not has(ProgressBar):
            callbacks.append(RichProgressBar())
        if training and trainer_config.get("logger") is not False and not has(LearningRateMonitor):
            callbacks.append(LearningRateMonitor(logging_interval="step"))
        seed = self._get(self.config, "seed_everything")
        if training and trainer_config.get("deterministic") and seed not in (None, False) and not has(EpochSeed):
            callbacks.append(EpochSeed(int(seed)))
        return callbacks

    def default_loggers(self, trainer_config: dict[str, Any]) -> list:
        """CSV + TensorBoard in the same ``runs/<app>/version_N`` (TensorBoard in its ``tb/`` sub-dir).

        A fit resumed from a checkpoint of ``runs/<app>/version_N/checkpoints`` goes on in version N (the CSV log
        is appended to, checkpoints and best.txt stay in one place); any other run gets a new version."""
        root = runs_root(trainer_config.get("default_root_dir"))
        name = app_name(type(self.model))
        version = self.resumed_version(root / name)
        keep = None
        if version is None:
            version = next_version(root / name)
        else:
            ckpt = torch.load(self._get(self.config, "ckpt_path"), map_location="cpu", weights_only=True, mmap=True)
            keep = int(ckpt.get("global_step", 0))
        return [
            ResumingCSVLogger(root, name=name, version=version, keep_until_step=keep),
            TensorBoardLogger(root, name=name, version=version, sub_dir="tb", default_hp_metric=False),
        ]

    def resumed_version(self, app_dir: Path) -> int | None:
        """N when this is a fit from ``<app_dir>/version_N/checkpoints/<file>``, else None."""
        ckpt = self._get(self.config, "ckpt_path") if self.subcommand == "fit" else None
        return version_of(ckpt, app_dir) if ckpt else None

    def _run_subcommand(self, subcommand: str) -> None:
        """Run it; a fit that fails before its first checkpoint leaves no ``version_N`` folder behind."""
        try:
            super()._run_subcommand(subcommand)
        except BaseException:
            if subcommand == "fit" and self._get(self.config, "ckpt_path") is None:
                discard_failed_run(self.trainer)
            raise

    # ------------------------------------------------------------------ test
    def test(self, **kwargs: Any) -> list[dict[str, float]]:
        """Run ``trainer.test``, print the metrics as a table and save them as JSON next to the checkpoint.

        LightningCLI calls this instead of ``trainer.test`` for the ``test`` subcommand.
        """
        verbose = kwargs.pop("verbose", True)
        results = self.trainer.test(verbose=False, **kwargs)
        metrics = {name: float(value) for result in results for name, value in result.items()}
        ckpt_path = self.trainer.ckpt_path or kwargs.get("ckpt_path")
        if self.trainer.is_global_zero:
            out = self.save_metrics(metrics, ckpt_path)
            if verbose:
                print_metrics(metrics, ckpt_path, out)
        return results

    def save_metrics(self, metrics: dict[str, float], ckpt_path: str | None) -> Path:
        out = metrics_path(ckpt_path, self.trainer.log_dir or self.trainer.default_root_dir)
        config_text = self._parser(self.subcommand).dump(self.config[self.subcommand])
        summary = getattr(self.model, "test_summary", None) or {}
        limits = {f"limit_{stage}_batches": getattr(self.trainer, f"limit_{stage}_batches")
                  for stage in ("train", "val", "test", "predict")
                  if getattr(self.trainer, f"limit_{stage}_batches") not in (1.0, None)}
        record = {
            "metrics": metrics,
            "split": "test",
            "examples": summary.get("examples"),  # what the metrics count: images, nodes, words or frames
            "batches": sum(self.trainer.num_test_batches),
            "limits": limits,  # limit_*_batches that were set: limit_test_batches means part of the split
            "report": summary.get("report"),
            "checkpoint": str(ckpt_path) if ckpt_path else None,
            "model": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "data": None if self.datamodule is None
            else f"{type(self.datamodule).__module__}.{type(self.datamodule).__qualname__}",
            "dataset": describe_data(self.config[self.subcommand].get("data")),
            "config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_atomic(out, json.dumps(record, indent=2) + "\n")
        return out


DATA_KEYS = ("source", "root", "path", "train", "dev", "test", "layout", "split", "num_test", "tagset", "image_size")


def describe_data(config: Any) -> str | None:
    """The data set a test ran on, from the data config: class name and where its data comes from, e.g.
    ``GraphData(source=cora, root=data/planetoid, split=public)``, split ``test``."""
    if not config:
        return None
    args = config.get("init_args") or {}
    bits = [f"{k}={args[k]}" for k in DATA_KEYS if args.get(k) not in (None, "")]
    return f"{str(config.get('class_path', '?')).rsplit('.', 1)[-1]}({', '.join(bits)}), split test"


def print_metrics(metrics: dict[str, float], ckpt_path: str | None, out: Path) -> None:
    """Where the numbers come from and where they went, then the numbers (last, so they end the output)."""
    console = Console()
    console.print(f"checkpoint: {ckpt_path or '(weights in memory)'}", soft_wrap=True)
    console.print(f"metrics saved to: {out}", soft_wrap=True)
    table = Table(title="test metrics")
    table.add_column("metric", style="cyan")
    table.add_column("value", justify="right", style="magenta")
    for name, value in sorted(metrics.items()):
        table.add_row(name, f"{value:.4f}")
    console.print(table)


def main(args: ArgsType = None) -> None:
    """The ``attnlab`` command; a ``core.errors.UserError`` is printed as one line (``--debug``: the traceback)."""
    _quiet_lightning()
    run_reporting_user_errors(lambda argv: AttnLabCLI(args=argv), args)


if __name__ == "__main__":
    main()
