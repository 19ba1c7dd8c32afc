"""The attnlab CLI end to end on a tiny demo run: checkpoints, logs, metrics.json, config errors, schedule."""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from datetime import datetime
from pathlib import Path

import lightning as L
import pytest
import torch

from apps.base import OptimConfig, lr_factor
from apps.cli import AttnLabCLI, find_checkpoint, main
from apps.sequence import SEQUENCE_ENCODER, SequenceClassifier
from core import Truncated
from datamodules.synthetic import SyntheticSequences, make_majority

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "demo" / "majority.yaml")
TINY = [
    "--config", CONFIG,
    "--model.encoder.dim", "16", "--model.encoder.depth", "1", "--model.encoder.num_heads", "2",
    "--data.num_train", "96", "--data.num_val", "32", "--data.num_test", "32", "--data.batch_size", "16",
    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "2",
    "--trainer.log_every_n_steps", "1", "--trainer.enable_model_summary", "false",
]
APP_DIR = Path("runs") / "sequenceclassifier"


def attnlab(*args: str) -> None:
    """Run ``attnlab <args>`` in-process (one interpreter for the whole file keeps it fast)."""
    main(list(args))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny fit in a fresh directory, shared by the tests that read its outputs."""
    root = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(sys, "argv", ["attnlab"])
        attnlab("fit", *TINY)
    return root


@pytest.fixture
def in_run_dir(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(run_dir)
    monkeypatch.setattr(sys, "argv", ["attnlab"])
    return run_dir


@pytest.fixture
def in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["attnlab"])
    return tmp_path


def test_fit_writes_checkpoints_and_logs(in_run_dir: Path) -> None:
    version = APP_DIR / "version_0"
    ckpts = version / "checkpoints"
    assert len(list(ckpts.glob("best-epoch=*-step=*.ckpt"))) == 1
    assert (ckpts / "last.ckpt").is_file()
    assert (ckpts / (ckpts / "best.txt").read_text().strip()).is_file()
    assert (version / "config.yaml").is_file()
    assert list((version / "tb").glob("events.out.tfevents.*")), "TensorBoard logs go to the tb/ sub-dir"
    with open(version / "metrics.csv") as f:
        columns = next(csv.reader(f))
    assert {"val/acc", "val/loss", "train/loss_step"} <= set(columns)
    assert any(c.startswith("lr-AdamW") for c in columns), "LearningRateMonitor is on by default"


@pytest.mark.parametrize("which", ["best", "last"])
def test_test_writes_metrics_json_next_to_checkpoint(in_run_dir: Path, which: str) -> None:
    ckpt = find_checkpoint(APP_DIR, which)
    attnlab("test", *TINY, "--ckpt_path", which)
    out = ckpt.with_suffix(".metrics.json")
    record = json.loads(out.read_text())
    assert set(record) == {"metrics", "split", "examples", "batches", "limits", "report", "checkpoint", "model", "data",
                           "dataset", "config_sha256", "date"}
    assert record["dataset"].startswith("SyntheticSequences(") and record["dataset"].endswith("split test")
    assert Path(record["checkpoint"]) == ckpt
    assert record["model"] == "apps.sequence.SequenceClassifier"
    assert record["data"] == "datamodules.synthetic.SyntheticSequences"
    assert 0.0 <= record["metrics"]["test/acc"] <= 1.0 and math.isfinite(record["metrics"]["test/loss"])
    assert len(record["config_sha256"]) == 64
    datetime.fromisoformat(record["date"])
    assert not list(out.parent.glob(".*.tmp")), "the atomic write leaves no temp file behind"


def test_best_falls_back_to_the_checkpoint_state_in_last_ckpt(run_dir: Path, tmp_path: Path) -> None:
    """Runs checkpointed by a plain ModelCheckpoint have no best.txt; last.ckpt still names the best."""
    src = run_dir / APP_DIR / "version_0" / "checkpoints"
    dst = tmp_path / "app" / "version_7" / "checkpoints"
    shutil.copytree(src, dst)
    (dst / "best.txt").unlink()
    (tmp_path / "app" / "version_8").mkdir()  # a newer run without checkpoints (e.g. a test run) is skipped
    assert find_checkpoint(tmp_path / "app", "best") == dst / (src / "best.txt").read_text().strip()


def test_test_without_checkpoint_writes_to_log_dir(in_empty_dir: Path) -> None:
    attnlab("test", *TINY)
    record = json.loads((APP_DIR / "version_0" / "metrics.json").read_text())
    assert record["checkpoint"] is None


def test_ckpt_best_without_runs_names_what_was_searched(in_empty_dir: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        attnlab("test", *TINY, "--ckpt_path", "best")
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "runs/sequenceclassifier/version_*/checkpoints" in err


def test_print_config(in_empty_dir: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        attnlab("fit", "--config", CONFIG, "--print_config")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "class_path: apps.sequence.SequenceClassifier" in out and "class_path: core.Full" in out
    assert "precision: 32-true" in out or not torch.cuda.is_available()


@pytest.mark.parametrize("where", ["command line", "config file"])
def test_config_typo_names_the_key(in_empty_dir: Path, capsys, where: str) -> None:
    if where == "command line":
        typo = ["--model.dimm", "32"]
    else:
        Path("typo.yaml").write_text("model:\n  init_args:\n    dimm: 32\n")
        typo = ["--config", "typo.yaml"]
    with pytest.raises(SystemExit) as exit_info:
        attnlab("fit", "--config", CONFIG, *typo)
    assert exit_info.value.code != 0
    assert "dimm" in capsys.readouterr().err


def test_pattern_override_trains_and_is_restored_from_checkpoint(in_empty_dir: Path) -> None:
    swap = ["--model.pattern", "core.Truncated", "--model.pattern.left", "2", "--model.pattern.right", "2"]
    cli = AttnLabCLI(args=["fit", *TINY, *swap])
    assert cli.model.pattern == Truncated(left=2, right=2)
    assert "core.Truncated" in (APP_DIR / "version_0" / "config.yaml").read_text()
    # Testing the checkpoint without the override rebuilds the model from the checkpoint's hyperparameters.
    cli = AttnLabCLI(args=["test", *TINY, "--ckpt_path", "last"])
    assert cli.model.pattern == Truncated(left=2, right=2)


def test_last_checkpoint_follows_training_when_the_metric_stops_improving(in_empty_dir: Path) -> None:
    """With lr 0 val/acc never improves after epoch 0, so only the first best is written; last.ckpt must
    still hold the final epoch (Lightning 2.6 alone would leave it at epoch 0)."""
    attnlab("fit", *TINY, "--trainer.max_epochs", "3", "--model.optim.lr", "0.0")
    ckpts = APP_DIR / "version_0" / "checkpoints"
    assert len(list(ckpts.glob("best-epoch=*.ckpt"))) == 1
    last = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=False)
    assert (last["epoch"], last["global_step"]) == (2, 9)


def test_lr_factor_warmup_then_cosine() -> None:
    f = [lr_factor(s, warmup_steps=4, total_steps=14, min_lr_ratio=0.1) for s in range(16)]
    assert f[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert f[4] == pytest.approx(1.0)
    assert f[9] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay
    assert f[14] == pytest.approx(0.1) and f[15] == pytest.approx(0.1)  # stays at the floor
    assert all(a >= b for a, b in zip(f[4:], f[5:], strict=False))
    assert lr_factor(0, warmup_steps=0, total_steps=10) == pytest.approx(1.0)
    constant = [lr_factor(s, warmup_steps=2, total_steps=10, scheduler="constant") for s in range(10)]
    assert constant == pytest.approx([0.5] + [1.0] * 9)


def test_optimizer_schedule_decay_groups_and_python_checkpoints(tmp_path: Path) -> None:
    class RecordLR(L.Callback):
        def __init__(self) -> None:
            self.lrs: list[float] = []

        def on_train_batch_start(self, trainer, *args) -> None:
            self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    optim = OptimConfig(lr=1e-2, warmup_ratio=0.25, min_lr_ratio=0.0)
    model = SequenceClassifier(16, 4, encoder=SEQUENCE_ENCODER.replace(dim=16, depth=1, num_heads=2),
                               position="learned", optim=optim, pattern=Truncated(left=1, right=1))
    data = SyntheticSequences(num_train=128, num_val=16, num_test=16, batch_size=16)
    record = RecordLR()
    trainer = L.Trainer(max_epochs=1, callbacks=[record], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        default_root_dir=tmp_path)
    trainer.fit(model, data)
    expected = [1e-2 * lr_factor(s, warmup_steps=2, total_steps=8) for s in range(8)]
    assert record.lrs == pytest.approx(expected)

    decay, no_decay = model.parameter_groups()
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert {"embed.weight", "learned_positions.table", "head.bias"} <= no_decay_names
    assert all(".norm" not in names[id(p)] and not names[id(p)].endswith("bias") for p in decay["params"])
    assert "head.weight" in {names[id(p)] for p in decay["params"]}

    # A checkpoint of a model built in Python (hparams hold objects) loads under weights_only.
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    loaded = SequenceClassifier.load_from_checkpoint(tmp_path / "model.ckpt")
    assert loaded.pattern == Truncated(left=1, right=1) and loaded.optim == optim


def test_majority_labels_are_strict_winners() -> None:
    seqs, labels = make_majority(200, vocab_size=16, num_classes=4, min_len=1, max_len=12, seed=3)
    for tokens, y in zip(seqs, labels.tolist(), strict=True):
        counts = torch.bincount(tokens, minlength=16)[:4]
        assert counts[y] > torch.cat([counts[:y], counts[y + 1:]]).max()
