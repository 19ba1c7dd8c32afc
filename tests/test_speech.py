"""Speech app: frame labels, bad files, feature cache, streaming = offline, pooling, CLI fit/test/predict."""

from __future__ import annotations

import json
import math
import random
import sys
from collections import Counter
from pathlib import Path

import lightning as L
import pytest
import soundfile as sf
import torch

import datamodules.speech as speech
import datamodules.speech.cache as speech_cache
from apps.base import OptimConfig
from apps.cli import find_checkpoint, main
from apps.speech import SPEECH_ENCODER, FrameClassifier, UtteranceClassifier, boundary_frames
from core import AttentionPooling, Full, StreamingEncoder, Truncated
from datamodules.speech import (
    IGNORE,
    FeatureConfig,
    FeatureExtractor,
    FeatureStream,
    PhoneCorpus,
    SpeechDataError,
    SpeechMeta,
    SyntheticPhones,
    UtteranceCorpus,
    collate,
    merge_frames,
    phone_shapes,
    synthetic_utterance,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CONFIG = str(ROOT / "configs" / "speech" / "synthetic.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
SMALL = ["--config", CONFIG, *QUIET, "--data.num_train", "120", "--data.num_val", "20", "--data.num_test", "40",
         "--trainer.max_epochs", "3", "--trainer.log_every_n_steps", "2"]
APP_DIR = Path("runs") / "frameclassifier"

# 4000 samples at 16 kHz; frames: 25 ms window (400), 10 ms hop (160), centre of frame t = 160 t + 200.
# 1 + (4000 - 400) // 160 = 23 frames. pau covers centres < 1000 -> t = 0..4; a: 1000 <= c < 2600 -> t = 5..14;
# b: the rest, t = 15..22.
PHN = "0 1000 pau\n1000 2600 a\n2600 4000 b\n"
HAND_LABELS = ["pau"] * 5 + ["a"] * 10 + ["b"] * 8


@pytest.fixture(autouse=True)
def one_thread():
    """Small models on a shared CPU: one thread is much faster than two competing ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def attnlab(*args: str) -> None:
    main(list(args))


def noise(n: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(n, generator=torch.Generator().manual_seed(seed))


def write_utterance(folder: Path, name: str, wave: torch.Tensor | None, phn: str | None, rate: int = 16000,
                    suffix: str = ".wav") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    audio = folder / f"{name}{suffix}"
    if wave is not None:
        sf.write(str(audio), wave.numpy(), rate)
    if phn is not None:
        (folder / f"{name}.PHN").write_text(phn)
    return audio


def small_corpus(root: Path, dev_phn: str = PHN) -> Path:
    """train: two utterances; dev and test: one each (TIMIT layout)."""
    for i in range(2):
        write_utterance(root / "train", f"tr{i}", noise(4000, i), PHN, suffix=".flac")
    write_utterance(root / "dev", "dv0", noise(4000, 5), dev_phn)
    write_utterance(root / "test", "te0", noise(4000, 6), PHN)
    return root


def labels_of(dm: PhoneCorpus, split: str, i: int = 0) -> list[str]:
    item = dm.dataset(split).items[i]
    return [dm.meta.labels[t] if t != IGNORE else "-" for t in item["frame_labels"].tolist()]


# ------------------------------------------------------------------------------------------ frame labels
def test_frame_labels_match_hand_computed(tmp_path: Path) -> None:
    dm = PhoneCorpus(root=str(small_corpus(tmp_path)), features=FeatureConfig(n_mels=20))
    dm.setup("fit")
    assert dm.meta.labels == ["a", "b", "pau"]
    assert labels_of(dm, "train") == HAND_LABELS and labels_of(dm, "val") == HAND_LABELS
    # the same alignment at 8 kHz, features at 16 kHz: the audio is resampled, labels are the same
    half = tmp_path / "8k"
    for split in ("train", "dev"):
        write_utterance(half / split, "u", noise(2000), "0 500 pau\n500 1300 a\n1300 2000 b\n", rate=8000)
    dm8 = PhoneCorpus(root=str(half), features=FeatureConfig(n_mels=20))
    dm8.setup("fit")
    assert labels_of(dm8, "train") == HAND_LABELS
    # a tail the alignment does not cover is ignored, not guessed
    tail = tmp_path / "tail"
    for split in ("train", "dev"):
        write_utterance(tail / split, "u", noise(4000), "0 1000 pau\n1000 2600 a\n")
    dm_tail = PhoneCorpus(root=str(tail), features=FeatureConfig(n_mels=20))
    dm_tail.setup("fit")
    assert labels_of(dm_tail, "train") == HAND_LABELS[:15] + ["-"] * 8


def test_merged_segments_and_fold_map(tmp_path: Path) -> None:
    cfg = FeatureConfig()
    assert merge_frames(HAND_LABELS, cfg, 16000, 4000) == [(0, 920, "pau"), (920, 2520, "a"), (2520, 4000, "b")]
    fold = tmp_path / "fold.txt"
    fold.write_text("# 3 -> 2 phones\npau sil\na vowel\nb\n")
    dm = PhoneCorpus(root=str(small_corpus(tmp_path / "c")), fold_map=str(fold), features=FeatureConfig(n_mels=20))
    dm.setup("fit")
    assert dm.meta.labels == ["sil", "vowel"]
    assert labels_of(dm, "train") == ["sil"] * 5 + ["vowel"] * 10 + ["-"] * 8  # b is dropped: ignored
    fold.write_text("pau sil\na\n")
    with pytest.raises(SpeechDataError, match=r"tr0\.PHN:3: phone 'b' is not in the fold map"):
        PhoneCorpus(root=str(tmp_path / "c"), fold_map=str(fold)).setup("fit")
    fold.write_text("pau sil extra\n")
    with pytest.raises(ValueError, match=r"fold\.txt:1: expected 'phone folded_phone'"):
        PhoneCorpus(root=str(tmp_path / "c"), fold_map=str(fold))


# ------------------------------------------------------------------------------------------ bad files
BAD = {  # name: (how to write dev/dv0, kind, message pattern after the file name)
    "unreadable": (lambda d: (d / "dv0.wav").write_bytes(b"RIFF....not audio"), "unreadable audio",
                   r"dv0\.wav: unreadable audio"),
    "empty": (lambda d: sf.write(str(d / "dv0.wav"), torch.zeros(0).numpy(), 16000), "empty audio",
              r"dv0\.wav: empty audio"),
    "past_end": (lambda d: (d / "dv0.PHN").write_text(PHN.replace("2600 4000", "2600 4100")),
                 "alignment past the end of the audio", r"dv0\.PHN:3: segment ends at sample 4100, past the end"),
    "unknown_phone": (lambda d: (d / "dv0.PHN").write_text(PHN.replace("a\n", "zz\n")), "unknown phone",
                      r"dv0\.PHN:2: phone 'zz' does not occur in the training data"),
    "malformed": (lambda d: (d / "dv0.PHN").write_text("0 1000\n"), "malformed alignment",
                  r"dv0\.PHN:1: expected 'start_sample end_sample phone'"),
    "no_alignment": (lambda d: (d / "dv0.PHN").unlink(), "no alignment", r"dv0\.wav: no alignment file"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_stop_or_are_skipped_as_configured(tmp_path: Path, case: str) -> None:
    write, kind, pattern = BAD[case]
    root = small_corpus(tmp_path)
    write_utterance(root / "dev", "dv1", noise(4000, 7), PHN)  # a good one next to the bad one
    write(root / "dev")
    with pytest.raises(SpeechDataError, match=pattern) as error:
        PhoneCorpus(root=str(root), features=FeatureConfig(n_mels=20)).setup("fit")
    assert str(error.value).startswith(str(root / "dev" / "dv0")) and error.value.kind == kind
    dm = PhoneCorpus(root=str(root), features=FeatureConfig(n_mels=20), on_bad_file="skip")
    with pytest.warns(UserWarning, match=f"val: skipped 1 of 2 files .*1 {kind}; first: .*{pattern}"):
        dm.setup("fit")
    assert dm.skipped == {"val": Counter({kind: 1})} and len(dm.dataset("val")) == 1
    assert labels_of(dm, "val") == HAND_LABELS


# ------------------------------------------------------------------------------------------ features, cache
def test_features_are_computed_once_and_cached_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, cache = small_corpus(tmp_path / "c"), tmp_path / "cache"
    dm = PhoneCorpus(root=str(root), features=FeatureConfig(n_mels=20, deltas=1), cache_dir=str(cache), batch_size=1)
    model = FrameClassifier(encoder=SPEECH_ENCODER.replace(dim=16, depth=1, num_heads=2), pattern=Truncated(4, 4))
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, dm)
    assert trainer.current_epoch == 2 and dm.feature_computations == 3  # 2 train + 1 dev files, for 2 epochs
    assert len(list(cache.glob("*.pt"))) == 3 and not list(cache.glob(".*.tmp"))
    monkeypatch.setattr(speech_cache, "_FEATURES", {})  # a new process: only the disk cache is left
    again = PhoneCorpus(root=str(root), features=FeatureConfig(n_mels=20, deltas=1), cache_dir=str(cache))
    again.setup("fit")
    assert again.feature_computations == 0
    torch.testing.assert_close(again.prepared("train")[0].features, dm.prepared("train")[0].features)
    assert again.prepared("train")[0].features.shape == (23, 40)


def test_frame_shifts_give_training_copies_on_moved_grids(tmp_path: Path) -> None:
    """frame_shifts=2: a second version of each training utterance whose frames start 80 samples in. With the
    pau|a boundary at 1050, frame 5 (centre 1000) is pau on the plain grid and a (centre 1080) on the moved one."""
    phn = "0 1050 pau\n1050 2600 a\n2600 4000 b\n"
    audio = [write_utterance(tmp_path / "train", f"tr{i}", noise(4000, i), phn, suffix=".flac") for i in range(2)]
    write_utterance(tmp_path / "dev", "dv0", noise(4000, 5), PHN)
    dm = PhoneCorpus(root=str(tmp_path), features=FeatureConfig(n_mels=20), frame_shifts=2)
    dm.setup("fit")
    train = dm.dataset("train")
    item = train.items[0]
    assert labels_of(dm, "train") == ["pau"] * 6 + ["a"] * 9 + ["b"] * 8
    (copy,) = item["shifted"]
    assert [dm.meta.labels[t] for t in copy["frame_labels"].tolist()] == HAND_LABELS
    wave = speech.read_audio(audio[0], 16000)[0]
    torch.testing.assert_close(copy["features"], dm.meta.normalise(dm.extractor(wave[80:])))
    torch.manual_seed(0)
    drawn = {tuple(train[0][1]["frame_labels"].tolist()) for _ in range(40)}
    assert drawn == {tuple(item["frame_labels"].tolist()), tuple(copy["frame_labels"].tolist())}
    assert "shifted" not in dm.dataset("val").items[0]  # evaluation data is never shifted
    with pytest.raises(ValueError, match="data.frame_shifts"):
        PhoneCorpus(root=str(tmp_path), frame_shifts=0)


def test_boundary_frames_are_the_last_and_first_frame_around_a_change() -> None:
    labels = torch.tensor([[3, 3, 3, 5, 5, 5, 5, 1, IGNORE, IGNORE], [2, 2, IGNORE, 2, 4, 4, 4, 4, 4, 4]])
    expected = [[0, 0, 1, 1, 0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 0, 0, 0, 0, 0]]
    assert boundary_frames(labels).int().tolist() == expected


def test_spec_augment_masks_training_batches_only(tmp_path: Path) -> None:
    dm = PhoneCorpus(root=str(small_corpus(tmp_path)), features=FeatureConfig(n_mels=20),
                     spec_augment=speech.SpecAugment(freq_masks=2, freq_width=5, time_masks=2, time_width=4))
    dm.setup("fit")
    train, val = dm.dataset("train"), dm.dataset("val")
    assert not torch.equal(train[0][1]["features"], train.items[0]["features"])  # a masked copy
    assert torch.equal(train.items[0]["features"], dm.meta.normalise(dm.prepared("train")[0].features))
    assert torch.equal(val[0][1]["features"], val.items[0]["features"])


# ------------------------------------------------------------------------------------------ model
def _meta(num_labels: int = 5, **features) -> SpeechMeta:
    return SpeechMeta([f"p{i}" for i in range(num_labels)], FeatureConfig(**features))


def test_padding_is_excluded(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = FrameClassifier(encoder=SPEECH_ENCODER.replace(dim=32, depth=2, num_heads=4), pattern=Truncated(8, 3))
    model.set_meta(_meta(n_mels=12))
    model.eval()
    long, short = torch.randn(300, 12), torch.randn(140, 12)
    batch = collate([(0, {"features": long, "frame_labels": torch.zeros(300, dtype=torch.long)}),
                     (1, {"features": short, "frame_labels": torch.ones(140, dtype=torch.long)})])
    assert batch["labels"][1, 140:].eq(IGNORE).all() and batch["mask"].sum() == 440
    logits = model(batch["features"], batch["mask"])
    torch.testing.assert_close(logits[1, :140], model(short[None], torch.ones(1, 140, dtype=torch.bool))[0])
    garbage = batch["features"].clone()
    garbage[1, 140:] = 1e3  # whatever sits in the padding changes nothing
    torch.testing.assert_close(model(garbage, batch["mask"])[1, :140], logits[1, :140])


@pytest.mark.parametrize(("position", "left", "right", "chunk", "input_context"), [
    ("relative", 8, 3, 17, 0), ("relative", 5, 0, 1, 2), ("rotary", 4, 4, 50, 0), ("relative", 32, 32, 64, 3),
])
def test_streaming_equals_offline(position: str, left: int, right: int, chunk: int, input_context: int) -> None:
    torch.manual_seed(0)
    model = FrameClassifier(encoder=SPEECH_ENCODER.replace(dim=32, depth=3, num_heads=4, position=position,
                            max_relative_distance=max(left, right, 1)), pattern=Truncated(left, right),
                            input_context=input_context)
    model.set_meta(_meta(n_mels=12))
    model.eval()
    length = 700 if chunk > 1 else 160
    features = torch.randn(length, 12)
    offline = model(features[None], torch.ones(1, length, dtype=torch.bool))[0]
    pieces = [features[i:i + chunk] for i in range(0, length, chunk)]
    streamed = torch.cat(list(model.stream(pieces)))
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=1e-5)
    assert torch.equal(streamed.argmax(-1), offline.argmax(-1))
    # what is cached stays bounded: depth · (left + right) encoder vectors, whatever the length
    streamer = StreamingEncoder(model.encoder, model.pattern)
    held = []
    for piece in pieces:
        streamer.push(torch.randn(1, len(piece), 32))
        held.append(streamer.cached_frames())
    assert max(held) <= 3 * (left + right) and streamer.latency == 3 * right


def test_stream_file_equals_offline_pass(tmp_path: Path) -> None:
    """Audio read in 0.37 s blocks -> streamed features (with Δ, ΔΔ) -> streamed encoder == the whole file at once."""
    wave, _ = synthetic_utterance(random.Random(0), phone_shapes(5), 16000, num_segments=(30, 30))
    path = write_utterance(tmp_path, "long", wave, None)
    cfg = FeatureConfig(n_mels=20, deltas=2, normalize="global")
    features = FeatureExtractor(cfg)(torch.from_numpy(sf.read(str(path), dtype="float32")[0]))
    meta = SpeechMeta(["a", "b", "c"], cfg, mean=features.mean(0).tolist(), std=features.std(0).tolist())
    pieces = []
    stream = FeatureStream(FeatureExtractor(cfg))
    for block, _ in speech.iter_blocks(path, 0.37):
        pieces.append(stream.push(block))
    pieces.append(stream.flush())
    torch.testing.assert_close(torch.cat(pieces), features, atol=1e-4, rtol=1e-5)
    torch.manual_seed(0)
    model = FrameClassifier(encoder=SPEECH_ENCODER.replace(dim=32, depth=2, num_heads=4), pattern=Truncated(6, 2))
    model.set_meta(meta)
    model.eval()
    offline = model(meta.normalise(features)[None], torch.ones(1, len(features), dtype=torch.bool))[0]
    streamed = torch.cat(list(model.stream_file(path, seconds=0.37)))
    assert streamed.shape == offline.shape and torch.equal(streamed.argmax(-1), offline.argmax(-1))
    torch.testing.assert_close(streamed, offline, atol=1e-4, rtol=1e-4)
    per_utterance = FrameClassifier(encoder=SPEECH_ENCODER.replace(dim=32, depth=1, num_heads=4))
    per_utterance.set_meta(_meta())
    with pytest.raises(ValueError, match="normalize: global"):
        next(per_utterance.stream_file(path))
    full = FrameClassifier(encoder=SPEECH_ENCODER.replace(dim=32, depth=1, num_heads=4), pattern=Full())
    full.set_meta(_meta())
    with pytest.raises(ValueError, match="Truncated"):
        next(full.stream([features]))


def test_attention_pooling_matches_the_formula() -> None:
    torch.manual_seed(0)
    pool = AttentionPooling(dim=12, num_heads=3)
    x, mask = torch.randn(2, 7, 12), torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    out, weights = pool(x, mask, return_weights=True)
    for b in range(2):
        heads = []
        for h in range(3):
            cols = slice(4 * h, 4 * h + 4)
            n = int(mask[b].sum())
            k = (x[b, :n] @ pool.kv.weight[:12].T + pool.kv.bias[:12])[:, cols]
            v = (x[b, :n] @ pool.kv.weight[12:].T + pool.kv.bias[12:])[:, cols]
            alpha = torch.softmax(k @ pool.query[h] / math.sqrt(4), dim=0)
            torch.testing.assert_close(weights[b, h, :n], alpha)
            heads.append(alpha @ v)
        torch.testing.assert_close(out[b], pool.proj(torch.cat(heads)))
    assert weights[1, :, 4:].eq(0).all()
    with pytest.raises(ValueError, match="padding_mask"):
        pool(x, mask.float())


# ------------------------------------------------------------------------------------------ utterance corpora
def tone(freq: float, seed: int, rate: int = 8000) -> torch.Tensor:
    t = torch.arange(int(rate * random.Random(seed).uniform(0.3, 0.5))) / rate
    return (0.5 * torch.sin(2 * math.pi * freq * t) + 0.05 * torch.randn(t.numel())).float()


def test_fsdd_split_and_utterance_classifier_learns(tmp_path: Path) -> None:
    root = tmp_path / "fsdd" / "recordings"
    for digit, freq in enumerate((300, 900, 2000)):
        for speaker in ("ann", "bob"):
            for index in range(12):
                write_utterance(root, f"{digit}_{speaker}_{index}", tone(freq, index), None, rate=8000)
    features = FeatureConfig(sample_rate=8000, normalize="global")  # per utterance would erase a steady tone
    dm = UtteranceCorpus(root=str(tmp_path / "fsdd"), val_fraction=0.2, batch_size=8, features=features)
    test_ids = {u.id for u in dm.records("test")}
    assert test_ids == {f"{d}_{s}_{i}" for d in range(3) for s in ("ann", "bob") for i in range(5)}
    assert not {u.id for u in dm.records("train")} & ({u.id for u in dm.records("val")} | test_ids)
    assert len(dm.records("train")) + len(dm.records("val")) == 42
    model = UtteranceClassifier(encoder=SPEECH_ENCODER.replace(dim=32, depth=1, num_heads=4), pattern=Full(),
                                optim=OptimConfig(lr=3e-3))
    trainer = L.Trainer(max_epochs=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, dm)
    assert model.meta.labels == ["0", "1", "2"] and model.meta.features.sample_rate == 8000
    assert trainer.test(model, dm, verbose=False)[0]["test/acc"] == 1.0


def test_folder_per_class_layout(tmp_path: Path) -> None:
    for word in ("yes", "no"):
        for i in range(10):
            write_utterance(tmp_path / word, f"s{i}", tone(440, i), None, rate=8000)
    write_utterance(tmp_path / "_background_noise_", "hum", tone(50, 0), None, rate=8000)
    (tmp_path / "validation_list.txt").write_text("yes/s0.wav\nno/s0.wav\n")
    (tmp_path / "testing_list.txt").write_text("yes/s1.wav\n")
    dm = UtteranceCorpus(root=str(tmp_path), layout="folders")
    assert [(u.id, u.label) for u in dm.records("val")] == [("no/s0", "no"), ("yes/s0", "yes")]
    assert [u.id for u in dm.records("test")] == ["yes/s1"] and len(dm.records("train")) == 17


# ------------------------------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("speech")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(sys, "argv", ["attnlab"])
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            attnlab("fit", *SMALL)
        finally:
            torch.set_num_threads(threads)
    return root


@pytest.fixture
def in_run_dir(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(run_dir)
    monkeypatch.setattr(sys, "argv", ["attnlab"])
    return run_dir


def test_synthetic_fit_learns(in_run_dir: Path) -> None:
    ckpt = find_checkpoint(APP_DIR, "best")
    attnlab("test", *SMALL, "--ckpt_path", "best")
    metrics = json.loads(ckpt.with_suffix(".metrics.json").read_text())["metrics"]
    assert metrics["test/acc"] > 0.9, metrics
    # every labelled frame is either on a boundary or inside a phone: the accuracy is their weighted mean
    low, high = sorted((metrics["test/acc_boundary"], metrics["test/acc_interior"]))
    assert low - 1e-6 <= metrics["test/acc"] <= high + 1e-6 and low < high, metrics
    model = FrameClassifier.load_from_checkpoint(ckpt, map_location="cpu")
    assert model.meta == SyntheticPhones(num_train=120, features=model.meta.features).build_meta()
    assert model.meta.labels[-1] == "sil" and torch.load(ckpt, weights_only=True)["speech_meta"]["level"] == "frame"


@pytest.mark.filterwarnings("ignore:.*custom batch sampler")
def test_predict_writes_frames_and_segments(in_run_dir: Path) -> None:
    rng = random.Random(99)
    truth = {}
    for name in ("one", "two"):
        wave, segments = synthetic_utterance(rng, phone_shapes(8), 16000)
        write_utterance(Path("audio"), name, wave, None)
        truth[name] = (wave.numel(), segments)
    attnlab("predict", *SMALL, "--ckpt_path", "best", "--data.predict_path", "audio", "--data.predict_output", "out")
    cfg = FeatureConfig()
    for name, (samples, segments) in truth.items():
        frames = Path(f"out/{name}.frames").read_text().split()
        assert len(frames) == cfg.num_frames(samples)
        gold = [segments[i].phone for i in speech.frame_phones(segments, len(frames), cfg, 16000)]
        assert sum(g == p for g, p in zip(gold, frames, strict=True)) / len(frames) > 0.85
        rows = [line.split() for line in Path(f"out/{name}.PHN").read_text().splitlines()]
        assert rows[0][0] == "0" and rows[-1][1] == str(samples)
        assert all(a[1] == b[0] and a[2] != b[2] for a, b in zip(rows, rows[1:], strict=False))
    assert not list(Path("out").glob(".*.tmp"))


def test_test_without_checkpoint_says_what_is_missing(in_run_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="--ckpt_path"):
        attnlab("test", *SMALL)


# ------------------------------------------------------------------------------------------ real data
def _fit_and_test(config: str, data_root: Path, tmp_path: Path, app: str) -> dict[str, float]:
    args = ["--config", str(ROOT / "configs" / "speech" / config), *QUIET, "--data.root", str(data_root),
            "--trainer.default_root_dir", str(tmp_path)]
    attnlab("fit", *args)  # one thread: the autouse fixture
    attnlab("test", *args, "--ckpt_path", "best")
    metrics = find_checkpoint(tmp_path / "runs" / app, "best").with_suffix(".metrics.json")
    return json.loads(metrics.read_text())["metrics"]


@pytest.mark.real
def test_festival_frame_accuracy(tmp_path: Path) -> None:
    """configs/speech/festival.yaml: festival-kal test frame accuracy >= 97 % (about 15 minutes on one CPU thread)."""
    if not (DATA / "speech" / "festival-kal" / "train").is_dir():
        pytest.skip("../shared/data/speech/festival-kal not available")
    metrics = _fit_and_test("festival.yaml", DATA / "speech" / "festival-kal", tmp_path, "frameclassifier")
    assert metrics["test/acc"] >= 0.97, metrics


@pytest.mark.real
def test_fsdd_accuracy(tmp_path: Path) -> None:
    """configs/speech/fsdd.yaml: FSDD official test split (index 0-4) accuracy >= 97 %."""
    if not (DATA / "fsdd" / "recordings").is_dir():
        pytest.skip("../shared/data/fsdd not available")
    metrics = _fit_and_test("fsdd.yaml", DATA / "fsdd", tmp_path, "utteranceclassifier")
    assert metrics["test/acc"] >= 0.97, metrics


def test_frames_train_under_a_longformer_pattern_and_refuse_a_graph_or_grid_pattern(tmp_path: Path) -> None:
    """Any 1-D pattern is one option away (a window plus global frames here); EdgeMask / Neighborhood2D are not
    patterns over frames."""
    from core import EdgeMask, Longformer, Neighborhood2D

    root = small_corpus(tmp_path / "c")
    dm = PhoneCorpus(root=str(root), features=FeatureConfig(n_mels=20, deltas=1), batch_size=1)
    model = FrameClassifier(encoder=SPEECH_ENCODER.replace(dim=16, depth=1, num_heads=2),
                            pattern=Longformer(window=4, global_tokens=1))
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, dm)
    batch = next(iter(dm.train_dataloader()))
    with torch.no_grad():
        _, weights = model.eval().encode(batch["features"], batch["mask"], return_weights=True)
    allowed = Longformer(window=4, global_tokens=1).mask(batch["features"].size(1))  # (T, T)
    assert bool((weights[0][0][:, ~allowed] == 0).all()) and bool((weights[0][0][:, allowed] > 0).any())
    for pattern in (EdgeMask(torch.tensor([[0], [1]])), Neighborhood2D(1, grid=(2, 2))):
        with pytest.raises(ValueError, match="pattern over frames"):
            FrameClassifier(pattern=pattern)
