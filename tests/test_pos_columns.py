"""UPOS, XPOS and FEATS heads trained together: vocabularies and ids, the loss, `_` columns, the written CoNLL-U,
and agreement of ``attnlab test`` with the official CoNLL 2018 scorer on the file ``attnlab predict`` writes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import conllu
import pytest
import torch

from apps.cli import main
from apps.pos import TAGGER_ENCODER, Tagger
from core.errors import ConfigError
from datamodules.batching import IGNORE
from datamodules.pos import PosVocab, UDTreebank, collate, join_feats, parse_conllu, split_feats, universal_feats

ROOT = Path(__file__).resolve().parents[1]
SCORER = ROOT.parent / "shared" / "tools" / "conll18_ud_eval.py"
GDT = ROOT.parent / "shared" / "data" / "ud" / "el_gdt-ud"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]

TREEBANK = """# text = The dogs ran.
1\tThe\tthe\tDET\tDT\tDefinite=Def|PronType=Art\t2\tdet\t_\t_
2\tdogs\tdog\tNOUN\tNNS\tNumber=Plur\t3\tnsubj\t_\t_
3\tran\trun\tVERB\tVBD\tMood=Ind|Tense=Past|VerbForm=Fin|Private=Yes\t0\troot\t_\tSpaceAfter=No
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

# text = A cat sleeps.
1\tA\ta\tDET\tDT\tDefinite=Ind|PronType=Art\t2\tdet\t_\t_
2\tcat\tcat\tNOUN\tNN\tNumber=Sing\t3\tnsubj\t_\t_
3\tsleeps\tsleep\tVERB\tVBZ\tMood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin\t0\troot\t_\tSpaceAfter=No
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

"""


def no_xpos(text: str) -> str:
    return "\n".join("\t".join(c if i != 4 else "_" for i, c in enumerate(line.split("\t"))) if "\t" in line else line
                     for line in text.split("\n"))


def test_universal_feats_keeps_what_the_scorer_compares():
    assert universal_feats("Tense=Past|Private=Yes|Mood=Ind") == "Mood=Ind|Tense=Past"
    assert universal_feats("_") == "" == universal_feats("Private=Yes")


def test_split_and_join_feats_are_inverse_and_write_names_in_ud_order():
    assert split_feats("Number=Plur|Case=Nom|NumType=Card") == {"Number": "Plur", "Case": "Nom", "NumType": "Card"}
    assert split_feats("_") == {} and join_feats({}) == "_"
    assert join_feats(split_feats("Number=Plur|Case=Nom|NumType=Card")) == "Case=Nom|Number=Plur|NumType=Card"
    assert join_feats({"number": "Sing", "Case": "Acc"}) == "Case=Acc|number=Sing"  # case-insensitive order


@pytest.mark.parametrize(("feats", "expected"), [
    ("Number", "Name=Value items joined by |, got 'Number'"),
    ("Number=Plur||Case=Nom", "item ''"),
    ("Number=Plur|Number=Sing", "names Number twice"),
])
def test_a_malformed_feats_column_is_one_error_naming_file_and_line(feats, expected):
    lines = TREEBANK.split("\n")
    lines[2] = lines[2].replace("Number=Plur", feats)
    with pytest.raises(ValueError, match=r"^train\.conllu:3: FEATS \(column 6\)") as err:
        parse_conllu("\n".join(lines), name="train.conllu")
    assert expected in str(err.value)
    assert parse_conllu("\n".join(lines), require_tags=False)  # text only to be tagged: its FEATS is not read


def test_vocab_has_one_class_per_feats_string_with_underscore_and_ids_per_column():
    sentences = parse_conllu(TREEBANK)
    vocab = PosVocab.build(sentences, min_freq=1, columns=["xpos", "feats"])
    assert list(vocab.columns) == ["xpos", "feats"]
    assert "_" in vocab.columns["feats"] and "Mood=Ind|Tense=Past|VerbForm=Fin|Private=Yes" in vocab.columns["feats"]
    item = vocab.encode(sentences[0].words, sentences[0].tags,
                        columns={name: sentences[0].values(name) for name in vocab.columns})
    assert item["columns"].shape == (4, 2)
    assert item["columns"][:, 0].tolist() == vocab.columns["xpos"].ids(["DT", "NNS", "VBD", "."])
    assert item["columns"][3, 1] == vocab.columns["feats"].stoi["_"]
    assert vocab.ufeats.itos[item["ufeats"][2]] == "Mood=Ind|Tense=Past|VerbForm=Fin"
    unseen = vocab.encode(["x"], columns={"xpos": ["ZZ"], "feats": ["Case=Nom"]})
    assert unseen["columns"].tolist() == [[1, 1]] and unseen["ufeats"].tolist() == [1]  # <unk>: an error
    assert PosVocab.from_dict(vocab.to_dict()) == vocab


def test_a_column_the_treebank_leaves_blank_gets_no_head():
    with pytest.warns(UserWarning, match="leaves xpos `_` on every word"):
        vocab = PosVocab.build(parse_conllu(no_xpos(TREEBANK)), min_freq=1, columns=["xpos", "feats"])
    assert list(vocab.columns) == ["feats"]
    with pytest.raises(ConfigError, match="data.columns"):
        UDTreebank(columns=["upos"])  # the tagset column itself


def small_tagger(vocab: PosVocab, **kwargs) -> Tagger:
    torch.manual_seed(0)
    model = Tagger(encoder=TAGGER_ENCODER.replace(dim=16, depth=1, num_heads=2), word_dim=8, char_channels=8,
                   **kwargs)
    model.set_vocab(vocab)
    return model


def test_the_column_losses_are_added_to_the_tag_loss_with_their_weight():
    sentences = parse_conllu(TREEBANK)
    vocab = PosVocab.build(sentences, min_freq=1, columns=["xpos", "feats"])
    batch = collate([(i, vocab.encode(s.words, s.tags, columns={n: s.values(n) for n in vocab.columns}))
                     for i, s in enumerate(sentences)])
    losses = {}
    for weight in (0.0, 1.0, 2.0):
        model = small_tagger(vocab, columns_weight=weight).eval()
        losses[weight] = float(model._step(batch, "val")[0])
        hidden = model.hidden(batch)
        column_loss = float(model.column_heads.loss(model.column_heads.logits(hidden), batch, 0.0))
    assert column_loss > 0
    assert losses[1.0] - losses[0.0] == pytest.approx(column_loss, rel=1e-5)
    assert losses[2.0] - losses[0.0] == pytest.approx(2 * column_loss, rel=1e-5)
    assert bool((batch["columns"][~batch["mask"]] == IGNORE).all())


def test_test_accuracy_scores_the_tags_predict_writes_never_pad_or_unk():
    """Test metrics count the best *real* value, as the written file has it; an argmax that lands on <unk>
    would score a word wrong that the scorer, reading the written tag, counts right."""
    sentences = parse_conllu(TREEBANK)
    vocab = PosVocab.build(sentences, min_freq=1, columns=["xpos", "feats"])
    batch = collate([(i, vocab.encode(s.words, s.tags, columns={n: s.values(n) for n in vocab.columns}))
                     for i, s in enumerate(sentences)])
    model = small_tagger(vocab).eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(0.0)
        model.head.bias[1] = 100.0  # <unk> first, every real tag tied after it
    _, preds = model._step(batch, "test")
    assert bool((preds[batch["mask"]] >= 2).all())
    heads = model.column_heads
    logits = {name: torch.full((2, 4, head.out_features), -5.0) for name, head in heads.heads.items()}
    k = heads.names.index("xpos")
    logits["xpos"].scatter_(-1, batch["columns"][..., k].clamp(min=0).unsqueeze(-1), 5.0)  # gold second ...
    logits["xpos"][..., 1] = 50.0  # ... behind <unk>
    right, counted = heads.correct(logits, batch)["xpos_acc"]
    assert int(counted) == 8 and int(right) == 8


def test_predictions_fill_every_predicted_column_and_leave_a_blank_one_blank(tmp_path):
    text = no_xpos(TREEBANK)
    with pytest.warns(UserWarning):
        vocab = PosVocab.build(parse_conllu(text), min_freq=1, columns=["xpos", "feats"])
    (tmp_path / "in.conllu").write_text(text)
    dm = UDTreebank(predict_path=str(tmp_path / "in.conllu"), columns=["xpos", "feats"])
    dm.setup("predict")
    dm.vocab = vocab
    model = small_tagger(vocab).eval()
    batch = collate([dm.dataset("predict")[i] for i in range(2)])
    outputs = model.predict_step(batch, 0)
    assert set(outputs[0][1]) == {"upos", "feats"}
    words = [t for t in conllu.parse(dm.render_predictions(dict(outputs)))[1] if isinstance(t["id"], int)]
    assert all(t["xpos"] is None for t in words)  # `_`
    assert [t["upos"] for t in words] == outputs[1][1]["upos"]
    feats = ["_" if not t["feats"] else "|".join(f"{k}={v}" for k, v in t["feats"].items()) for t in words]
    assert feats == outputs[1][1]["feats"]


def scorer_scores(gold: Path, predicted: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(SCORER), "-v", str(gold), str(predicted)], capture_output=True,
                         text=True, check=True).stdout
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(UPOS|XPOS|UFeats)\s*\|[^|]*\|[^|]*\|\s*([\d.]+)",
                                                               out, re.M)}


@pytest.mark.skipif(not (SCORER.is_file() and GDT.with_name("el_gdt-ud-train.conllu").is_file()),
                    reason="needs ../shared/tools/conll18_ud_eval.py and ../shared/data/ud (Greek GDT)")
@pytest.mark.parametrize("feats_head", ["whole", "factored"])
def test_attnlab_test_agrees_with_the_official_scorer_on_the_written_file(tmp_path, feats_head):
    """A short fit on a slice of Greek GDT; test's UPOS / XPOS / UFeats equal the scorer's on predict's file."""
    parts = {}
    for split, count in (("train", 300), ("dev", 60), ("test", 120)):
        text = GDT.with_name(f"el_gdt-ud-{split}.conllu").read_text(encoding="utf-8")
        parts[split] = tmp_path / f"{split}.conllu"
        parts[split].write_text("\n\n".join(text.split("\n\n")[:count]) + "\n\n", encoding="utf-8")
    common = ["--config", str(ROOT / "configs" / "pos" / "ud.yaml"), "--data.train", str(parts["train"]),
              "--data.dev", str(parts["dev"]), "--data.test", str(parts["test"]), "--trainer.max_steps", "40",
              "--trainer.val_check_interval", "20",
              "--model.encoder.dim", "64", "--model.encoder.depth", "1", "--model.encoder.num_heads", "4",
              "--model.feats_head", feats_head, "--trainer.default_root_dir", str(tmp_path / "runs"), *QUIET]
    main(["fit", *common])
    main(["test", *common, "--ckpt_path", "best"])
    metrics = json.loads(next((tmp_path / "runs").rglob("*.metrics.json")).read_text())["metrics"]
    predicted = tmp_path / "predicted.conllu"
    main(["predict", *common, "--ckpt_path", "best", "--data.predict_path", str(parts["test"]),
          "--data.predict_output", str(predicted), "--data.keep_columns", "true"])  # the scorer needs HEAD
    scores = scorer_scores(parts["test"], predicted)
    assert set(scores) == {"UPOS", "XPOS", "UFeats"}
    for ours, theirs in (("test/acc", "UPOS"), ("test/xpos_acc", "XPOS"), ("test/ufeats_acc", "UFeats")):
        assert 100 * metrics[ours] == pytest.approx(scores[theirs], abs=0.006), ours  # the scorer prints 2 decimals
    assert 0 < scores["UPOS"] < 100


def test_factored_feats_have_one_classifier_per_feature_with_absent_and_unseen_values():
    sentences = parse_conllu(TREEBANK)
    vocab = PosVocab.build(sentences, min_freq=1, columns=["xpos", "feats"])
    assert list(vocab.features) == ["Definite", "Mood", "Number", "Person", "Private", "PronType", "Tense",
                                    "VerbForm"]
    assert vocab.features["Number"].itos == ["<pad>", "<unk>", "_", "Plur", "Sing"]
    item = vocab.encode(["x", "y", "z"], columns={"feats": ["Number=Sing", "_", "Number=Dual|Case=Nom"]})
    names = list(vocab.features)
    number, mood = names.index("Number"), names.index("Mood")
    assert item["features"][0, number] == vocab.features["Number"].stoi["Sing"]
    assert item["features"][0, mood] == 2 and bool((item["features"][1] == 2).all())  # `_`: absent
    universal = vocab.universal_feature_mask()
    assert not universal[names.index("Private")] and universal[number]
    # Case never occurs in training: the word's gold cannot be written, so every universal feature is <unk>
    assert bool((item["features"][2][universal] == 1).all())
    assert PosVocab.from_dict(vocab.to_dict()).features == vocab.features  # derived: nothing more is stored


def test_factored_feats_accuracy_counts_exactly_the_words_whose_written_universal_string_is_right():
    sentences = parse_conllu(TREEBANK)
    vocab = PosVocab.build(sentences, min_freq=1, columns=["xpos", "feats"])
    gold = [["Number=Plur", "_", "Case=Nom|Number=Sing", "Mood=Ind|Private=Yes"]]
    batch = collate([(0, vocab.encode(["a", "b", "c", "d"], columns={"feats": gold[0]}))])
    heads = small_tagger(vocab, feats_head="factored").column_heads
    assert heads.factored
    for seed in range(5):
        torch.manual_seed(seed)
        logits = {name: torch.randn(1, 4, head.out_features) * 3 for name, head in heads.heads.items()}
        written = heads.best_values(logits, [4])["feats"][0]
        assert all(w == "_" or w.split("|") == sorted(w.split("|"), key=str.lower) for w in written)
        expected = sum(universal_feats(w) == universal_feats(g) and "Case" not in g for w, g in zip(written, gold[0]))
        right, counted = heads.correct(logits, batch)["ufeats_acc"]
        assert (int(right), int(counted)) == (expected, 4)
    target = batch["features"][0]
    for f, name in enumerate(vocab.features):  # logits that put everything on the gold values: all right
        logits["feats"][0, :, sum(heads.feature_sizes[:f]):sum(heads.feature_sizes[:f + 1])] = \
            torch.nn.functional.one_hot(target[:, f].clamp(min=0), heads.feature_sizes[f]).float() * 50
    assert int(heads.correct(logits, batch)["ufeats_acc"][0]) == 3  # the word with the unseen Case stays wrong
    assert heads.best_values(logits, [4])["feats"][0][:2] == ["Number=Plur", "_"]


def test_factored_feats_loss_is_the_sum_of_one_cross_entropy_per_feature():
    sentences = parse_conllu(TREEBANK)
    vocab = PosVocab.build(sentences, min_freq=1, columns=["feats"])
    batch = collate([(i, vocab.encode(s.words, s.tags, columns={"feats": s.values("feats")}))
                     for i, s in enumerate(sentences)])
    heads = small_tagger(vocab, feats_head="factored").column_heads
    logits = {"feats": torch.randn(2, 4, sum(heads.feature_sizes))}
    expected = sum(torch.nn.functional.cross_entropy(part.flatten(0, 1), batch["features"][..., f].flatten(),
                                                     ignore_index=IGNORE)
                   for f, part in enumerate(heads.feature_logits(logits["feats"])))
    assert float(heads.loss(logits, batch, 0.0)) == pytest.approx(float(expected), rel=1e-6)
    with pytest.raises(ValueError, match="feats_head"):
        small_tagger(vocab, feats_head="per_word")
