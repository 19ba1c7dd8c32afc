"""Checkpoints saved before the encoder's options were grouped (flat ``dim``, ``depth``, ``num_heads``, ...,
``encoder: attention``, ``kernel: performer``) keep loading, through ``load_from_checkpoint`` and through
``attnlab test --ckpt_path`` (``apps.upgrade``).

No binary fixtures: each test fits a tiny checkpoint with today's code, rewrites its ``hyper_parameters``
into the flat form the code before the grouping saved, and checks that the old form loads to the same model
(same options, same weights) and tests to the same metrics as the new one.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import soundfile as sf
import torch

from apps.cli import AttnLabCLI, find_checkpoint, main
from apps.lra import LRAClassifier
from apps.pos import Tagger
from apps.sequence import SEQUENCE_ENCODER, SequenceClassifier
from apps.speech import FrameClassifier, UtteranceClassifier
from apps.upgrade import checkpoint_model_config, needs_upgrade, upgrade_hparams
from apps.vision import ViTClassifier
from core import EncoderConfig, KernelConfig, Truncated
from datamodules.synthetic import SyntheticSequences

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
         "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
         "--trainer.limit_test_batches", "2", "--trainer.log_every_n_steps", "1"]
SMALL = ["--model.encoder.dim", "16", "--model.encoder.depth", "1", "--model.encoder.num_heads", "2"]

# The encoder keys each app's __init__ took before the grouping (its old signature), and what else changed.
OLD_KEYS = {
    SequenceClassifier: ("dim", "depth", "num_heads", "mlp_ratio", "dropout", "score"),
    LRAClassifier: ("dim", "depth", "num_heads", "mlp_ratio", "dropout"),
    FrameClassifier: ("dim", "depth", "num_heads", "mlp_ratio", "dropout", "attn_dropout", "drop_path", "position",
                      "max_relative_distance"),
    UtteranceClassifier: ("dim", "depth", "num_heads", "mlp_ratio", "dropout", "attn_dropout", "drop_path",
                          "position", "max_relative_distance"),
    Tagger: ("dim", "depth", "num_heads", "mlp_ratio", "dropout", "attn_dropout", "drop_path",
             "max_relative_distance"),
    ViTClassifier: ("dim", "depth", "num_heads", "mlp_ratio", "dropout", "attn_dropout", "drop_path", "norm_eps"),
}
APPS = {  # name: (class, attnlab arguments of a tiny run, runs/ folder)
    "sequence": (SequenceClassifier, ["--config", str(CONFIGS / "demo" / "majority.yaml"), *SMALL,
                                      "--model.encoder.position", "rotary", "--model.position", "none",
                                      "--data.num_train", "32", "--data.num_val", "16", "--data.num_test", "16",
                                      "--data.batch_size", "8"], "sequenceclassifier"),
    "lra": (LRAClassifier, ["--config", str(CONFIGS / "lra" / "listops.yaml"), *SMALL,
                            "--model.encoder.kernel.kind", "performer", "--model.encoder.kernel.num_features", "8",
                            "--data.min_len", "40", "--data.max_len", "60", "--data.num_train", "8",
                            "--data.num_val", "4", "--data.num_test", "4", "--data.batch_size", "4"], "lra"),
    "frame": (FrameClassifier, ["--config", str(CONFIGS / "speech" / "synthetic.yaml"), *SMALL,
                                "--model.encoder.position", "rotary", "--data.num_train", "8", "--data.num_val", "4",
                                "--data.num_test", "4", "--data.batch_size", "4"], "frameclassifier"),
    "utterance": (UtteranceClassifier, ["--config", str(CONFIGS / "speech" / "fsdd.yaml"), *SMALL,
                                        "--model.pool_heads", "2", "--data.root", "fsdd", "--data.batch_size", "4",
                                        "--data.val_fraction", "0.25"], "utteranceclassifier"),
    "tagger": (Tagger, ["--config", str(CONFIGS / "pos" / "synthetic.yaml"), *SMALL, "--model.position", "sinusoidal",
                        "--model.encoder.position", "none", "--model.word_dim", "8", "--model.char_dim", "4",
                        "--model.char_channels", "8", "--data.num_train", "32", "--data.num_val", "8",
                        "--data.num_test", "8"], "tagger"),
    "vision": (ViTClassifier, ["--config", str(CONFIGS / "vision" / "digits.yaml"), *SMALL,
                               "--data.batch_size", "16", "--data.eval_batch_size", "32"], "vision"),
}


def flat_hparams(model_class: type, hparams: dict[str, Any]) -> dict[str, Any]:
    """Today's hyperparameters in the form the code before the grouping saved (the inverse of the upgrade)."""
    hp = dict(hparams)
    encoder = hp.pop("encoder")
    encoder = dataclasses.asdict(encoder) if isinstance(encoder, EncoderConfig) else dict(encoder)
    for key in OLD_KEYS[model_class]:
        hp[key] = encoder[key]
    if model_class in (SequenceClassifier, Tagger) and encoder["position"] != "none":
        hp["position"] = encoder["position"]  # one key for input and attention positions
    if model_class is LRAClassifier:
        kernel = encoder["kernel"]
        hp.update(kernel=kernel["kind"], num_features=kernel["num_features"], max_length=kernel["max_length"],
                  redraw_interval=kernel["redraw_interval"])
    if model_class in (FrameClassifier, Tagger):
        hp["encoder"] = hp.pop("backbone")  # the backbone's old name
    return hp


def write_old(ckpt: Path, model_class: type) -> Path:
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"] = flat_hparams(model_class, checkpoint["hyper_parameters"])
    old = ckpt.with_name("old-" + ckpt.name)
    torch.save(checkpoint, old)
    return old


def assert_same_model(a: L.LightningModule, b: L.LightningModule) -> None:
    assert type(a) is type(b) and a.encoder_config == b.encoder_config
    for (name_a, ta), (name_b, tb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert name_a == name_b and torch.equal(ta, tb), name_a


def fsdd_folder(root: Path) -> None:
    """Three "digits" (tones), two speakers, 8 kHz: the FSDD layout (index 0-4 test)."""
    folder = root / "recordings"
    folder.mkdir(parents=True)
    for digit, freq in enumerate((300, 900, 2000)):
        for speaker in ("ann", "bob"):
            for index in range(7):
                t = torch.arange(2400) / 8000
                wave = 0.5 * torch.sin(2 * math.pi * freq * t) + 0.05 * torch.randn(t.numel())
                sf.write(folder / f"{digit}_{speaker}_{index}.wav", wave.numpy(), 8000)


@pytest.mark.parametrize("app", sorted(APPS))
def test_old_flat_checkpoint_loads_and_tests_the_same(app: str, tmp_path: Path, monkeypatch) -> None:
    model_class, args, app_dir = APPS[app]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["attnlab"])
    torch.manual_seed(0)
    if app == "utterance":
        fsdd_folder(tmp_path / "fsdd")
    main(["fit", *args, *QUIET])
    new = find_checkpoint(Path("runs") / app_dir, "last")
    old = write_old(new, model_class)
    saved = torch.load(old, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert "dim" in saved and "encoder" not in saved or isinstance(saved["encoder"], str)
    assert needs_upgrade(model_class, saved)

    # load_from_checkpoint: the same options and weights from either form
    assert_same_model(model_class.load_from_checkpoint(old), model_class.load_from_checkpoint(new))

    # attnlab test --ckpt_path: the checkpoint's hyperparameters become the config, old keys upgraded
    results = []
    for ckpt in (new, old):
        cli = AttnLabCLI(args=["test", *args, *QUIET, "--ckpt_path", str(ckpt)])
        metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if "per_s" not in k}  # not timings
        results.append((cli.model, metrics))
    assert_same_model(results[0][0], results[1][0])
    assert results[0][1] == results[1][1] and any(k.startswith("test/") for k in results[0][1])


def test_old_python_built_checkpoint_loads(tmp_path: Path) -> None:
    """Hyperparameters of a model built in Python hold objects (no ``_class_path``): the upgrade builds an
    ``EncoderConfig``, and the checkpoint loads under weights_only."""
    torch.manual_seed(0)
    model = SequenceClassifier(16, 4, encoder=SEQUENCE_ENCODER.replace(dim=16, depth=1, num_heads=2,
                                                                       position="relative"),
                               position="none", pattern=Truncated(2, 2))
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(model, SyntheticSequences(num_train=32, num_val=16, num_test=16, batch_size=16))
    trainer.save_checkpoint(tmp_path / "new.ckpt")
    old = write_old(tmp_path / "new.ckpt", SequenceClassifier)
    hp = torch.load(old, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert hp["position"] == "relative" and hp["dim"] == 16 and "_class_path" not in hp
    loaded = SequenceClassifier.load_from_checkpoint(old)
    assert loaded.encoder_config == model.encoder_config and loaded.position == "none"
    assert loaded.pattern == Truncated(2, 2)
    assert_same_model(loaded, SequenceClassifier.load_from_checkpoint(tmp_path / "new.ckpt"))
    tokens, mask = torch.randint(0, 16, (2, 7)), torch.ones(2, 7, dtype=torch.bool)
    torch.testing.assert_close(loaded.eval()(tokens, mask), model.eval()(tokens, mask))


def test_upgrade_rules() -> None:
    """The translation itself, on the flat forms the old code saved (``attnlab`` configs and Python objects)."""
    speech = {"_class_path": "apps.speech.FrameClassifier", "dim": 64, "depth": 2, "num_heads": 4, "mlp_ratio": 2.0,
              "dropout": 0.1, "attn_dropout": 0.0, "drop_path": 0.0, "position": "relative",
              "max_relative_distance": 16, "encoder": "attention", "context": 5, "input_context": 0}
    up = upgrade_hparams(FrameClassifier, speech)
    assert up["backbone"] == "attention" and up["context"] == 5 and "dim" not in up
    assert up["encoder"] == dataclasses.asdict(EncoderConfig(dim=64, depth=2, num_heads=4, mlp_ratio=2.0, dropout=0.1,
                                                             position="relative", max_relative_distance=16))
    assert upgrade_hparams(FrameClassifier, up) == up  # today's form passes unchanged
    # the tagger: sinusoidal stays on the inputs, its encoder then has no attention positions
    tagger = upgrade_hparams(Tagger, {"dim": 32, "depth": 1, "num_heads": 2, "position": "sinusoidal"})
    assert tagger["position"] == "sinusoidal" and tagger["encoder"].position == "none"
    assert tagger["encoder"].dropout == 0.1  # missing keys keep the app's default
    rotary = upgrade_hparams(SequenceClassifier, {"dim": 16, "depth": 1, "num_heads": 2, "position": "rotary"})
    assert rotary["position"] == "none" and rotary["encoder"].position == "rotary"
    lra = upgrade_hparams(LRAClassifier, {"dim": 16, "depth": 1, "num_heads": 2, "kernel": "linformer",
                                          "num_features": 8})
    assert lra["encoder"].kernel == KernelConfig("linformer", num_features=8, max_length=2048)
    config = checkpoint_model_config({"_class_path": "apps.speech.FrameClassifier", **speech,
                                      "_instantiator": "lightning.pytorch.cli.instantiate_module"})
    assert config["class_path"] == "apps.speech.FrameClassifier" and config["dict_kwargs"]["encoder"]["dim"] == 64
