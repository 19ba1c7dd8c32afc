"""The user's own inputs beyond training data: ``attnlab explain --data.predict_path`` draws them (POS raw text,
a speech audio folder), the speech custom configs fit and predict on a tiny made corpus, and ``--help`` describes
every option of the datamodules and of the encoder. Every data set is tiny and made in the test."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from datamodules.speech import FeatureConfig, parse_alignment, phone_shapes, synthetic_utterance

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
SMALL = ["--model.encoder.dim", "16", "--model.encoder.depth", "1", "--model.encoder.num_heads", "2"]
PHONES = phone_shapes(2)  # sil, p1, p2: every phone is in the two training utterances of a tiny corpus
ONE_EPOCH = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]


def write_audio(folder: Path, names: list[str], seed: int = 7, phn: bool = False) -> dict[str, int]:
    """Short generated utterances ``<name>.wav`` at 16 kHz (and their ``<name>.PHN``); name -> samples."""
    folder.mkdir(parents=True, exist_ok=True)
    rng, samples = random.Random(seed), {}
    for name in names:
        wave, segments = synthetic_utterance(rng, PHONES, 16000, num_segments=(4, 8))
        sf.write(str(folder / f"{name}.wav"), wave.numpy(), 16000)
        if phn:
            (folder / f"{name}.PHN").write_text("".join(f"{s.start} {s.end} {s.phone}\n" for s in segments))
        samples[name] = wave.numel()
    return samples


def record_explain_batch(monkeypatch: pytest.MonkeyPatch, cls: type) -> list[Any]:
    """The batches ``cls.explain_figures`` draws, recorded as it is called."""
    seen: list[Any] = []
    draw = cls.explain_figures

    def recording(self: Any, batch: Any, out: Path, example: int) -> list[Path]:
        seen.append(batch)
        return draw(self, batch, out, example)

    monkeypatch.setattr(cls, "explain_figures", recording)
    return seen


def pngs(folder: Path) -> list[Path]:
    found = sorted(folder.glob("*.png"))
    assert found and all(p.read_bytes()[:4] == b"\x89PNG" for p in found)
    return found


# ------------------------------------------------------------------------------- explain on own inputs
@pytest.mark.filterwarnings("ignore:.*custom batch sampler")
def test_explain_draws_the_users_raw_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.cli import main
    from apps.pos import Tagger

    monkeypatch.chdir(tmp_path)
    config = ["--config", str(ROOT / "configs" / "pos" / "synthetic.yaml"), *QUIET, *SMALL,
              "--model.word_dim", "8", "--model.char_dim", "4", "--model.char_channels", "8",
              "--data.num_train", "40", "--data.num_val", "12", "--data.num_test", "12", "--data.batch_size", "16"]
    main(["fit", *config, *ONE_EPOCH])
    Path("mine.txt").write_text("the dog saw a book .\nMary reads the old newspaper today .\n")
    seen = record_explain_batch(monkeypatch, Tagger)
    main(["explain", *config, "--ckpt_path", "last",
          "--data.predict_path", "mine.txt", "--data.tokenizer", "whitespace", "--out", "figures"])
    (batch,) = seen
    assert sorted(batch["mask"].sum(1).tolist()) == [6, 7]  # the two sentences of mine.txt, not 12 val ones
    pngs(tmp_path / "figures")


def test_explain_draws_the_users_audio_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.cli import main
    from apps.speech import FrameClassifier

    monkeypatch.chdir(tmp_path)
    config = ["--config", str(ROOT / "configs" / "speech" / "synthetic.yaml"), *QUIET, *SMALL,
              "--data.num_train", "8", "--data.num_val", "4", "--data.num_test", "4", "--data.batch_size", "4"]
    main(["fit", *config, *ONE_EPOCH])
    samples = write_audio(tmp_path / "mine", ["a1", "a2"])
    seen = record_explain_batch(monkeypatch, FrameClassifier)
    main(["explain", *config, "--ckpt_path", "last", "--data.predict_path", "mine", "--out", "figures"])
    (batch,) = seen
    frames = FeatureConfig()  # the config's: 16 kHz, 25 ms window, 10 ms hop
    assert sorted(batch["mask"].sum(1).tolist()) == sorted(frames.num_frames(n) for n in samples.values())
    pngs(tmp_path / "figures")


# ------------------------------------------------------------------------- speech custom configs
def test_custom_frames_config_fits_and_predicts_a_tiny_phn_corpus(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.cli import main

    monkeypatch.chdir(tmp_path)
    for seed, split in enumerate(("train", "dev", "test")):
        write_audio(tmp_path / "corpus" / split, [f"{split}{i}" for i in range(2)], seed=seed, phn=True)
    new = write_audio(tmp_path / "new", ["n1", "n2"], seed=9)
    config = ["--config", str(ROOT / "configs" / "speech" / "custom_frames.yaml"), *QUIET, *SMALL,
              "--data.root", "corpus", "--data.batch_size", "2"]
    main(["fit", *config, "--trainer.max_epochs", "1"])
    main(["predict", *config, "--ckpt_path", "last", "--data.predict_path", "new", "--data.predict_output", "out"])
    for name, count in new.items():
        segments = parse_alignment((tmp_path / "out" / f"{name}.PHN").read_text(), f"{name}.PHN")
        assert segments[0].start == 0 and segments[-1].end == count
        assert {s.phone for s in segments} <= {s.name for s in PHONES}


def test_custom_utterances_config_fits_and_predicts_tiny_label_folders(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.cli import main

    monkeypatch.chdir(tmp_path)
    for seed, split in enumerate(("train", "dev", "test")):
        for k, label in enumerate(("yes", "no")):
            write_audio(tmp_path / "recordings" / split / label, [f"{label}{i}" for i in range(2)], seed=10 * seed + k)
    write_audio(tmp_path / "new", ["n1", "n2"], seed=9)
    config = ["--config", str(ROOT / "configs" / "speech" / "custom_utterances.yaml"), *QUIET, *SMALL,
              "--model.pool_heads", "2", "--data.root", "recordings", "--data.batch_size", "4"]
    main(["fit", *config, "--trainer.max_epochs", "1"])
    main(["predict", *config, "--ckpt_path", "last", "--data.predict_path", "new",
          "--data.predict_output", "labels.tsv"])
    rows = list(csv.reader(open(tmp_path / "labels.tsv"), delimiter="\t"))
    assert rows[0] == ["id", "label", "probability"] and len(rows) == 3
    assert all(label in ("yes", "no") and 0.0 < float(p) <= 1.0 for _, label, p in rows[1:])


# ------------------------------------------------------------------------------------ --help text
def described(cls: type) -> dict[str, str | None]:
    """Option -> the description jsonargparse shows in ``--help`` (None: none)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(cls, "x", sub_configs=True)
    return {a.dest: a.help for a in parser._actions if a.dest.startswith("x.")}


def test_help_describes_every_datamodule_and_encoder_option() -> None:
    from core.config import AttentionConfig, EncoderConfig, KernelConfig
    from datamodules.bytetext import ByteText
    from datamodules.graph import GraphData
    from datamodules.graph.csbm import CSBM
    from datamodules.listops import ListOps
    from datamodules.pos import SyntheticTreebank, UDTreebank
    from datamodules.speech import PhoneCorpus, SpecAugment, SyntheticPhones, UtteranceCorpus
    from datamodules.synthetic import SyntheticSequences
    from datamodules.vision import VisionData

    classes = (GraphData, CSBM, VisionData, UDTreebank, SyntheticTreebank, PhoneCorpus, UtteranceCorpus,
               SyntheticPhones, FeatureConfig, SpecAugment, SyntheticSequences, ListOps, ByteText, EncoderConfig,
               AttentionConfig, KernelConfig)
    for cls in classes:
        options = described(cls)
        assert options and not [k for k, text in options.items() if not text], f"{cls.__name__}: undescribed"
    assert described(UDTreebank)["x.num_workers"].startswith("DataLoader worker processes")  # written once
    assert "seed nodes" in described(GraphData)["x.batch_size"]  # a class's own text wins over the shared one
