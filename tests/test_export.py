"""``attnlab export`` / ``apps.export``: every app traces with ``torch.export``, the .pt2 archive carries what inference
needs (``attnlab.json``: app, hyperparameters, data state, input notes), and the program gives the model's outputs
within 1e-5 on inputs of sizes it did not see when it was traced (dynamic batch, length, number of nodes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torchvision.io import write_png

from apps import export as export_module
from apps.cli import find_checkpoint, main
from apps.graph import NodeClassifier, dense_adjacency
from apps.inference import load, load_model
from apps.lra import LRAClassifier
from apps.pos import Tagger
from apps.sequence import SequenceClassifier
from apps.speech import FrameClassifier, UtteranceClassifier
from apps.vision import ViTClassifier
from core import EdgeMask, EncoderConfig, Truncated
from datamodules.graph import GraphData
from datamodules.pos import PosVocab, SyntheticTreebank, parse_conllu
from datamodules.speech import FeatureConfig, SpeechMeta

ROOT = Path(__file__).resolve().parents[1]
TINY = EncoderConfig(dim=16, depth=1, num_heads=2)
RELATIVE = EncoderConfig(dim=16, depth=1, num_heads=2, position="relative", max_relative_distance=4)
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
UNSEEN = [(3, 7), (1, 5), (2, 150)]  # (batch, length) pairs the export did not trace (it traces 2 x 12)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def round_trip(model: torch.nn.Module, tmp_path: Path, sizes=UNSEEN) -> tuple[float, dict]:
    """Export, save, load; the largest difference to the model on inputs of ``sizes``."""
    program, info = export_module.export(model)
    path = export_module.save(program, info, tmp_path / "model.pt2")
    loaded, meta = export_module.load(path)
    worst = 0.0
    for batch, length in sizes:
        spec = model.export_example(batch=batch, length=length)
        with torch.no_grad():
            expected, got = spec.module(*spec.args), loaded.module()(*spec.args)
        assert got.shape == expected.shape
        worst = max(worst, float((expected - got).abs().max()))
    return worst, meta


def test_sequence_and_lra(tmp_path: Path) -> None:
    for model in (SequenceClassifier(10, 3, encoder=TINY), LRAClassifier(10, 3, encoder=TINY, pattern=Truncated(4, 4))):
        worst, meta = round_trip(model.eval(), tmp_path)
        assert worst < 1e-5 and meta["app"].startswith("apps.") and meta["vocab_size"] == 10


def test_vision_bundles_classes_and_normalisation(tmp_path: Path) -> None:
    model = ViTClassifier(image_size=8, in_channels=1, num_classes=3, patch_size=4, encoder=TINY)
    model.stats = {"classes": ["a", "b", "c"], "mean": [0.5], "std": [0.25], "size": 8, "channels": 1}
    worst, meta = round_trip(model.eval(), tmp_path)
    assert worst < 1e-5 and meta["vision_data"]["classes"] == ["a", "b", "c"] and meta["vision_data"]["std"] == [0.25]


@pytest.mark.parametrize("cls", [FrameClassifier, UtteranceClassifier])
def test_speech_bundles_labels_and_features(cls: type, tmp_path: Path) -> None:
    model = cls(encoder=RELATIVE, pattern=Truncated(3, 3))
    model.set_meta(SpeechMeta(["sil", "a", "b"], FeatureConfig(n_mels=10), "frame" if cls is FrameClassifier
                              else "utterance"))
    worst, meta = round_trip(model.eval(), tmp_path, sizes=[(3, 7), (2, 300)])  # 300 frames: past the banded switch
    assert worst < 1e-5 and meta["speech_meta"]["labels"] == ["sil", "a", "b"]


def test_pos_bundles_the_vocabulary(tmp_path: Path) -> None:
    vocab = SyntheticTreebank(num_train=60, num_val=5, num_test=5, min_word_freq=1).build_vocab()
    model = Tagger(encoder=RELATIVE, word_dim=8, char_dim=4, char_channels=8, suffix_dim=4)
    model.set_vocab(vocab)
    worst, meta = round_trip(model.eval(), tmp_path, sizes=[(3, 7), (1, 30)])
    assert worst < 1e-5 and meta["pos_vocab"]["tags"] == vocab.to_dict()["tags"]


def test_pos_with_lemma_stems_exports(tmp_path: Path) -> None:
    """A tagger that looks words up by their training lemmas (data.max_stems) exports with the stems as an input."""
    lines = [f"{i}\t{form}\t{lemma}\tNOUN\t_\t_\t0\troot\t_\t_" for i, (form, lemma) in
             enumerate([("evlerde", "ev"), ("evler", "ev"), ("kitabı", "kitap"), ("kitaplar", "kitap")], 1)]
    vocab = PosVocab.build(parse_conllu("\n".join(lines) + "\n\n"), min_freq=1, max_stems=2)
    model = Tagger(encoder=RELATIVE, word_dim=8, char_dim=4, char_channels=8, suffix_dim=4, stem_dim=4)
    model.set_vocab(vocab)
    assert model.features.stems is not None
    worst, meta = round_trip(model.eval(), tmp_path, sizes=[(3, 7), (1, 30)])
    assert worst < 1e-5 and meta["pos_vocab"]["stems"] == ["ev", "kitap"]


def test_graph_dense_step_equals_the_edge_model(tmp_path: Path) -> None:
    """The exported dense-adjacency step gives the EdgeMask model's logits on another graph than the traced one."""
    model = NodeClassifier(in_channels=5, num_classes=3, hidden=16, num_heads=2, output="attention").eval()
    worst, _ = round_trip(model, tmp_path, sizes=[(1, 9), (1, 40)])
    assert worst < 1e-5
    program, _ = export_module.load(tmp_path / "model.pt2")
    x, edges = torch.randn(30, 5), torch.randint(0, 30, (2, 80))
    edges = torch.cat([edges, edges[:, :5]], 1)  # duplicate edges count once, as in EdgeMask
    with torch.no_grad():
        expected = model(x, EdgeMask(edges))
        got = program.module()(x, dense_adjacency(edges, 30))
    assert float((expected - got).abs().max()) < 1e-5


def in_dir(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(path)
    monkeypatch.setattr(sys, "argv", ["attnlab"])


def test_cli_export_of_a_graph_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fit karate -> attnlab export -> the program on the real karate graph equals the checkpoint's model."""
    in_dir(tmp_path, monkeypatch)
    config = ["--config", str(ROOT / "configs" / "graph" / "karate.yaml"), *QUIET]
    main(["fit", *config, "--trainer.max_epochs", "3"])
    main(["export", *config, "--ckpt_path", "best", "--out", "karate.pt2"])
    assert not (tmp_path / "runs" / "graph" / "version_1").exists(), "export makes no run folder"
    program, meta = export_module.load(tmp_path / "karate.pt2")
    assert meta["app"] == "apps.graph.NodeClassifier" and meta["checkpoint"].endswith(".ckpt")
    model = load_model(find_checkpoint(Path("runs") / "graph", "best"))
    data = GraphData(source="karate", train_fraction=0.5, val_fraction=0.2, split_seed=0)
    data.setup("predict")
    graph = data.data
    with torch.no_grad():
        expected = model(graph.x, EdgeMask(graph.edge_index))
        got = program.module()(graph.x, dense_adjacency(graph.edge_index, graph.num_nodes))
    assert float((expected - got).abs().max()) < 1e-5
    (classes,) = load(find_checkpoint(Path("runs") / "graph", "best")).predict([graph])  # Python inference
    assert classes == expected.argmax(-1).tolist()


def test_cli_export_of_a_vision_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    in_dir(tmp_path, monkeypatch)
    config = ["--config", str(ROOT / "configs" / "vision" / "digits.yaml"), *QUIET, "--model.encoder.dim", "16",
              "--model.encoder.depth", "1", "--model.encoder.num_heads", "2"]
    main(["fit", *config, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
          "--trainer.limit_val_batches", "1"])
    main(["export", *config, "--ckpt_path", "last", "--out", "digits.pt2"])
    program, meta = export_module.load(tmp_path / "digits.pt2")
    assert len(meta["vision_data"]["classes"]) == 10 and len(meta["vision_data"]["mean"]) == 1
    model = load_model(find_checkpoint(Path("runs") / "vision", "last"))
    images = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert float((model(images) - program.module()(images)).abs().max()) < 1e-5

    # the same checkpoint on the user's own images: Python inference, then explain on them
    own = tmp_path / "mine"
    own.mkdir()
    for i, size in enumerate((12, 20)):  # other sizes than 8x8: resized and centre-cropped
        write_png((torch.rand(1, size, size + 4) * 255).to(torch.uint8), str(own / f"img{i}.png"))
    predicted = load(find_checkpoint(Path("runs") / "vision", "last")).predict(sorted(own.glob("*.png")))
    assert len(predicted) == 2 and all(name in meta["vision_data"]["classes"] and 0 < p <= 1 for name, p in predicted)
    main(["explain", *config, "--ckpt_path", "last", "--data.predict_path", str(own), "--out", "own_figures"])
    assert (tmp_path / "own_figures" / "vision_rollout.png").read_bytes()[:4] == b"\x89PNG"


def test_predict_items_of_pos_speech_and_sequences() -> None:
    """What ``apps.inference.Predictor.predict`` hands each app: sentences, waveforms, token lists."""
    vocab = SyntheticTreebank(num_train=60, num_val=5, num_test=5, min_word_freq=1).build_vocab()
    tagger = Tagger(encoder=RELATIVE, word_dim=8, char_dim=4, char_channels=8)
    tagger.set_vocab(vocab)
    tags = tagger.eval().predict_items(["the dog barks .", ["Mary", "reads"]])
    assert [len(t) for t in tags] == [4, 2] and all(t in vocab.tag_names for s in tags for t in s)

    for cls in (FrameClassifier, UtteranceClassifier):
        model = cls(encoder=RELATIVE, pattern=Truncated(3, 3))
        model.set_meta(SpeechMeta(["sil", "a"], FeatureConfig(n_mels=10)))
        with torch.no_grad():
            out = model.eval().predict_items([torch.randn(8000), torch.randn(4000)])
        if cls is FrameClassifier:
            assert len(out[0]) > len(out[1]) > 0 and set(out[0]) <= {"sil", "a"}
        else:
            assert [label in ("sil", "a") and 0 < p <= 1 for label, p in out] == [True, True]

    with torch.no_grad():
        assert len(SequenceClassifier(10, 3, encoder=TINY).eval().predict_items([[1, 2, 3], [4]])) == 2
