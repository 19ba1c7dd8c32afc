"""The user's workflow for every app, CI-sized: fit -> test (metrics.json) -> predict (files that parse back) ->
explain (PNGs); fine-tuning through the shared base; clear errors for checkpoints that do not fit; NaN guard;
batches split between processes; a fit killed with SIGKILL resumes to the uninterrupted result; DDP on CPU."""

from __future__ import annotations

import csv
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from datetime import datetime
from pathlib import Path

import conllu
import lightning as L
import pytest
import soundfile as sf
import torch
from torch.utils.data import DistributedSampler, SequentialSampler

from apps.callbacks import EMAWeights, NonFiniteError, NonFiniteGuard
from apps.cli import find_checkpoint, main
from apps.graph import NodeClassifier
from apps.sequence import SEQUENCE_ENCODER, SequenceClassifier
from datamodules.batching import ShardedBatchSampler
from datamodules.speech import parse_alignment, phone_shapes, synthetic_utterance
from datamodules.synthetic import SyntheticSequences

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
ATTNLAB = str(Path(sys.executable).with_name("attnlab"))
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
SMALL_ENCODER = ["--model.encoder.dim", "32", "--model.encoder.depth", "1", "--model.encoder.num_heads", "2"]
APPS = {
    "graph": (["--config", str(CONFIGS / "graph" / "karate.yaml"), "--trainer.max_epochs", "10"], "graph"),
    "pos": (["--config", str(CONFIGS / "pos" / "synthetic.yaml"), *SMALL_ENCODER, "--model.word_dim", "16",
             "--model.char_dim", "8", "--model.char_channels", "16", "--data.num_train", "200", "--data.num_val", "40",
             "--data.num_test", "40", "--trainer.max_epochs", "1"], "tagger"),
    "vision": (["--config", str(CONFIGS / "vision" / "digits.yaml"), *SMALL_ENCODER, "--trainer.max_epochs", "1",
                "--trainer.limit_train_batches", "4"], "vision"),
    "speech": (["--config", str(CONFIGS / "speech" / "synthetic.yaml"), *SMALL_ENCODER, "--data.num_train", "24",
                "--data.num_val", "8", "--data.num_test", "8", "--trainer.max_epochs", "1"], "frameclassifier"),
}
DEMO = ["--config", str(CONFIGS / "demo" / "majority.yaml"), *QUIET, "--model.encoder.dim", "16",
        "--model.encoder.depth", "1", "--model.encoder.num_heads", "2", "--data.num_train", "96",
        "--data.num_val", "32", "--data.num_test", "32", "--data.batch_size", "16"]


def attnlab(*args: str) -> None:
    main(list(args))


@pytest.fixture(autouse=True)
def one_thread():
    """Small models on a shared CPU: one thread is much faster than two competing ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny fit per app (lazily, in its own folder), shared by the tests that evaluate it."""
    done: dict[str, Path] = {}

    class Lazy(dict):
        def __missing__(self, app: str) -> Path:
            root = tmp_path_factory.mktemp(app)
            with pytest.MonkeyPatch.context() as mp:
                mp.chdir(root)
                mp.setattr(sys, "argv", ["attnlab"])
                attnlab("fit", *APPS[app][0], *QUIET)
            self[app] = root
            return root

    return Lazy(done)


def in_dir(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(path)
    monkeypatch.setattr(sys, "argv", ["attnlab"])


# ------------------------------------------------------------------------------------------ evaluate
@pytest.mark.parametrize("app", sorted(APPS))
def test_test_writes_metrics_json(app: str, trained, monkeypatch: pytest.MonkeyPatch) -> None:
    in_dir(trained[app], monkeypatch)
    args, folder = APPS[app]
    attnlab("test", *args, *QUIET, "--ckpt_path", "best")
    ckpt = find_checkpoint(Path("runs") / folder, "best")
    record = json.loads(ckpt.with_suffix(".metrics.json").read_text())
    assert set(record) == {"metrics", "split", "examples", "batches", "limits", "report", "checkpoint", "model", "data",
                           "dataset", "config_sha256", "date"}
    assert record["metrics"] and all(isinstance(v, float) and math.isfinite(v) for v in record["metrics"].values())
    assert 0.0 <= record["metrics"]["test/acc"] <= 1.0
    assert Path(record["checkpoint"]) == ckpt and record["model"].startswith("apps.")
    assert record["data"].startswith("datamodules.") and record["dataset"].endswith("split test")
    assert len(record["config_sha256"]) == 64 and int(record["config_sha256"], 16) >= 0
    assert datetime.fromisoformat(record["date"]).tzinfo is not None


def write_audio(folder: Path, names: list[str]) -> dict[str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    rng, samples = random.Random(7), {}
    for name in names:
        wave, _ = synthetic_utterance(rng, phone_shapes(8), 16000)
        sf.write(str(folder / f"{name}.wav"), wave.numpy(), 16000)
        samples[name] = wave.numel()
    return samples


@pytest.mark.parametrize("app", sorted(APPS))
def test_predict_files_parse_back(app: str, trained, monkeypatch: pytest.MonkeyPatch) -> None:
    in_dir(trained[app], monkeypatch)
    args = [*APPS[app][0], *QUIET, "--ckpt_path", "best"]
    if app == "graph":
        attnlab("predict", *args, "--data.predict_output", "pred/nodes.csv")
        rows = list(csv.DictReader(open("pred/nodes.csv")))
        assert [int(r["node_id"]) for r in rows] == list(range(34))  # karate: every node, sorted
        assert all(0 <= int(r["class"]) < 4 and 0.0 <= float(r["prob"]) <= 1.0 for r in rows)
    elif app == "vision":
        attnlab("predict", *args, "--data.predict_output", "pred/images.csv")
        rows = list(csv.reader(open("pred/images.csv")))
        assert rows[0] == ["image"] + [f"{k}_{r}" for r in range(1, 6) for k in ("class", "prob")]
        assert len(rows) == 1 + 359  # the digits test split
        for row in rows[1:]:
            probs = [float(p) for p in row[2::2]]
            assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-4
    elif app == "pos":
        Path("in.txt").write_text("the dog saw a book .\nMary reads the old newspaper .\n")
        attnlab("predict", *args, "--data.predict_path", "in.txt", "--data.predict_output", "pred/tags.conllu")
        sentences = conllu.parse(Path("pred/tags.conllu").read_text())
        assert [[t["form"] for t in s] for s in sentences] == [["the", "dog", "saw", "a", "book", "."],
                                                               ["Mary", "reads", "the", "old", "newspaper", "."]]
        assert all(t["upos"] not in (None, "_") for s in sentences for t in s)
    else:
        samples = write_audio(Path("audio"), ["u1", "u2"])
        attnlab("predict", *args, "--data.predict_path", "audio", "--data.predict_output", "pred/phones")
        for name, count in samples.items():
            segments = parse_alignment(Path(f"pred/phones/{name}.PHN").read_text(), f"{name}.PHN")
            assert segments[0].start == 0 and segments[-1].end == count
            assert all(a.end == b.start for a, b in zip(segments, segments[1:], strict=False))
            frames = Path(f"pred/phones/{name}.frames").read_text().split()
            assert frames and set(frames) <= {s.phone for s in segments}
    assert not list(Path("pred").rglob(".*.tmp"))


@pytest.mark.parametrize("app", sorted(APPS))
def test_explain_draws_pngs_from_the_checkpoint(app: str, trained, monkeypatch: pytest.MonkeyPatch) -> None:
    in_dir(trained[app], monkeypatch)
    runs = sorted((Path("runs") / APPS[app][1]).glob("version_*"))
    attnlab("explain", *APPS[app][0], *QUIET, "--ckpt_path", "best", "--out", "figures")
    assert sorted((Path("runs") / APPS[app][1]).glob("version_*")) == runs, "explain writes no run folder"
    assert not Path("config.yaml").exists(), "explain saves no config into the working directory"
    expected = {"graph": ["graph_neighbours", "graph_heads"],
                "pos": ["pos_attention_layer1", "pos_attention_layers", "pos_positions"],
                "vision": ["vision_rollout", "vision_positions"],
                "speech": ["speech_band", "speech_heads", "speech_positions"]}[app]
    for name in expected:
        png = Path("figures") / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, png
    assert not list(Path("figures").glob(".*"))


def test_explain_needs_a_checkpoint(trained, monkeypatch: pytest.MonkeyPatch) -> None:
    in_dir(trained["graph"], monkeypatch)
    with pytest.raises(ValueError, match="explain needs --ckpt_path"):
        attnlab("explain", *APPS["graph"][0], *QUIET, "--out", "figures")


def test_explain_takes_the_config_saved_with_the_run(trained, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: a fit run's config.yaml holds ``weights_only``, which explain rejected as an unknown key."""
    in_dir(trained["graph"], monkeypatch)
    saved = Path("runs") / "graph" / "version_0" / "config.yaml"
    assert "weights_only" in saved.read_text()
    attnlab("explain", "--config", str(saved), *QUIET, "--ckpt_path", "best", "--out", "saved_figures")
    assert (Path("saved_figures") / "graph_neighbours.png").stat().st_size > 5000
    assert oct(Path("saved_figures", "graph_heads.png").stat().st_mode & 0o044) == oct(0o044), "readable by all"


def test_explain_finds_a_sentence_and_classes_worth_drawing() -> None:
    """Regression: evaluation loaders sort by length (EWT's first batch is one-word sentences) and a validation
    split may be ordered by class (CIFAR's first batch is all airplanes); explain looks further."""
    from apps.plotting import MAX_TOKENS, MIN_TOKENS
    from apps.vision import VIT_CLASSIFIER_ENCODER, ViTClassifier

    tagger = SequenceClassifier(16, 4, encoder=SEQUENCE_ENCODER.replace(dim=16, depth=1, num_heads=2))
    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.zeros(4, n, dtype=torch.long), torch.ones(4, n, dtype=torch.bool), torch.zeros(4)
    sorted_by_length = [batch(1), batch(3), batch(MIN_TOKENS + 2), batch(MAX_TOKENS + 5)]
    assert tagger.explain_batch(sorted_by_length)[1].size(1) == MIN_TOKENS + 2
    assert tagger.explain_batch([batch(1), batch(2)])[1].size(1) == 1  # nothing fits: the first batch

    vit = ViTClassifier(encoder=VIT_CLASSIFIER_ENCODER.replace(dim=16, depth=1, num_heads=2))
    by_class = [(torch.full((5, 1, 8, 8), float(c)), torch.full((5,), c)) for c in range(10)]
    images, labels = vit.explain_batch(by_class)
    assert labels.tolist() == list(range(8)) and images[:, 0, 0, 0].tolist() == list(range(8))
    images, labels = vit.explain_batch(by_class[:2])  # two classes: one of each, then the rest in order
    assert labels.tolist() == [0, 1, 0, 0, 0, 0, 1, 1]


# ------------------------------------------------------------------------------------------ fine-tune
def test_fine_tune_graph_with_new_input_projection_and_head(trained, monkeypatch: pytest.MonkeyPatch) -> None:
    """karate (34 one-hot features, 4 classes) -> CSBM (other features, 3 classes): the hidden attention layers
    load, the input projection and the head are new, trained at head_lr_scale while the rest is frozen."""
    in_dir(trained["graph"], monkeypatch)
    source = find_checkpoint(Path("runs") / "graph", "best")
    attnlab("fit", "--config", str(CONFIGS / "graph" / "csbm.yaml"), *QUIET, "--trainer.max_epochs", "2",
            "--model.init_from", str(source), "--model.freeze", "backbone", "--model.head_lr_scale", "10",
            "--model.hidden", "32", "--model.depth", "2", "--model.num_heads", "4", "--model.score", "dot",
            "--model.norm", "layer", "--model.input_proj", "true", "--model.output", "linear",
            "--model.edge_features", "false", "--data.csbm.num_classes", "3", "--data.csbm.num_nodes", "300",
            "--trainer.default_root_dir", "csbm")
    run = sorted((Path("csbm") / "graph").glob("version_*"))[-1]
    report = json.loads((run / "init_from.json").read_text())
    assert report["source"] == str(source)
    assert set(report["reshaped"]) == {"input_proj.weight", "head.weight", "head.bias"}
    assert any(k.startswith("encoder.layers.1.") for k in report["loaded"]) and not report["missing"]
    tuned = NodeClassifier.load_from_checkpoint(find_checkpoint(Path("csbm") / "graph", "last"))
    original = torch.load(source, weights_only=True)["state_dict"]
    for key, value in tuned.state_dict().items():
        if key.startswith("encoder."):  # frozen: still the source's weights
            torch.testing.assert_close(value, original[key])


def test_head_and_backbone_learning_rates() -> None:
    model = SequenceClassifier(16, 4, encoder=SEQUENCE_ENCODER.replace(dim=16, depth=1, num_heads=2), head_lr_scale=5.0,
                               backbone_lr_scale=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    lr = {names[id(p)]: g.get("lr", model.optim.lr) for g in model.parameter_groups() for p in g["params"]}
    assert len(lr) == len(names)
    assert lr["head.weight"] == pytest.approx(5.0 * model.optim.lr)
    assert lr["encoder.blocks.0.attn.qkv.weight"] == pytest.approx(0.1 * model.optim.lr)
    with pytest.raises(ValueError, match="head_lr_scale"):
        SequenceClassifier(16, 4, head_lr_scale=-1.0)


# ------------------------------------------------------------------------------------------ errors
def test_checkpoint_that_does_not_fit_names_the_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys) -> None:
    in_dir(tmp_path, monkeypatch)
    attnlab("fit", *DEMO, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2")
    ckpt = find_checkpoint(Path("runs") / "sequenceclassifier", "last")
    # another app's config: one line that names both apps, before anything is built
    with pytest.raises(SystemExit) as exit_info:
        attnlab("test", *APPS["graph"][0], *QUIET, "--ckpt_path", str(ckpt))
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "saved by apps.sequence.SequenceClassifier" in err and "apps.graph.NodeClassifier" in err
    # the same app with other sizes: the mismatching keys by name
    wider = SequenceClassifier(16, 4, encoder=SEQUENCE_ENCODER.replace(dim=32, depth=1, num_heads=2))
    with pytest.raises(ValueError, match=r"shape mismatch .*embed\.weight: checkpoint \(16, 16\), model \(16, 32\)"):
        wider.load_state_dict(torch.load(ckpt, weights_only=True)["state_dict"])
    deeper = SequenceClassifier(16, 4, encoder=SEQUENCE_ENCODER.replace(dim=16, depth=2, num_heads=2))
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ValueError, match=r"keys missing from the checkpoint: \['encoder\.blocks\.1\."):
        trainer.test(deeper, SyntheticSequences(num_train=32, num_val=16, num_test=16), ckpt_path=str(ckpt))
    Path("broken.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit):
        attnlab("test", *DEMO, "--ckpt_path", "broken.ckpt")
    assert "not a readable checkpoint" in capsys.readouterr().err


def test_config_typos_show_the_valid_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    in_dir(tmp_path, monkeypatch)
    cases = [(["--model.optim.lrr", "3"], "unknown key 'lrr' for apps.base.OptimConfig: did you mean lr?"),
             (["--trainer.max_epochz", "3"], "unknown key 'trainer.max_epochz' in trainer: did you mean max_epochs"),
             (["--data.batch_sise", "3"], "did you mean batch_size? valid keys: vocab_size")]
    for typo, expected in cases:
        with pytest.raises(SystemExit):
            attnlab("fit", *DEMO, *typo)
        assert expected in capsys.readouterr().err


def test_nonfinite_guard_errors_skips_or_warns(tmp_path: Path) -> None:
    def run(action: str) -> tuple[SequenceClassifier, NonFiniteGuard]:
        torch.manual_seed(0)
        model = SequenceClassifier(16, 4, encoder=SEQUENCE_ENCODER.replace(dim=16, depth=1, num_heads=2))
        model.head.bias.register_hook(lambda g: g * float("nan"))  # every step's gradient is NaN
        guard = NonFiniteGuard(action)
        trainer = L.Trainer(max_steps=3, callbacks=[guard], logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                            default_root_dir=tmp_path)
        trainer.fit(model, SyntheticSequences(num_train=64, num_val=16, num_test=16, batch_size=16))
        return model, guard

    with pytest.raises(NonFiniteError, match=r"step 0 .*gradients of 1 parameter tensors are not finite: \['head"):
        run("error")
    torch.manual_seed(0)
    # same seed: the initial weights
    before = SequenceClassifier(16, 4, encoder=SEQUENCE_ENCODER.replace(dim=16, depth=1, num_heads=2))
    with pytest.warns(UserWarning, match="step skipped"):
        model, guard = run("skip")
    assert guard.skipped == 3 and all(torch.isfinite(p).all() for p in model.parameters())
    torch.testing.assert_close(model.head.weight, before.head.weight)  # no step was taken
    with pytest.warns(UserWarning, match="not finite"):
        model, _ = run("warn")
    assert not torch.isfinite(model.head.bias).all()  # warned only: the NaN step went through


def test_ema_weights_average_every_layer_built_in_setup_and_resume(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The tagger builds its embeddings and heads in ``setup``: the average must hold them too, be what the
    checkpoint's state_dict (and so ``test``) uses, and come back on resume."""
    in_dir(tmp_path, monkeypatch)

    def fit(decay: float, root: str, *extra: str) -> dict:
        attnlab("fit", *APPS["pos"][0], *QUIET, "--trainer.default_root_dir", root,
                "--trainer.callbacks+=apps.callbacks.EMAWeights", f"--trainer.callbacks.decay={decay}", *extra)
        return torch.load(find_checkpoint(Path(root) / "tagger", "last"), weights_only=False)

    last = fit(0.0, "plain")  # decay 0: the average is the last weights, for every parameter
    assert last["state_dict"].keys() == last["current_model_state"].keys()
    assert any(k.startswith("features.") for k in last["state_dict"])
    for name, value in last["current_model_state"].items():
        torch.testing.assert_close(last["state_dict"][name], value, msg=name)
    averaged = fit(0.9, "ema")
    moved = [k for k, v in averaged["current_model_state"].items()
             if v.is_floating_point() and not torch.equal(averaged["state_dict"][k], v)]
    assert any(k.startswith("features.") for k in moved) and any(k.startswith("encoder.") for k in moved)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = fit(0.9, "ema", "--trainer.max_epochs", "2", "--ckpt_path", "last")
    assert not [w for w in caught if "WeightAveraging" in str(w.message)]  # e.g. "not created with WeightAveraging"
    assert resumed["epoch"] == 1 and resumed["state_dict"].keys() == averaged["state_dict"].keys()
    attnlab("test", *APPS["pos"][0], *QUIET, "--trainer.default_root_dir", "ema", "--ckpt_path", "last")


def test_ema_weights_average_floats_and_keep_integer_buffers(tmp_path: Path) -> None:
    """After a fit the model holds the EMA of its weights (checked against the formula step by step) and its
    integer buffers (id maps) exactly as they were."""
    torch.manual_seed(0)
    model = SequenceClassifier(16, 4, encoder=SEQUENCE_ENCODER.replace(dim=16, depth=1, num_heads=2))
    ids = torch.arange(200)
    model.register_buffer("id_map", ids.clone())
    history = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            history.append(pl_module.head.weight.detach().clone())

    trainer = L.Trainer(max_steps=4, callbacks=[Record(), EMAWeights(decay=0.9)], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(model, SyntheticSequences(num_train=64, num_val=16, num_test=16, batch_size=16))
    expected = history[0]  # the first update copies, then average = 0.9 average + 0.1 current
    for weight in history[1:]:
        expected = 0.9 * expected + 0.1 * weight
    torch.testing.assert_close(model.head.weight, expected)
    assert not torch.equal(model.head.weight, history[-1]) and torch.equal(model.id_map, ids)


def test_ema_weights_keep_a_float32_average_when_training_in_bf16(tmp_path: Path) -> None:
    """In bf16 a 0.1 % step (decay 0.999) is below half an ulp: an average kept in bf16 would stay at its first
    copy. The average is float32 and follows the formula over the bf16 weights."""
    torch.manual_seed(0)
    model = SequenceClassifier(16, 4, encoder=SEQUENCE_ENCODER.replace(dim=16, depth=1, num_heads=2))
    history = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            history.append(pl_module.head.weight.detach().float().clone())

    ema = EMAWeights(decay=0.999)
    trainer = L.Trainer(max_steps=6, precision="bf16-true", callbacks=[Record(), ema], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(model, SyntheticSequences(num_train=96, num_val=16, num_test=16, batch_size=16))
    assert model.head.weight.dtype == torch.bfloat16
    average = ema._average_model.module.head.weight
    expected = history[0]
    for weight in history[1:]:
        expected = 0.999 * expected + 0.001 * weight
    assert average.dtype == torch.float32 and not torch.equal(average, history[0])
    torch.testing.assert_close(average, expected)


# ------------------------------------------------------------------------------------------ processes
def test_sharded_batch_sampler_splits_batches_between_processes() -> None:
    batches = [[0, 1], [2, 3], [4, 5], [6, 7], [8]]
    dataset = list(range(9))
    single = ShardedBatchSampler(SequentialSampler(dataset), batches=batches)
    assert list(single) == batches and len(single) == 5
    shards = [list(ShardedBatchSampler(DistributedSampler(dataset, num_replicas=2, rank=r), batches=batches))
              for r in range(2)]
    assert shards == [[[0, 1], [4, 5], [8]], [[2, 3], [6, 7], [0, 1]]]  # padded so both take 3 steps


def run_cli(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([ATTNLAB, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_ddp_two_processes_on_cpu(tmp_path: Path) -> None:
    """--trainer.strategy ddp --trainer.devices 2 on CPU (gloo): each process takes half of the batches, the
    checkpoint is written once and evaluates like any other."""
    args = [*DEMO, "--trainer.max_epochs", "1", "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp",
            "--trainer.devices", "2"]
    fit = run_cli(["fit", *args], tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    ckpt = find_checkpoint(tmp_path / "runs" / "sequenceclassifier", "last")
    assert torch.load(ckpt, weights_only=True)["global_step"] == 3  # 96 / 16 = 6 batches, 3 per process
    test = run_cli(["test", *DEMO, "--trainer.accelerator", "cpu", "--ckpt_path", "last"], tmp_path)
    assert test.returncode == 0, test.stderr[-3000:]
    assert "test/acc" in json.loads(ckpt.with_suffix(".metrics.json").read_text())["metrics"]


def test_fit_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    """Deterministic mode: fit 4 epochs without a break; fit again, SIGKILL it once last.ckpt holds epoch 0,
    resume with --ckpt_path last. Weights and test metrics of the two last.ckpt files are identical."""
    args = [*DEMO, "--trainer.max_epochs", "4", "--trainer.deterministic", "true", "--model.encoder.dropout", "0.2",
            "--data.num_train", "320", "--trainer.accelerator", "cpu"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    whole.mkdir()
    broken.mkdir()
    assert run_cli(["fit", *args], whole).returncode == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([ATTNLAB, "fit", *args], cwd=broken, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    last = broken / "runs" / "sequenceclassifier" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 180
    while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert torch.load(last, weights_only=True)["epoch"] < 3, "killed before the end"
    resumed = run_cli(["fit", *args, "--ckpt_path", "last"], broken)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not (last.parents[2] / "version_1").exists(), "the resumed fit goes on in the same run folder"
    results = []
    for folder in (whole, broken):
        ckpt = find_checkpoint(folder / "runs" / "sequenceclassifier", "last")
        state = torch.load(ckpt, weights_only=True)
        assert state["epoch"] == 3
        assert run_cli(["test", *DEMO, "--trainer.accelerator", "cpu", "--ckpt_path", "last"], folder).returncode == 0
        results.append((state["state_dict"], json.loads(ckpt.with_suffix(".metrics.json").read_text())["metrics"]))
    (a_state, a_metrics), (b_state, b_metrics) = results
    assert a_metrics == b_metrics
    for key in a_state:
        assert torch.equal(a_state[key], b_state[key]), key
