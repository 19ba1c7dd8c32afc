"""Fault injection: hostile but fair inputs for the core, every app, the CLI and checkpoints (issue #18).

Each test plays one fault and checks what the user gets: one ``core.errors.UserError`` naming the file, line or
config key (the CLI prints it as one line), or the fault handled correctly, and no half-written file. The fast
part runs in ``make test``; tests that start a real ``attnlab`` process are marked ``faults_slow`` (CI skips
them: ``-m "not faults_slow"``). ``FAULTS`` counts the faults per app (see ``test_fault_counts``).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core import AttentionConfig, Encoder, EncoderConfig, MultiHeadSelfAttention, Truncated
from core.errors import CheckpointError, ConfigError, DataError, NonFiniteInputWarning, UserError, check_finite

ROOT = Path(__file__).resolve().parents[1]
FAULTS: dict[str, int] = {}


def fault(app: str):
    """Count a test as one fault of ``app`` (core, cli, checkpoints, graph, vision, speech, pos, sequence, lra)."""
    def mark(fn):
        FAULTS[app] = FAULTS.get(app, 0) + 1
        return fn
    return mark


# ------------------------------------------------------------------------------------------------------- core
@fault("core")
@pytest.mark.parametrize("options", [{"position": "relative"}, {"score": "additive"}, {}])
def test_length_zero_sequence_with_relative_or_additive_scores(options):
    """#10: a length-0 sequence gave IndexError from amax() in core/scores.py."""
    attn = MultiHeadSelfAttention(16, AttentionConfig(num_heads=2, **options))
    out, weights = attn(torch.randn(2, 0, 16), return_weights=True)
    assert out.shape == (2, 0, 16) and weights.numel() == 0


@fault("core")
@pytest.mark.parametrize("left, right", [(1.5, 0), (2, 0.5), (-1, 3), ("3", 1)])
def test_fractional_truncated_window_is_refused(left, right):
    """Truncated(left=1.5) silently became 1."""
    with pytest.raises(ConfigError, match="whole number"):
        Truncated(left, right)
    assert Truncated(3.0, 2).left == 3  # a whole float is fine


@fault("core")
def test_inf_in_one_input_element_is_named():
    """inf in one element turned the whole sequence NaN unannounced."""
    encoder = Encoder(EncoderConfig(dim=16, depth=1, num_heads=2))
    x = torch.randn(2, 5, 16)
    x[1, 3, 7] = math.inf
    with pytest.warns(NonFiniteInputWarning, match=r"NaN/Inf.*\(1, 3, 7\)"):
        encoder(x)
    with pytest.raises(DataError, match=r"NaN/Inf.*\(1, 3, 7\)"):
        check_finite(x, "x")
    x[1, 3, 7] = 0.0
    assert torch.isfinite(encoder(x)).all()


@fault("core")
def test_user_error_is_one_line_and_a_value_error():
    err = DataError("bad\nrow", where="a.txt:3", expected="two\ncolumns", fix="Fix it.")
    assert isinstance(err, ValueError) and "\n" not in str(err)
    assert str(err) == "a.txt:3: bad row; expected two columns. Fix it."
    assert issubclass(CheckpointError, UserError)


# ------------------------------------------------------------------------------------------------------ graph
class _RunsCode:
    """A pickle that runs a command when loaded with weights_only=False."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


PLANETOID_SHARED = ROOT.parent / "shared" / "data" / "planetoid"


@fault("graph")
@pytest.mark.skipif(not (PLANETOID_SHARED / "Cora" / "raw").is_dir(), reason="no shared Cora raw files")
def test_replaced_pyg_processed_cache_runs_no_code(tmp_path):
    """#1: a processed/data.pt whose pickle runs a command was loaded by PyG with weights_only=False."""
    from datamodules.graph.sources import load_planetoid

    load_planetoid("cora", tmp_path, PLANETOID_SHARED, False)
    marker = tmp_path / "ran"
    torch.save(_RunsCode(marker), tmp_path / "Cora" / "processed" / "data.pt")
    with pytest.warns(UserWarning, match="weights_only=True"):
        data = load_planetoid("cora", tmp_path, PLANETOID_SHARED, False)
    assert not marker.exists() and data.x.shape == (2708, 1433)  # rebuilt from the raw files


@fault("graph")
def test_pyg_loader_never_falls_back_to_unsafe_pickles(tmp_path):
    from datamodules.graph.safe_load import scrub_processed, strict_torch_load

    marker, path = tmp_path / "ran", tmp_path / "processed" / "data.pt"
    path.parent.mkdir()
    torch.save(_RunsCode(marker), path)
    with pytest.raises(DataError, match="weights_only=True"):
        strict_torch_load(str(path))
    with pytest.warns(UserWarning):
        assert scrub_processed(tmp_path) == [path]
    assert not marker.exists() and not path.exists()
    src = (ROOT / "datamodules" / "graph" / "sources.py").read_text() + (ROOT / "datamodules/graph/pyg.py").read_text()
    assert "weights_only.*" not in src  # the silenced PyG warning is gone


def _graph(y, x=None):
    from torch_geometric.data import Data

    n = len(y)
    return Data(x=torch.rand(n, 3) if x is None else x, edge_index=torch.tensor([[0, 1], [1, 0]]),
                y=torch.tensor(y))


@fault("graph")
def test_sentinel_label_on_unlabelled_nodes_is_refused():
    """y = 999 on unlabelled nodes silently built a 1000-class model."""
    from datamodules.graph.checks import check_graph

    with pytest.raises(DataError, match=r"largest is 999.*y = -1"):
        check_graph(_graph([0, 1, 2, 999, 999]), "g.pt")
    check_graph(_graph([0, 1, 2, -1, -1]), "g.pt")


@fault("graph")
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_nan_or_inf_node_features_are_named(value):
    """NaN/inf in graph features stopped at step 0 blaming the learning rate."""
    from datamodules.graph.checks import check_graph

    x = torch.rand(4, 3)
    x[2, 1] = value
    with pytest.raises(DataError, match="node 2, feature column 1"):
        check_graph(_graph([0, 1, 0, 1], x), "g.pt")


@fault("graph")
def test_empty_validation_mask_gives_no_val_batches():
    """#7: val_fraction 0 crashed in torchmetrics (cannot reshape tensor of 0 elements)."""
    from datamodules.graph import GraphData

    data = GraphData(source="karate", val_fraction=0.0)
    data.setup("fit")
    with pytest.warns(UserWarning, match="val_mask selects no node"):
        assert data.val_dataloader() == []
    assert len(data.train_dataloader()) == 1


# -------------------------------------------------------------------------------------------------- checkpoints
@fault("checkpoints")
def test_full_disk_during_checkpoint_save_keeps_the_previous_file(tmp_path, monkeypatch):
    """#2: on a full disk last.ckpt was left truncated under its final name."""
    from apps.checkpoint_io import AtomicCheckpointIO

    io, target = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, target)
    good = target.read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space"):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, target)
    assert target.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    monkeypatch.undo()
    assert io.load_checkpoint(target)["epoch"] == 1


@fault("checkpoints")
def test_save_last_link_copies_atomically(tmp_path, monkeypatch):
    """save_last: link falls back to shutil.copy over the old last.ckpt in Lightning; here it is atomic."""
    import shutil

    from apps.checkpoint_io import atomic_link

    (tmp_path / "best.ckpt").write_bytes(b"new")
    (tmp_path / "last.ckpt").write_bytes(b"old")

    def half_copy(src, dst, *args, **kwargs):
        Path(dst).write_bytes(b"n")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", half_copy)
    with pytest.raises(OSError):
        atomic_link(str(tmp_path / "best.ckpt"), str(tmp_path / "last.ckpt"))
    assert (tmp_path / "last.ckpt").read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 2


@fault("checkpoints")
@pytest.mark.parametrize("content", [b"", b"PK\x03\x04truncated", b"not a checkpoint"])
def test_truncated_checkpoint_as_init_from_is_named(tmp_path, content):
    """#3: a truncated init_from gave `OSError: [Errno 22] Invalid argument` without the file's name."""
    from apps.sequence import SequenceClassifier

    bad = tmp_path / "cut.ckpt"
    bad.write_bytes(content)
    model = SequenceClassifier(vocab_size=8, num_classes=2, encoder=EncoderConfig(dim=16, depth=1, num_heads=2))
    with pytest.raises(CheckpointError, match=r"model.init_from=.*cut.ckpt: not a readable checkpoint"):
        model.read_init_source(str(bad))
    with pytest.raises(CheckpointError, match="cut.ckpt"):
        model.load_matching_weights(str(bad))


@fault("checkpoints")
@pytest.mark.parametrize("content", [b"", b"not a checkpoint"])
def test_truncated_init_from_of_a_tagger_is_named_where_its_vocabulary_is_read(tmp_path, content):
    """A tagger reads init_from's vocabularies at setup, before the weights: the same one-line error there."""
    from apps.pos import Tagger

    bad = tmp_path / "cut.ckpt"
    bad.write_bytes(content)
    tagger = Tagger(encoder=EncoderConfig(dim=16, depth=1, num_heads=2), word_dim=8, char_channels=8,
                    init_from=str(bad))
    with pytest.raises(CheckpointError, match=r"model.init_from=.*cut.ckpt: not a readable checkpoint"):
        tagger.setup_data_state("fit")
    tagger.init_from = str(tmp_path / "missing.ckpt")
    with pytest.raises(FileNotFoundError, match=r"model.init_from=.*missing.ckpt: checkpoint does not exist"):
        tagger.setup_data_state("fit")


@fault("checkpoints")
def test_atomic_writes_follow_the_umask(tmp_path):
    """Atomic writes came out mode 0600 instead of following the umask."""
    from apps.checkpoint_io import AtomicCheckpointIO
    from apps.runs import write_atomic

    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.txt", "x")
        AtomicCheckpointIO().save_checkpoint({"w": torch.ones(1)}, tmp_path / "c.ckpt")
    finally:
        os.umask(old)
    assert {(tmp_path / n).stat().st_mode & 0o777 for n in ("a.txt", "c.ckpt")} == {0o644}


@fault("checkpoints")
def test_cli_uses_the_atomic_checkpoint_plugin(tmp_path):
    from apps.checkpoint_io import AtomicCheckpointIO
    from apps.cli import AttnLabCLI

    cli = AttnLabCLI(args=["--config", str(ROOT / "configs/demo/majority.yaml"), "--trainer.max_epochs", "1",
                           f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar", "false"],
                     run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)


# ---------------------------------------------------------------------------------------------------------- cli
def _cli(tmp_path, *args, env=None):
    return subprocess.run([sys.executable, "-m", "apps.cli", *args], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=300)


@fault("cli")
def test_user_error_is_printed_as_one_line(capsys):
    """Data errors arrived as 30-100-line tracebacks; a UserError (also when wrapped) is one line, exit 2."""
    from apps.user_errors import run_reporting_user_errors

    def run(args):
        try:
            raise DataError("bad row", where="train.txt:7", expected="two columns", fix="Fix line 7.")
        except DataError as err:
            raise RuntimeError("wrapped by a library") from err

    with pytest.raises(SystemExit) as stop:
        run_reporting_user_errors(run, ["fit"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("attnlab: error: train.txt:7: bad row; expected two columns. Fix line 7.")
    with pytest.raises(RuntimeError):  # --debug: the traceback
        run_reporting_user_errors(run, ["fit", "--debug"])


@fault("cli")
@pytest.mark.faults_slow
def test_negative_batch_size_is_one_line_before_data_and_leaves_no_run(tmp_path):
    """Negative batch_size was caught by torch after loading the data; every failed fit left a version_N."""
    result = _cli(tmp_path, "fit", "--config", str(ROOT / "configs/demo/majority.yaml"),
                  "--data.init_args.batch_size=-3", "--trainer.default_root_dir=runs")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("attnlab: error: data.batch_size=-3; expected")
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


@fault("cli")
def test_failed_fit_leaves_no_empty_version_folder(tmp_path):
    """Every failed fit left an empty version_N folder."""
    from apps.cli import AttnLabCLI

    args = ["fit", "--config", str(ROOT / "configs/demo/majority.yaml"), f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar", "false", "--data.init_args.num_train", "64"]

    class Boom(DataError):
        pass

    import datamodules.synthetic as synthetic

    original = synthetic.SyntheticSequences.train_dataloader
    try:  # fails after the run folder, its config.yaml and logs exist
        synthetic.SyntheticSequences.train_dataloader = lambda self: (_ for _ in ()).throw(Boom("bad data"))
        with pytest.raises(Boom):
            AttnLabCLI(args=args)
    finally:
        synthetic.SyntheticSequences.train_dataloader = original
    assert not list(tmp_path.rglob("version_*"))


# ----------------------------------------------------------------------------------------------------- vision
def _png(path: Path, value: int, size: int = 4, mode: str = "L") -> Path:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if mode == "I;16" else np.uint8
    Image.fromarray(np.full((size, size), value, dtype=dtype)).save(path)
    return path


def _image_tree(root: Path, classes=("cat", "dog"), per_class: int = 3) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            _png(root / "train" / name / f"{i}.png", 40 * c + i)
            _png(root / "test" / name / f"{i}.png", 40 * c + i)
    return root


@fault("vision")
def test_decoded_image_cache_notices_an_edited_file(tmp_path):
    """#5: the cache (folder, count, first/last name) was used stale after a file in the middle changed."""
    from datamodules.vision.cache import read_folder_cached

    tree = _image_tree(tmp_path / "imgs", per_class=3)
    first = read_folder_cached(tree / "train", tmp_path / "cache")
    middle = tree / "train" / "cat" / "1.png"
    _png(middle, 200)
    os.utime(middle, ns=(middle.stat().st_atime_ns, middle.stat().st_mtime_ns + 10**9))
    second = read_folder_cached(tree / "train", tmp_path / "cache")
    assert int(first.images[1].max()) == 1 and int(second.images[1].max()) == 200


@fault("vision")
def test_sixteen_bit_grey_png_is_scaled_not_clipped(tmp_path):
    """#6: convert("L") clipped a 16-bit grey PNG to 255."""
    from datamodules.vision.images import read_image

    img = read_image(_png(tmp_path / "deep.png", 32768, mode="I;16"))
    assert img.shape == (1, 4, 4) and int(img.max()) == 128


@fault("vision")
def test_empty_class_folder_is_named(tmp_path):
    """An empty class folder was silently dropped."""
    from datamodules.vision.images import list_images

    tree = _image_tree(tmp_path / "imgs")
    (tree / "train" / "bird").mkdir()
    with pytest.raises(DataError, match=r"train/bird: class folder holds no images"):
        list_images(tree / "train")


@fault("vision")
def test_test_classes_other_than_the_checkpoints_are_refused_or_reindexed(tmp_path):
    """#4: a test folder whose class names differ from the checkpoint's gave test/acc 0.0 silently."""
    from datamodules.vision import VisionData

    dm = VisionData(source="folder", path=str(_image_tree(tmp_path / "imgs", ("ant", "bee"))), root=str(tmp_path),
                    cache=False, val_fraction=0.0)
    dm.setup()
    with pytest.raises(DataError, match=r"\['ant', 'bee'\] are not classes of the checkpoint"):
        dm.accept_data_state({"classes": ["cat", "dog"]})
    labels = dm.splits["test"].labels.clone()
    dm.accept_data_state({"classes": ["bee", "ant"]})  # same classes, other order: re-indexed
    assert torch.equal(dm.splits["test"].labels, 1 - labels) and dm.splits["test"].classes == ["bee", "ant"]


@fault("vision")
def test_on_bad_file_skip_applies_at_predict(tmp_path):
    """on_bad_file: skip was ignored at predict."""
    from datamodules.vision import VisionData

    tree = _image_tree(tmp_path / "imgs")
    (tmp_path / "new").mkdir()
    _png(tmp_path / "new" / "good.png", 9)
    (tmp_path / "new" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    dm = VisionData(source="folder", path=str(tree), root=str(tmp_path), cache=False, val_fraction=0.0,
                    predict_path=str(tmp_path / "new"), on_bad_file="skip")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        images = dm.predict_images()
    assert [Path(n).name for n in images.names] == ["good.png"]


# ----------------------------------------------------------------------------------------------------- speech
def _wav(path: Path, seconds: float = 0.5, rate: int = 16000, value: float | None = None, subtype: str = "PCM_16"):
    import numpy as np
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    wave = (0.1 * np.sin(np.arange(int(seconds * rate)) * 0.05)).astype("float32")
    if value is not None:
        wave[100] = value
    sf.write(str(path), wave, rate, subtype=subtype)
    return path


@fault("speech")
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_nan_in_float_audio_is_named(tmp_path, value):
    """NaN/inf in float audio stopped at step 0 blaming the learning rate."""
    from datamodules.speech.audio import read_audio

    path = _wav(tmp_path / "a.wav", value=value, subtype="FLOAT")
    with pytest.raises(DataError, match=r"a.wav: 1 NaN/Inf sample\(s\), the first at sample 100"):
        read_audio(path, 16000)


def _phone_corpus(tmp_path, audio_rate: int, phn_rate: int):
    from datamodules.speech import PhoneCorpus

    for split in ("train", "dev", "test"):
        _wav(tmp_path / split / "u1.wav", 0.5, audio_rate)
        half = phn_rate // 4
        (tmp_path / split / "u1.PHN").write_text(f"0 {half} a\n{half} {phn_rate // 2} b\n")
    return PhoneCorpus(root=str(tmp_path), batch_size=2)


@fault("speech")
def test_audio_rate_other_than_the_alignments_is_refused(tmp_path):
    """22.05 kHz audio with 16 kHz .PHN files was accepted with misaligned labels."""
    dm = _phone_corpus(tmp_path, 22050, 16000)
    with pytest.raises(DataError, match=r"u1.PHN:2: the alignment ends at sample 8000 .* 16000 Hz audio.*22050 Hz"):
        dm.setup("fit")
    _phone_corpus(tmp_path, 16000, 16000).setup("fit")  # the same files at one rate are fine


@fault("speech")
def test_predict_files_with_one_name_do_not_overwrite_each_other(tmp_path):
    """#8: utt.flac and utt.wav in a predict folder: one output silently overwrote the other."""
    from datamodules.speech import PhoneCorpus

    _wav(tmp_path / "in" / "utt.wav")
    _wav(tmp_path / "in" / "utt.flac")
    _wav(tmp_path / "in" / "other.wav")
    dm = PhoneCorpus(root=str(tmp_path), predict_path=str(tmp_path / "in"))
    with pytest.warns(UserWarning, match="several audio files"):
        ids = [u.id for u in dm.load_predict()]
    assert sorted(ids) == ["other", "utt.flac", "utt.wav"]


@fault("speech")
def test_speech_feature_cache_is_content_aware(tmp_path):
    """The feature cache keys on the file's mtime and size besides its path (rewritten audio is recomputed)."""
    from datamodules.speech import FeatureConfig
    from datamodules.speech.cache import cache_key

    path = _wav(tmp_path / "a.wav", 0.5)
    before = cache_key(path, FeatureConfig())
    _wav(path, 0.6)
    assert cache_key(path, FeatureConfig()) != before


@fault("speech")
def test_speech_negative_batch_size_is_refused_at_config_time():
    """Negative batch_size was raised by torch after loading (from the POS module for speech)."""
    from datamodules.speech import PhoneCorpus

    with pytest.raises(ConfigError, match=r"data.batch_size=-2; expected an integer >= 1"):
        PhoneCorpus(root="nowhere", batch_size=-2)


# -------------------------------------------------------------------------------------------------------- pos
@fault("pos")
@pytest.mark.parametrize("name", ["train.conllu", "raw.txt"])
def test_invalid_utf8_names_file_and_line(tmp_path, name):
    """#9: an invalid UTF-8 byte in a CoNLL-U or raw-text file was a bare UnicodeDecodeError."""
    from datamodules.pos import read_conllu
    from datamodules.pos.tokenise import read_text

    path = tmp_path / name
    path.write_bytes(b"# sent_id = 1\n1\tcaf\xe9\t_\tNOUN\t_\t_\t0\troot\t_\t_\n\n")
    with pytest.raises(DataError, match=rf"{name}:2: invalid UTF-8 byte 0xe9 at column 6"):
        read_conllu(path) if name.endswith("conllu") else read_text(path, tokenizer="whitespace")


@fault("pos")
def test_utf8_bom_is_accepted(tmp_path):
    """A UTF-8 BOM was rejected."""
    from datamodules.pos import read_conllu

    path = tmp_path / "bom.conllu"
    path.write_bytes("\ufeff# sent_id = 1\n1\tHi\t_\tINTJ\t_\t_\t0\troot\t_\t_\n\n".encode())
    assert [s.words for s in read_conllu(path)] == [["Hi"]]


@fault("pos")
def test_comments_only_training_file_is_named(tmp_path):
    """A comments-only training file was not named."""
    from datamodules.pos import UDTreebank

    path = tmp_path / "train.conllu"
    path.write_text("# just a comment\n# another\n\n")
    with pytest.raises(DataError, match=r"train.conllu: no sentence in the train split.*data.train"):
        UDTreebank(train=str(path)).load_split("train")


@fault("pos")
def test_untrained_tagger_never_writes_pad_as_a_tag():
    """An under-trained tagger wrote <pad> as a UPOS tag."""
    from apps.pos import TAGGER_ENCODER, Tagger
    from datamodules.pos import PosVocab, collate, make_synthetic

    vocab = PosVocab.build(make_synthetic(50, seed=0), min_freq=1)
    model = Tagger(encoder=TAGGER_ENCODER.replace(dim=16, depth=1, num_heads=2), word_dim=8, char_channels=8)
    model.set_vocab(vocab)
    with torch.no_grad():
        model.head.bias[:2] = 1e4  # <pad> and <unk> would win every argmax
    batch = collate([(i, vocab.encode(s.words)) for i, s in enumerate(make_synthetic(3, seed=1))])
    tags = [t for _, columns in model.predict_step(batch, 0) for t in columns["upos"]]
    assert tags and not {"<pad>", "<unk>"} & set(tags)


# ------------------------------------------------------------------------------------------- outputs, explain
@fault("cli")
def test_write_into_read_only_folder_names_the_target_before_predicting(tmp_path):
    """Writing into a read-only folder failed only after all predictions, naming a temp file."""
    from apps.runs import OutputError, check_writable, write_atomic
    from apps.user_errors import user_error_in

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    blocked = tmp_path / "a-file"  # unwritable for root too: a folder inside a regular file
    blocked.write_text("x")
    try:
        for target in ([folder] if not os.access(folder, os.W_OK) else []) + [blocked / "sub"]:
            with pytest.raises(OutputError, match=r"out.csv: cannot write") as err:
                write_atomic(target / "out.csv", "x")
            assert ".tmp" not in str(err.value) and user_error_in(err.value) is err.value  # printed as one line
            with pytest.raises(OutputError, match="data.predict_output"):
                check_writable(target, "data.predict_output")
    finally:
        folder.chmod(0o700)


@fault("cli")
def test_full_disk_while_writing_predictions_names_the_target(tmp_path, monkeypatch):
    from apps.runs import OutputError, write_atomic

    (tmp_path / "p.csv").write_text("old")

    def full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OutputError, match=r"p.csv: cannot write \(No space left on device\)") as err:
        write_atomic(tmp_path / "p.csv", "new")
    monkeypatch.undo()
    assert ".tmp" not in str(err.value) and (tmp_path / "p.csv").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["p.csv"]


@fault("cli")
def test_prediction_writer_checks_the_output_folder_first(tmp_path):
    from types import SimpleNamespace

    from apps.predictions import PredictionWriter
    from apps.runs import OutputError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    trainer = SimpleNamespace(is_global_zero=True, log_dir=None,
                              datamodule=SimpleNamespace(predict_output=str(blocker / "out" / "p.csv")))
    with pytest.raises(OutputError, match="data.predict_output"):
        PredictionWriter().on_predict_start(trainer, None)


@fault("cli")
@pytest.mark.parametrize("example, batch", [(9999, (torch.zeros(4, 3), torch.zeros(4))), (-1, {"x": torch.zeros(2)}),
                                            (5, {"features": torch.zeros(5, 7, 3)})])
def test_explain_example_out_of_range_is_refused(example, batch):
    """explain --example 9999 wrapped around."""
    from apps.explain import check_example

    with pytest.raises(ConfigError, match=rf"explain --example {example}; expected an index 0\.\."):
        check_example(example, batch)
    check_example(0, batch)


# ------------------------------------------------------------------------------------ relative data paths
@fault("graph")
def test_relative_graph_path_says_relative_to():
    from datamodules.graph import GraphData

    with pytest.raises(UserError, match=r"nowhere/g.pt \(relative to .*\)"):
        GraphData(source="file", path="nowhere/g.pt").setup()


@fault("vision")
def test_relative_image_folder_says_relative_to():
    from datamodules.vision import VisionData

    with pytest.raises(UserError, match=r"nowhere/imgs \(relative to .*\)"):
        VisionData(source="folder", path="nowhere/imgs").setup()


@fault("speech")
def test_relative_speech_root_says_relative_to():
    from datamodules.speech import PhoneCorpus

    with pytest.raises(UserError, match=r"nowhere/timit \(relative to .*\)"):
        PhoneCorpus(root="nowhere/timit").setup("fit")


@fault("pos")
def test_relative_conllu_path_says_relative_to():
    from datamodules.pos import UDTreebank

    with pytest.raises(UserError, match=r"nowhere/train.conllu \(relative to .*\)"):
        UDTreebank(train="nowhere/train.conllu").setup("fit")


@fault("lra")
def test_relative_lra_root_says_relative_to():
    from datamodules.bytetext import ByteText

    with pytest.raises(UserError, match=r"nowhere/ewt \(relative to .*\)"):
        ByteText(root="nowhere/ewt").setup("fit")


@fault("checkpoints")
def test_ckpt_path_best_picks_a_run_of_the_same_data_set(tmp_path):
    """--ckpt_path best picked another data set's run (and then advised `set model.in_channels`)."""
    from apps.runs import find_checkpoint

    for n, source in ((0, "cora"), (1, "citeseer")):
        ckpts = tmp_path / f"version_{n}" / "checkpoints"
        ckpts.mkdir(parents=True)
        (ckpts / "last.ckpt").write_bytes(b"x")
        (tmp_path / f"version_{n}" / "config.yaml").write_text(
            "data:\n  class_path: datamodules.graph.GraphData\n"
            f"  init_args:\n    source: {source}\n    batch_size: 8\n")

    def data(source):
        return {"class_path": "datamodules.graph.GraphData", "init_args": {"source": source, "batch_size": 64}}

    assert find_checkpoint(tmp_path, "last", data("cora")).parent.parent.name == "version_0"
    assert find_checkpoint(tmp_path, "last", data("citeseer")).parent.parent.name == "version_1"
    with pytest.raises(FileNotFoundError, match=r"none of the 2 runs .* source=pubmed.*newest used .*source=citeseer"):
        find_checkpoint(tmp_path, "last", data("pubmed"))


@fault("speech")
def test_sample_rate_other_than_the_checkpoints_is_one_checkpoint_error():
    """Feature settings (the sample rate) are checked against the checkpoint's, naming the key."""
    from datamodules.speech import FeatureConfig, SpeechMeta, SyntheticPhones

    dm = SyntheticPhones(num_train=2, num_val=1, num_test=1, features=FeatureConfig(sample_rate=22050))
    dm.meta = SpeechMeta(["a", "b"], FeatureConfig(sample_rate=16000))
    with pytest.raises(CheckpointError, match=r"data.features.sample_rate=22050 \(checkpoint: 16000\)"):
        dm.dataset("test")


# -------------------------------------------------------------------------------------------- sequence, lra
@fault("sequence")
def test_token_id_outside_the_vocabulary_is_named():
    """A token id >= vocab_size failed inside the embedding (IndexError on CPU, device assert on GPU)."""
    from apps.sequence import SequenceClassifier

    model = SequenceClassifier(vocab_size=8, num_classes=2, encoder=EncoderConfig(dim=16, depth=1, num_heads=2))
    tokens = torch.tensor([[1, 2, 9]])
    with pytest.raises(DataError, match=r"token id 9 .* ids 0..7 \(model.vocab_size=8\)"):
        model(tokens, torch.ones(1, 3, dtype=torch.bool))


@fault("sequence")
def test_sequence_batch_size_zero_is_refused_at_config_time():
    from datamodules.synthetic import SyntheticSequences

    with pytest.raises(ConfigError, match="data.batch_size=0"):
        SyntheticSequences(batch_size=0)


@fault("lra")
def test_lra_token_id_outside_the_vocabulary_is_named():
    from apps.lra import LRAClassifier

    model = LRAClassifier(vocab_size=4, num_classes=2, encoder=EncoderConfig(dim=16, depth=1, num_heads=2))
    with pytest.raises(DataError, match=r"token id -1 .*model.vocab_size=4"):
        model(torch.tensor([[0, -1]]), torch.ones(1, 2, dtype=torch.bool))


@fault("lra")
@pytest.mark.parametrize("content, message", [(b"# sent_id = a-1\n# text = caf\xe9\n", r"e.conllu:2: invalid UTF-8"),
                                              (b"# only a comment\n", r"e.conllu: no '# sent_id'")])
def test_lra_text_file_faults_are_named(tmp_path, content, message):
    from datamodules.bytetext import read_documents

    (tmp_path / "e.conllu").write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_documents(tmp_path / "e.conllu")


@fault("lra")
def test_lra_bom_is_accepted(tmp_path):
    from datamodules.bytetext import read_documents

    (tmp_path / "e.conllu").write_bytes("\ufeff# sent_id = answers-1-1\n# text = Hi\n".encode())
    assert read_documents(tmp_path / "e.conllu") == [("answers", ["Hi"])]


@fault("cli")
def test_constructor_value_error_wrapped_by_jsonargparse_is_one_line(capsys):
    """A config check in a datamodule's __init__ came out doubled, ending in a Namespace dump."""
    from apps.user_errors import run_reporting_user_errors
    from datamodules.graph import GraphData

    def run(args):
        try:
            GraphData(source="file")
        except ValueError as err:
            raise ValueError("Problem with given class_path ... Given value: Namespace(...)") from err

    with pytest.raises(SystemExit):
        run_reporting_user_errors(run, ["fit"])
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "data.source=file needs data.path" in err
    assert "Namespace" not in err


@fault("cli")
@pytest.mark.faults_slow
def test_cli_data_error_is_one_line_and_debug_shows_the_traceback(tmp_path):
    args = ("fit", "--config", str(ROOT / "configs/graph/karate.yaml"), "--data.init_args.source", "file",
            "--trainer.default_root_dir=runs")
    plain, debug = _cli(tmp_path, *args), _cli(tmp_path, *args, "--debug")
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines()[-1].startswith("attnlab: error: data.source=file needs data.path")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


# ------------------------------------------------------------------------------------------------- the count
def test_fault_counts():
    """Every app has faults played here (the closing count of issue #18 comes from FAULTS)."""
    print("faults by app:", dict(sorted(FAULTS.items())), "total", sum(FAULTS.values()))
    assert set(FAULTS) >= {"core", "cli", "checkpoints", "graph", "vision", "speech", "pos", "sequence", "lra"}


@fault("graph")
def test_graph_checkpoint_on_other_data_gives_checkpoint_advice():
    """A Cora checkpoint tested on another graph advised `set model.in_channels` (a size the checkpoint fixed)."""
    from types import SimpleNamespace

    from apps.graph import NodeClassifier

    model = NodeClassifier(in_channels=5, num_classes=3)
    model._trainer = SimpleNamespace(datamodule=SimpleNamespace(num_features=7, num_classes=3))
    with pytest.raises(CheckpointError, match=r"checkpoint's model has in_channels=5 but the data .* has 7"):
        model.setup("test")
