"""Where a run writes and what a test records: ``<root>/<app>/version_N`` (no ``runs/runs``), predictions in the run
folder unless a path is given, metrics.json with split / examples / limits, the shared per-class report and
confusion picture, and the POS test on a set without unknown words (a regression: torchmetrics refused the empty
update)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from apps.cli import find_checkpoint, main
from apps.pos import Tagger
from apps.reports import per_class, summary
from core import EncoderConfig
from datamodules.pos import SyntheticTreebank

ROOT = Path(__file__).resolve().parents[1]
DEMO = [
    "--config", str(ROOT / "configs" / "demo" / "majority.yaml"),
    "--model.encoder.dim", "16", "--model.encoder.depth", "1", "--model.encoder.num_heads", "2",
    "--data.num_train", "64", "--data.num_val", "32", "--data.num_test", "48", "--data.batch_size", "16",
    "--trainer.max_epochs", "1", "--trainer.enable_model_summary", "false", "--trainer.enable_progress_bar", "false",
]
KARATE = ["--config", str(ROOT / "configs" / "graph" / "karate.yaml"), "--trainer.max_epochs", "3",
          "--trainer.enable_model_summary", "false", "--trainer.enable_progress_bar", "false"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["attnlab"])
    return tmp_path


def test_default_root_dir_holds_the_app_folders(in_tmp: Path) -> None:
    main(["fit", *DEMO, "--trainer.default_root_dir", "exp"])
    assert (in_tmp / "exp" / "sequenceclassifier" / "version_0" / "checkpoints" / "last.ckpt").is_file()
    assert not (in_tmp / "exp" / "runs").exists() and not (in_tmp / "runs").exists()
    main(["fit", *DEMO])  # no default_root_dir: runs/<app>/version_N
    assert (in_tmp / "runs" / "sequenceclassifier" / "version_0" / "config.yaml").is_file()


def test_metrics_json_records_split_examples_limits_and_the_report(in_tmp: Path) -> None:
    main(["fit", *DEMO])
    main(["test", *DEMO, "--ckpt_path", "best", "--trainer.limit_test_batches", "2"])
    ckpt = find_checkpoint(Path("runs") / "sequenceclassifier", "best")
    record = json.loads(ckpt.with_suffix(".metrics.json").read_text())
    assert record["split"] == "test" and record["batches"] == 2 and record["examples"] == 32  # 2 batches of 16
    assert record["limits"] == {"limit_test_batches": 2}
    report = json.loads(ckpt.with_suffix(".report.json").read_text())
    assert report["split"] == "test" and report["examples"] == 32
    assert sum(row["support"] for row in report["classes"].values()) == 32
    assert abs(report["accuracy"] - record["metrics"]["test/acc"]) < 0.2  # micro vs the demo's macro accuracy
    assert ckpt.with_suffix(".confusion.png").read_bytes()[:8] == PNG
    assert "macro avg" in ckpt.with_suffix(".report.txt").read_text()
    assert sorted(record["report"]) == sorted(str(ckpt.with_suffix(f".{n}")) for n in
                                              ("report.json", "report.txt", "confusion.png"))


def test_predict_writes_into_its_run_folder_unless_a_path_is_given(in_tmp: Path) -> None:
    main(["fit", *KARATE])
    main(["predict", *KARATE, "--ckpt_path", "best"])
    written = in_tmp / "runs" / "graph" / "version_1" / "predictions.csv"  # the predict run's own folder
    rows = list(csv.DictReader(written.open()))
    assert len(rows) == 34 and not list(in_tmp.glob("*.csv"))
    main(["predict", *KARATE, "--ckpt_path", "best", "--data.predict_output", "mine.csv"])
    assert len(list(csv.DictReader((in_tmp / "mine.csv").open()))) == 34


def test_per_class_rows_and_averages() -> None:
    confusion = torch.tensor([[3, 1, 0], [0, 2, 0], [0, 0, 0]])  # class 2: never true, never predicted
    rows = per_class(confusion, ["a", "b", "c"])
    assert set(rows) == {"a", "b"}
    assert rows["a"] == {"precision": 1.0, "recall": 0.75, "f1": 2 * 0.75 / 1.75, "support": 4}
    assert rows["b"]["precision"] == pytest.approx(2 / 3) and rows["b"]["recall"] == 1.0
    assert summary(rows)["weighted_recall"] == pytest.approx((0.75 * 4 + 1.0 * 2) / 6)


class AllKnown(SyntheticTreebank):
    """Test batches in which every word is known: no unknown word to count."""

    def test_dataloader(self):
        for batch in super().test_dataloader():
            batch["known"] = batch["mask"].clone()
            yield batch


def test_pos_test_without_unknown_words(tmp_path: Path) -> None:
    """Regression: ``acc_unknown`` updated with zero words raised ``cannot reshape tensor of 0 elements``."""
    data = AllKnown(num_train=60, num_val=10, num_test=10, tagset="upos", min_word_freq=1, batch_size=8)
    model = Tagger(encoder=EncoderConfig(dim=16, depth=1, num_heads=2, position="relative",
                                         max_relative_distance=4), word_dim=8, char_dim=4, char_channels=8)
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=2, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(model, datamodule=data)
    (metrics,) = trainer.test(model, datamodule=data, verbose=False)
    assert "test/acc_known" in metrics and "test/acc_unknown" not in metrics  # undefined: no unknown word
    assert metrics["test/unknown_rate"] == 0.0
    assert model.report_extras()["acc_unknown"] is None
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["examples"] == sum(r["support"] for r in report["classes"].values()) > 0


def test_version_names_the_installed_package(capsys: pytest.CaptureFixture) -> None:
    import importlib.metadata

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"attnlab {importlib.metadata.version('attnlab')}"
