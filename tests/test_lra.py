"""LRA-style benchmark app: the ListOps generator, byte-level genre passages, and one-line YAML swaps of the
attention (sparse patterns and kernel methods) through the attnlab CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from apps.cli import AttnLabCLI
from core import BigBird, Longformer, Strided
from datamodules.bytetext import GENRES, ByteText, passages, read_documents
from datamodules.listops import TOKEN_ID, ListOps, _grow, evaluate, make_listops, to_tokens

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EWT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud"  # development copy, when there


def parse(expression: str) -> object:
    """LRA bracket format -> tree, to check the generator's values against hand-computed ones."""
    tokens = expression.split()
    pos = 0

    def node():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok.startswith("["):
            args = []
            while tokens[pos] != "]":
                args.append(node())
            pos += 1
            return (tok[1:], args)
        return int(tok)

    return node()


@pytest.mark.parametrize("expression,value", [
    ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),
    ("[MIN 3 [MAX 1 0 ] 5 ]", 1),
    ("[MED 1 2 3 4 ]", 2),  # median 2.5, rounded down as LRA's int(np.median)
    ("[MED 7 [SM 5 7 9 ] 4 ]", 4),  # SM = 21 mod 10 = 1; median of 7, 1, 4
    ("[SM [MAX 9 9 ] [MIN 8 9 ] 3 ]", 0),
])
def test_listops_values(expression, value):
    tree = parse(expression)
    assert evaluate(tree) == value
    assert " ".join(to_tokens(tree)) == expression


def test_listops_generator_is_seeded_balanced_in_brackets_and_in_range():
    exprs, labels = make_listops(40, min_len=100, max_len=400, seed=3)
    assert (exprs, labels) == make_listops(40, min_len=100, max_len=400, seed=3)
    assert exprs != make_listops(40, min_len=100, max_len=400, seed=4)[0]
    for tokens, label in zip(exprs, labels, strict=True):
        assert 100 <= len(tokens) <= 400
        assert all(t in TOKEN_ID for t in tokens)
        assert sum(t.startswith("[") for t in tokens) == tokens.count("]")
        assert evaluate(parse(" ".join(tokens))) == label
    assert len(set(labels)) >= 5
    import random

    assert len(to_tokens(_grow(2000, 0, random.Random(0), 10, 10))) <= 2000


def test_listops_datamodule_batches():
    dm = ListOps(min_len=30, max_len=60, num_train=20, num_val=8, num_test=8, batch_size=4)
    dm.setup()
    tokens, mask, labels = next(iter(dm.train_dataloader()))
    assert tokens.shape == mask.shape and tokens.size(0) == 4 and labels.max() < 10
    assert (tokens[:, 0] == 1).all()  # CLS first
    assert (tokens[~mask] == 0).all() and mask.sum(1).min() >= 31


def test_byte_passages_pack_sentences_within_the_budget():
    sents = ["a" * 5, "b" * 5, "c" * 12, "d" * 3]
    assert passages(sents, 11) == [b"aaaaa bbbbb", b"ccccccccccc", b"c ddd"]  # a long sentence is cut
    assert passages(["x" * 4, "y" * 4], 100) == [b"xxxx yyyy"]


def test_read_documents_takes_genre_and_document_from_sentence_ids(tmp_path):
    f = tmp_path / "mini.conllu"
    f.write_text("# sent_id = weblog-blog.com_x-0001\n# text = One.\n1\tOne\n\n"
                 "# sent_id = weblog-blog.com_x-0002\n# text = Two.\n1\tTwo\n\n"
                 "# sent_id = email-enronsent01_02-0003\n# text = Hi.\n1\tHi\n\n")
    assert read_documents(f) == [("weblog", ["One.", "Two."]), ("email", ["Hi."])]
    f.write_text("# sent_id = tweet-1-0001\n# text = x\n")
    with pytest.raises(ValueError, match="does not start with one of"):
        read_documents(f)


@pytest.mark.skipif(not (EWT / "en_ewt-ud-dev.conllu").is_file(), reason="EWT files not available")
def test_byte_text_on_ewt_has_every_genre():
    dm = ByteText(root=str(EWT), max_len=256, max_train=50, max_eval=40, batch_size=8)
    dm.setup()
    assert len(dm.datasets["train"]) == 50 and len(dm.datasets["test"]) == 40
    labels = torch.cat([dm.datasets[s].labels for s in ("train", "val", "test")])
    assert labels.max() == len(GENRES) - 1
    tokens, mask, _ = next(iter(dm.val_dataloader()))
    assert tokens.size(1) <= 256 and (tokens[:, 0] == 1).all()


def fit(*args: str) -> AttnLabCLI:
    return AttnLabCLI(args=["fit", *args, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                            "--trainer.limit_val_batches", "1", "--trainer.enable_model_summary", "false",
                            "--trainer.log_every_n_steps", "1", "--model.encoder.dim", "16",
                            "--model.encoder.depth", "1", "--model.encoder.num_heads", "2"])


LISTOPS_TINY = ["--config", str(CONFIGS / "lra" / "listops.yaml"), "--data.min_len", "150", "--data.max_len", "200",
                "--data.num_train", "8", "--data.num_val", "4", "--data.num_test", "4", "--data.batch_size", "4"]


def test_listops_config_fits_with_a_one_line_longformer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["attnlab"])
    line = "{class_path: core.Longformer, init_args: {window: 8, stride: 32, global_tokens: 1}}"
    cli = fit(*LISTOPS_TINY, "--model.pattern", line)
    assert cli.model.pattern == Longformer(8, 32, 1)
    assert cli.trainer.global_step == 2
    assert (tmp_path / "runs" / "lra" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_kernel_keyword_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["attnlab"])
    cli = fit(*LISTOPS_TINY, "--model.encoder.kernel.kind", "linformer",
              "--model.encoder.kernel.num_features", "8", "--model.encoder.kernel.max_length", "256")
    assert cli.model.encoder.blocks[0].attn.kernel == "linformer"
    assert cli.trainer.global_step == 2


def test_other_apps_take_the_new_patterns_by_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["attnlab"])
    demo = ["--config", str(CONFIGS / "demo" / "majority.yaml"), "--data.num_train", "16", "--data.num_val", "8",
            "--data.num_test", "8", "--data.batch_size", "8"]
    for line, expected in [("{class_path: core.BigBird, init_args: {window: 2, random_blocks: 1, block_size: 8}}",
                            BigBird(2, 1, 1, block_size=8)),
                           ("{class_path: core.Strided, init_args: {stride: 4}}", Strided(4))]:
        cli = fit(*demo, "--model.pattern", line)
        assert cli.model.pattern == expected


def test_benchmark_children_train_and_time_every_variant(tmp_path):
    """benchmarks/lra.py's cells on toy sizes: each variant trains a step, is evaluated and timed."""
    from benchmarks.lra import VARIANTS, speed_one, train_one
    from datamodules.listops import encode

    exprs, labels = make_listops(12, min_len=20, max_len=40, seed=0)
    data = ([encode(e) for e in exprs], torch.tensor(labels))
    path = tmp_path / "listops.pt"
    torch.save({"data": {"train": data, "test": data}, "vocab_size": ListOps.vocab_size, "num_classes": 10}, path)
    threads = torch.get_num_threads()
    try:
        for variant in VARIANTS:
            r = train_one(str(path), variant, steps=2, batch=4, max_length=64)
            # (peak_bytes is only meaningful in the benchmark's fresh subprocesses, not inside pytest)
            assert 0.0 <= r["accuracy"] <= 1.0 and r["steps_per_s"] > 0 and isinstance(r["peak_bytes"], int)
        r = speed_one("full-dense", 160)
        assert r["median_ms"] > 0
    finally:
        torch.set_num_threads(threads)
