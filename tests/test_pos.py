"""POS tagging app: CoNLL-U reading, vocabularies in checkpoints, bucketing, windows, CLI fit/test/predict."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import conllu
import lightning as L
import pytest
import torch
import torch.nn.functional as F

from apps.cli import find_checkpoint, main
from apps.pos import TAGGER_ENCODER, Tagger, window_owners, window_starts
from apps.pos_features import CharCNN
from core import Neighborhood2D, Truncated
from datamodules.batching import BucketBatchSampler
from datamodules.pos import (
    IGNORE,
    SHAPES,
    ConlluError,
    PosVocab,
    Sentence,
    SyntheticTreebank,
    UDTreebank,
    collate,
    make_synthetic,
    parse_conllu,
    read_conllu,
    read_text,
    word_stems,
    word_suffixes,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "pos" / "synthetic.yaml")
EWT = ROOT.parent / "shared" / "data" / "ud"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
SMALL = [
    "--config", CONFIG, *QUIET,
    "--data.num_train", "1500", "--data.num_val", "100", "--data.num_test", "200", "--trainer.max_epochs", "4",
]
APP_DIR = Path("runs") / "tagger"

# Comments, a multiword range, an empty node, a sentence without final newline handling, blank lines at the end.
EDGE = """\
# newdoc id = d1
# sent_id = s1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t3:nsubj\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t4:aux\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t4:advmod\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t0:root\tSpaceAfter=No
4.1\tknow\tknow\tVERB\tVB\t_\t_\t_\t4:conj\tCopyOf=4
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t4:punct\t_

# sent_id = s2
1\tGo\tgo\tVERB\tVB\t_\t0\troot\t0:root\t_
2\t!\t!\tPUNCT\t.\t_\t1\tpunct\t1:punct\t_


\n"""


def attnlab(*args: str) -> None:
    main(list(args))


# ------------------------------------------------------------------------------------------ CoNLL-U
def test_conllu_edge_cases(tmp_path: Path) -> None:
    path = tmp_path / "edge.conllu"
    path.write_text(EDGE)
    first, second = read_conllu(path)
    assert first.words == ["I", "do", "n't", "know", "."]  # the range and the empty node are not words
    assert first.tags == ["PRON", "AUX", "PART", "VERB", "PUNCT"]
    assert first.tokens.metadata["sent_id"] == "s1" and first.tokens.metadata["newdoc id"] == "d1"
    assert [t["id"] for t in first.tokens] == [1, (2, "-", 3), 2, 3, 4, (4, ".", 1), 5]
    assert first.where == f"{path}:1"
    assert second.words == ["Go", "!"] and second.where == f"{path}:12"
    assert [s.tags for s in parse_conllu(EDGE, tagset="xpos")] == [["PRP", "VBP", "RB", "VB", "."], ["VB", "."]]
    # no blank line after the last sentence, Windows line ends
    assert len(parse_conllu(EDGE.rstrip("\n"))) == 2
    assert parse_conllu(EDGE.replace("\n", "\r\n"))[0].words == first.words


BAD = "1\tA\ta\tDET\tDT\t_\t2\tdet\t2:det\t_\n2\tcat\tcat\tNOUN\tNN\t_\t0\troot\t0:root\t_\n"


@pytest.mark.parametrize(("old", "new", "line", "expected"), [
    ("\tNN\t_\t0", "\tNN\t0", 2, "expected 10 tab-separated columns"),
    ("2\tcat", "two\tcat", 2, "ID must be a word index"),
    ("2\tcat", "3\tcat", 2, "expected word ID 2"),
    ("\tNOUN\t", "\t_\t", 2, "UPOS (column 4) of word 'cat' is '_'"),
    ("2\tcat", "# note\n2\tcat", 2, "comment line inside a sentence"),
])
def test_malformed_conllu_names_file_line_and_problem(tmp_path: Path, old: str, new: str, line: int,
                                                      expected: str) -> None:
    path = tmp_path / "bad.conllu"
    path.write_text("# sent_id = x\n" + BAD.replace(old, new) + "\n")
    with pytest.raises(ConlluError) as error:
        UDTreebank(train=str(path)).setup("fit")
    assert str(error.value).startswith(f"{path}:{line + 1}: ") and expected in str(error.value)


def test_raw_text_tokenisation(tmp_path: Path) -> None:
    path = tmp_path / "raw.txt"
    path.write_text("Hello, world! It's state-of-the-art: 3.5 km.\n\n  \nBye\n")
    first, second = read_text(path, tokenizer="regex")  # the package-free fallback; spaCy's: test_own_data.py
    assert first.words == ["Hello", ",", "world", "!", "It's", "state-of-the-art", ":", "3.5", "km", "."]
    assert [t["misc"] for t in first.tokens][:3] == ["SpaceAfter=No", "_", "SpaceAfter=No"]
    assert second.words == ["Bye"] and second.where == f"{path}:4" and first.tags is None


# ------------------------------------------------------------------------------------------ vocabulary
def test_vocab_unknowns_shapes_and_round_trip() -> None:
    sentences = parse_conllu(EDGE) * 2 + parse_conllu(EDGE.split("\n\n")[0] + "\n")
    vocab = PosVocab.build(sentences, min_freq=3, max_word_chars=6)
    assert "know" in vocab.words and "go" not in vocab.words and "go" in vocab.known  # seen twice only
    item = vocab.encode(["Know", "Go", "Xylophones", "42"], ["VERB", "VERB", "NOUN", "NUM"])
    assert item["words"].tolist()[1:] == [1, 1, 1] and item["words"][0] == vocab.words.stoi["know"]
    assert item["known"].tolist() == [True, True, False, False]
    assert item["tags"].tolist()[2:] == [1, 1]  # tags never seen in training -> <unk> (always an error)
    assert item["chars"].shape == (4, 8)  # 6 characters kept of "Xylophones" (3 + 3) + word markers
    assert item["shapes"][0, 0] and item["shapes"][3, 4] and not item["shapes"][3, 0]  # title; number
    assert PosVocab.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab


def test_a_capital_dotted_i_is_the_same_word_in_lower_case() -> None:
    """"İlk".lower() is "i̇lk" (i + U+0307): the word vocabulary keys it as "ilk", the form seen mid-sentence."""
    vocab = PosVocab.build([Sentence(["ilk", "kez"], ["ADJ", "NOUN"])], min_freq=1)
    item = vocab.encode(["İlk", "Kez"])
    assert item["known"].all() and item["words"].tolist() == vocab.words.ids(["ilk", "kez"])


def test_a_vocabulary_saved_with_str_lower_keys_still_finds_its_dotted_i_words() -> None:
    """A checkpoint's vocabulary keyed "İlk" as "i̇lk" (str.lower): loaded, "İlk" and "ilk" find that entry and
    its endings, and the saved lists (the embedding rows) are unchanged."""
    old = PosVocab.build([Sentence(["ilk", "kez"], ["ADJ", "NOUN"])], min_freq=1, max_suffix=3).to_dict()
    old["words"] = ["i\u0307lk" if w == "ilk" else w for w in old["words"]]
    old["known"] = ["i\u0307lk" if w == "ilk" else w for w in old["known"]]
    loaded = PosVocab.from_dict(old)
    item = loaded.encode(["İlk", "ilk"])
    assert item["known"].all() and item["words"].tolist() == [loaded.words.stoi["i\u0307lk"]] * 2
    assert loaded.words.itos[2:] == old["words"]


def test_word_endings_from_train_only() -> None:
    """Endings shared by enough training forms get ids; the word itself never counts as its own ending."""
    assert word_suffixes("walking", 4) == ["g", "ng", "ing", "king"] and word_suffixes("go", 4) == ["o"]
    words = ["walking", "talking", "singing", "quickly", "slowly", "go"]
    vocab = PosVocab.build([Sentence(words, ["VERB"] * 6)], min_freq=1, max_suffix=3, min_suffix_words=2)
    assert {"ing", "ng", "g", "ly", "y"} <= set(vocab.suffixes.itos) and "lly" not in vocab.suffixes
    ids = vocab.encode(["Jumping", "really", "ox"])["suffixes"]
    assert ids.shape == (3, 3)
    assert ids[0].tolist() == vocab.suffixes.ids(["g", "ng", "ing"])  # lower-cased, shortest ending first
    assert ids[1, 2] == 1 and ids[2].tolist() == [1, 0, 0]  # "lly" too rare -> <unk>; "ox" has one ending
    assert PosVocab.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab
    old = {k: v for k, v in vocab.to_dict().items() if k not in ("suffixes", "max_suffix")}
    before = PosVocab.from_dict(old)  # saved before endings existed
    assert before.max_suffix == 0 and before.encode(["Jumping"])["suffixes"].shape == (1, 0)
    assert collate([(0, before.encode(["a", "b"]))])["suffixes"].shape == (1, 2, 0)


def test_ending_embeddings_reach_the_tags() -> None:
    vocab, batch = _vocab_and_batch([6, 4])
    assert vocab.max_suffix == 4 and batch["suffixes"].shape[:2] == batch["words"].shape
    model = Tagger(encoder=TAGGER_ENCODER.replace(dim=32, depth=1, num_heads=2), word_dim=16, char_channels=16,
                   suffix_dim=8)
    model.set_vocab(vocab)
    model.eval()
    assert model.features.proj.in_features == 16 + 16 + 8 + len(SHAPES)
    changed = dict(batch, suffixes=batch["suffixes"].roll(1, dims=1))
    assert not torch.allclose(model(batch), model(changed))
    with pytest.raises(ValueError, match="suffixes"):
        model({k: v for k, v in batch.items() if k != "suffixes"})
    plain = Tagger(encoder=TAGGER_ENCODER.replace(dim=32, depth=1, num_heads=2), word_dim=16, char_channels=16)
    plain.set_vocab(vocab)
    assert plain.features.suffixes is None and plain.features.proj.in_features == 16 + 16 + len(SHAPES)
    old = PosVocab.from_dict({k: v for k, v in vocab.to_dict().items() if k not in ("suffixes", "max_suffix")})
    with pytest.warns(UserWarning, match="no word endings"):
        Tagger(encoder=TAGGER_ENCODER.replace(dim=32, depth=1, num_heads=2), word_dim=16, char_channels=16,
               suffix_dim=8).set_vocab(old)


TURKISH = """\
1\tEvlerimizde\tev\tNOUN\tNoun\t_\t0\troot\t_\t_
2\tkitaplar\tkitap\tNOUN\tNoun\t_\t1\tnmod\t_\t_
3\tgeldi\tgel\tVERB\tVerb\t_\t1\tconj\t_\t_
4\ta\ta\tINTJ\tInterj\t_\t1\tdiscourse\t_\t_

"""


def test_lemma_stems_are_the_longest_training_lemmas_a_word_begins_with() -> None:
    """data.max_stems: an unseen inflection finds the training lemmas it begins with, longest first, lower-cased
    (one-letter lemmas never count); vocabularies saved before stems existed, or without lemmas, have none."""
    train = parse_conllu(TURKISH)
    vocab = PosVocab.build(train, min_freq=1, max_stems=2)
    assert vocab.stems.itos[2:] == ["ev", "gel", "kitap"] and vocab.max_stems == 2
    assert word_stems("kitaplarımızda", vocab.stems.stoi, 2) == ["kitap"]
    assert word_stems("gelev", {"g", "ge", "gel", "gele", "gelev"}, 3) == ["gelev", "gele", "gel"]
    ids = vocab.encode(["Gelecek", "evde", "okul", "Kitap", "<unk>ev", "<pad>"])["stems"]
    assert ids.tolist() == [[vocab.stems.stoi["gel"], 0], [vocab.stems.stoi["ev"], 0], [0, 0],
                            [vocab.stems.stoi["kitap"], 0], [0, 0], [0, 0]]  # <pad> / <unk> are no lemmas
    assert PosVocab.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab
    before = PosVocab.from_dict({k: v for k, v in vocab.to_dict().items() if k not in ("stems", "max_stems")})
    assert before.max_stems == 0 and collate([(0, before.encode(["evde", "a"]))])["stems"].shape == (1, 2, 0)
    assert PosVocab.build(train, min_freq=1).max_stems == 0  # off unless asked for
    dotted = parse_conllu("1\tİ\tİ\tNOUN\t_\t_\t0\troot\t_\t_\n2\tİpek\tİpek\tPROPN\t_\t_\t1\tflat\t_\t_\n\n")
    assert PosVocab.build(dotted, max_stems=1).stems.itos[2:] == ["ipek"]  # "İ" lowers to one letter: no stem
    with pytest.warns(UserWarning, match="no LEMMA"):
        assert PosVocab.build([Sentence(["evde"], ["NOUN"])], max_stems=2).max_stems == 0


def test_stem_embeddings_reach_the_tags() -> None:
    """model.stem_dim: one embedding slot per looked-up lemma, concatenated into the word vector; the tagger's
    output follows them, a batch without them is refused, and a vocabulary without stems is a warning."""
    train = parse_conllu(TURKISH)
    vocab = PosVocab.build(train, min_freq=1, max_stems=2)
    small = {"encoder": TAGGER_ENCODER.replace(dim=32, depth=1, num_heads=2), "word_dim": 16, "char_channels": 16}
    model = Tagger(**small, stem_dim=8)
    model.set_vocab(vocab)
    model.eval()
    assert model.features.proj.in_features == 16 + 16 + 2 * 8 + len(SHAPES)
    batch = collate([(0, vocab.encode(["evde", "kitaplar", "geldi"]))])
    changed = dict(batch, stems=batch["stems"].flip(1))
    assert not torch.allclose(model(batch), model(changed))
    with pytest.raises(ValueError, match="stems"):
        model({k: v for k, v in batch.items() if k != "stems"})
    with pytest.warns(UserWarning, match="no lemma stems"):
        Tagger(**small, stem_dim=8).set_vocab(PosVocab.build(train, min_freq=1))


def test_second_tag_column_feeds_an_auxiliary_loss(tmp_path: Path) -> None:
    """data.aux_tagset xpos: XPOS ids beside the UPOS tags (ranges and empty nodes left out), and a tagger with
    aux_weight > 0 adds its head's loss while training only."""
    path = tmp_path / "edge.conllu"
    path.write_text(EDGE.replace("\tRB\t", "\t_\t"))  # "n't" has no XPOS
    data = UDTreebank(train=str(path), dev=str(path), test=str(path), aux_tagset="xpos", batch_size=2)
    data.setup("fit")
    vocab = data.vocab
    assert vocab.aux_tagset == "xpos" and vocab.aux_tags.itos[2:] == [".", "PRP", "VB", "VBP"]
    batch = next(iter(data.train_dataloader()))
    first = int((batch["index"] == 0).nonzero()[0, 0])
    assert batch["aux_tags"][first, :5].tolist() == [*vocab.aux_tags.ids(["PRP", "VBP"]), IGNORE,
                                                     *vocab.aux_tags.ids(["VB", "."])]
    assert PosVocab.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab
    with pytest.raises(ValueError, match="aux_tagset"):
        UDTreebank(train=str(path), aux_tagset="upos")  # the same column as the tags
    blank = tmp_path / "no_xpos.conllu"
    blank.write_text(EDGE.replace("\tPRP\t", "\t_\t").replace("\tVBP\t", "\t_\t").replace("\tRB\t", "\t_\t")
                     .replace("\tVB\t", "\t_\t").replace("\t.\t_", "\t_\t_"))
    with pytest.raises(ValueError, match="aux_tagset=xpos"):
        UDTreebank(train=str(blank), dev=str(blank), aux_tagset="xpos").setup("fit")
    torch.manual_seed(0)
    model = Tagger(encoder=TAGGER_ENCODER.replace(dim=16, depth=1, num_heads=2), word_dim=8, char_channels=8,
                   aux_weight=0.5)
    model.set_vocab(vocab)
    assert model.aux_head.out_features == len(vocab.aux_tags)
    model.eval()
    with torch.no_grad():
        main_only = F.cross_entropy(model(batch).flatten(0, 1), batch["tags"].flatten(), ignore_index=IGNORE)
        aux = F.cross_entropy(model.aux_head(model.hidden(batch)).flatten(0, 1), batch["aux_tags"].flatten(),
                              ignore_index=IGNORE)
        model.log = lambda *a, **k: None  # no trainer attached
        model.log_step = lambda *a, **k: None
        torch.testing.assert_close(model._step(batch, "train")[0], main_only + 0.5 * aux)
        torch.testing.assert_close(model._step(batch, "val")[0], main_only)
    plain = UDTreebank(train=str(path), dev=str(path))
    plain.setup("fit")
    with pytest.raises(ValueError, match="data.aux_tagset"):
        Tagger(encoder=TAGGER_ENCODER.replace(dim=16, depth=1, num_heads=2), aux_weight=0.5).set_vocab(plain.vocab)


def test_bucket_batches_cover_everything_once() -> None:
    lengths = [int(n) for n in torch.randint(1, 60, (257,), generator=torch.Generator().manual_seed(0))]
    sampler = BucketBatchSampler(lengths, batch_size=8, shuffle=True, seed=1)
    epochs = [list(sampler), list(sampler)]
    for batches in epochs:
        assert sorted(i for b in batches for i in b) == list(range(257)) and len(batches) == len(sampler)
    assert epochs[0] != epochs[1]
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in epochs[0]]
    assert sum(spread) / len(spread) < 5  # similar lengths batched together
    ordered = list(BucketBatchSampler(lengths, batch_size=8, shuffle=False))
    assert [lengths[i] for b in ordered for i in b] == sorted(lengths)


# ------------------------------------------------------------------------------------------ model
def _vocab_and_batch(lengths: list[int]) -> tuple[PosVocab, dict]:
    vocab = PosVocab.build(make_synthetic(200, seed=0), min_freq=1)
    words = [s.words for s in make_synthetic(40, seed=5)]
    sentences = [(w * 10)[:n] for w, n in zip(words, lengths, strict=False)]
    return vocab, collate([(i, vocab.encode(s)) for i, s in enumerate(sentences)])


def test_windows_cover_long_sentences_without_truncation() -> None:
    for length, window in [(5, 8), (30, 8), (31, 7), (100, 16)]:
        starts = window_starts(length, window)
        owner = window_owners(starts, window, length)
        offset = torch.arange(length) - torch.tensor(starts)[owner]
        assert starts[0] == 0 and starts[-1] == max(0, length - window)
        assert bool(((offset >= 0) & (offset < window)).all())
    vocab, batch = _vocab_and_batch([30, 12, 3])
    # positions added to the inputs (learned, sinusoidal) or inside attention (relative)
    for position, attention in (("learned", "none"), ("none", "relative"), ("sinusoidal", "none")):
        model = Tagger(encoder=TAGGER_ENCODER.replace(dim=32, depth=1, num_heads=2, position=attention),
                       position=position, max_len=8, word_dim=16, char_channels=16)
        model.set_vocab(vocab)
        model.eval()
        x = model.features(batch["words"], batch["chars"], batch["shapes"])
        out = model._encode_windows(x, batch["mask"])
        assert out.shape == x.shape  # every word of the 30-word sentence gets an output
        starts = window_starts(30, 8)
        for word in (0, 10, 29):  # its output is that of the window it is most central in, run alone
            start = starts[window_owners(starts, 8, 30)[word]]
            alone = model._encode(x[:1, start:start + 8], batch["mask"][:1, start:start + 8])
            torch.testing.assert_close(out[0, word], alone[0, word - start])
        assert len(model.tag([["the"] * 50])[0]) == 50


@pytest.mark.parametrize("variant", [{"backbone": "bilstm"}, {"encoder": {"position": "rotary"}},
                                     {"position": "sinusoidal", "encoder": {"position": "none"}},
                                     {"char_encoder": "bilstm"}, {"char_kernel": [2, 3, 4, 5]},
                                     {"suffix_dim": 8}])
def test_variants_train_a_step(tmp_path: Path, variant: dict) -> None:
    variant = dict(variant)
    encoder = TAGGER_ENCODER.replace(dim=32, depth=1, num_heads=2, **variant.pop("encoder", {}))
    model = Tagger(encoder=encoder, word_dim=16, char_channels=16, **variant)
    data = SyntheticTreebank(num_train=64, num_val=16, num_test=16, batch_size=16)
    trainer = L.Trainer(fast_dev_run=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(model, data)
    assert model.vocab is data.vocab and len(model.head.weight) == len(data.vocab.tags)


def test_frequency_word_dropout_drops_rare_words_more_often() -> None:
    """``word_dropout_by: frequency``: a training word becomes <unk> with probability α / (α + count)."""
    words = ["the"] * 40 + ["dog"] * 4 + ["zebra"]
    vocab = PosVocab.build([Sentence(words, ["X"] * len(words))], min_freq=1)
    assert dict(zip(vocab.words.itos[2:], vocab.word_counts, strict=True)) == {"the": 40, "dog": 4, "zebra": 1}
    assert PosVocab.from_dict(json.loads(json.dumps(vocab.to_dict()))).word_counts == vocab.word_counts
    model = Tagger(encoder=TAGGER_ENCODER.replace(dim=16, depth=1, num_heads=2), word_dim=8, char_channels=8,
                   word_dropout=0.5, word_dropout_by="frequency")
    model.set_vocab(vocab)
    features = model.features.train()
    seen = {}
    features.word.register_forward_hook(lambda module, args, out: seen.update(ids=args[0]))
    torch.manual_seed(0)
    ids = torch.tensor([[vocab.words.stoi[w] for w in ("the", "dog", "zebra")]]).repeat(4000, 1)
    features(ids, torch.zeros(*ids.shape, 3, dtype=torch.long), torch.zeros(*ids.shape, len(SHAPES)))
    dropped = (seen["ids"] == 1).float().mean(0)
    torch.testing.assert_close(dropped, torch.tensor([0.5 / 40.5, 0.5 / 4.5, 0.5 / 1.5]), atol=0.02, rtol=0)
    features.eval()(ids, torch.zeros(*ids.shape, 3, dtype=torch.long), torch.zeros(*ids.shape, len(SHAPES)))
    assert (seen["ids"] == ids).all()  # evaluation: every word keeps its embedding
    uniform = Tagger(encoder=TAGGER_ENCODER.replace(dim=16, depth=1, num_heads=2), word_dim=8, char_channels=8,
                     word_dropout=0.2)
    uniform.set_vocab(vocab)
    torch.testing.assert_close(uniform.features.drop_prob, torch.tensor([0, 0, 0.2, 0.2, 0.2]))
    old = PosVocab.from_dict({k: v for k, v in vocab.to_dict().items() if k != "word_counts"})
    with pytest.raises(ValueError, match="word_dropout_by=frequency needs the training count"):
        Tagger(encoder=TAGGER_ENCODER.replace(dim=16, depth=1, num_heads=2), word_dropout_by="frequency").set_vocab(old)
    with pytest.raises(ValueError, match="word_dropout_by"):
        Tagger(word_dropout_by="rare")


def test_char_cnn_widths_see_only_the_word() -> None:
    """One convolution per width, outputs side by side; padding words give zeros and a word's vector does not
    depend on how long the other words of the batch are (even widths included)."""
    torch.manual_seed(0)
    cnn = CharCNN(num_chars=12, char_dim=4, channels=3, kernel=[2, 3, 4])
    word = torch.tensor([2, 5, 7, 3])
    short = torch.zeros(1, 2, 4, dtype=torch.long)
    short[0, 0] = word
    wide = torch.zeros(1, 2, 9, dtype=torch.long)
    wide[0, 0, :4] = word
    wide[0, 1] = torch.arange(1, 10)
    out_short, out_wide = cnn(short), cnn(wide)
    assert out_short.shape == (1, 2, 9) and cnn.out_channels == 9
    torch.testing.assert_close(out_short[0, 0], out_wide[0, 0])
    assert out_short[0, 1].abs().sum() == 0  # the padding word
    with pytest.raises(ValueError, match="char_kernel"):
        CharCNN(num_chars=12, char_dim=4, channels=3, kernel=[])


def test_checkpoint_of_single_width_char_cnn_still_loads() -> None:
    """Checkpoints from before the list of widths named the one convolution ``chars.conv``."""
    vocab, _ = _vocab_and_batch([3])
    model = Tagger(encoder=TAGGER_ENCODER.replace(dim=16, depth=1, num_heads=2), word_dim=8, char_channels=8)
    model.set_vocab(vocab)
    state = {k.replace(".chars.convs.0.", ".chars.conv."): v.clone() for k, v in model.state_dict().items()}
    assert any(".chars.conv." in k for k in state)
    fresh = Tagger(encoder=TAGGER_ENCODER.replace(dim=16, depth=1, num_heads=2), word_dim=8, char_channels=8)
    checkpoint = {"pos_vocab": vocab.to_dict(), "state_dict": state}
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])
    torch.testing.assert_close(fresh.features.chars.convs[0].weight, model.features.chars.convs[0].weight)


def test_loss_ignores_padding() -> None:
    vocab, batch = _vocab_and_batch([9, 2])
    batch["tags"] = torch.where(batch["mask"], 3, IGNORE)
    model = Tagger(encoder=TAGGER_ENCODER.replace(dim=32, depth=1, num_heads=2), word_dim=16, char_channels=16)
    model.set_vocab(vocab)
    model.eval()
    logits = model(batch)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["tags"].flatten(), ignore_index=IGNORE)
    short = {k: v[1:, :2] if v.dim() > 1 else v[1:] for k, v in batch.items()}
    torch.testing.assert_close(logits[1, :2], model(short)[0])  # padding does not change real words
    assert torch.isfinite(loss)


# ------------------------------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pos")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(sys, "argv", ["attnlab"])
        attnlab("fit", *SMALL)
    return root


@pytest.fixture
def in_run_dir(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(run_dir)
    monkeypatch.setattr(sys, "argv", ["attnlab"])
    return run_dir


def test_vocab_round_trip_through_checkpoint(in_run_dir: Path) -> None:
    ckpt = find_checkpoint(APP_DIR, "best")
    model = Tagger.load_from_checkpoint(ckpt, map_location="cpu")
    data = SyntheticTreebank(num_train=1500, tagset="upos", min_word_freq=1)
    assert model.vocab == data.build_vocab()  # the checkpoint alone can tag, without the training data
    assert torch.load(ckpt, weights_only=True)["pos_vocab"]["tagset"] == "upos"


def test_synthetic_fit_learns_ambiguous_words_from_context(in_run_dir: Path) -> None:
    model = Tagger.load_from_checkpoint(find_checkpoint(APP_DIR, "best"), map_location="cpu")
    assert model.tag([s.split() for s in ("The man saw the saw .", "She will book the red book !",
                                          "They watch my watch .")]) == [
        ["DET", "NOUN", "VERB", "DET", "NOUN", "PUNCT"],
        ["PRON", "AUX", "VERB", "DET", "ADJ", "NOUN", "PUNCT"],
        ["PRON", "VERB", "DET", "NOUN", "PUNCT"],
    ]
    held_out = make_synthetic(300, seed=1234)
    predicted = model.tag([s.words for s in held_out])
    pairs = [(g, p) for s, ps in zip(held_out, predicted, strict=True)
             for w, g, p in zip(s.words, s.tags, ps, strict=True) if w.lower() in ("saw", "book", "watch", "fly")]
    for reading in ("NOUN", "VERB"):
        hits = [g == p for g, p in pairs if g == reading]
        assert len(hits) > 20 and sum(hits) / len(hits) > 0.97, reading


def test_test_reports_known_unknown_and_per_tag(in_run_dir: Path) -> None:
    ckpt = find_checkpoint(APP_DIR, "best")
    attnlab("test", *SMALL, "--ckpt_path", "best")
    metrics = json.loads(ckpt.with_suffix(".metrics.json").read_text())["metrics"]
    assert metrics["test/acc"] > 0.97 and metrics["test/acc_unknown"] > 0.5 and metrics["test/acc_known"] > 0.97
    assert 0 < metrics["test/unknown_rate"] < 0.2 and metrics["test/tokens_per_s"] > 0
    assert {"test/f1/NOUN", "test/f1/VERB", "test/f1_macro"} <= set(metrics)
    report = json.loads(ckpt.with_suffix(".report.json").read_text())  # the shared per-class report
    assert set(report["classes"]["NOUN"]) == {"precision", "recall", "f1", "support"}
    assert report["extras"]["acc_unknown"] == metrics["test/acc_unknown"]


@pytest.mark.filterwarnings("ignore:.*custom batch sampler")
def test_predict_writes_conllu_from_text_and_conllu(in_run_dir: Path) -> None:
    Path("raw.txt").write_text("The man saw the saw.\nShe can book a flight, and they watch the watch!\n")
    attnlab("predict", *SMALL, "--ckpt_path", "best", "--data.predict_path", "raw.txt",
            "--data.predict_output", "out/raw.conllu")
    parsed = conllu.parse(Path("out/raw.conllu").read_text())
    assert [t["form"] for t in parsed[0]] == ["The", "man", "saw", "the", "saw", "."]
    assert [t["upos"] for t in parsed[0]] == ["DET", "NOUN", "VERB", "DET", "NOUN", "PUNCT"]
    assert parsed[1].metadata["text"].startswith("She can book") and all(t["upos"] for t in parsed[1])

    Path("in.conllu").write_text(EDGE.replace("\tPRON\t", "\t_\t"))  # tags need not be there
    attnlab("predict", *SMALL, "--ckpt_path", "best", "--data.predict_path", "in.conllu",
            "--data.predict_output", "out/edge.conllu")
    written = Path("out/edge.conllu").read_text()
    parsed = conllu.parse(written)
    assert [t["id"] for t in parsed[0]] == [1, (2, "-", 3), 2, 3, 4, (4, ".", 1), 5]
    assert parsed[0].metadata["text"] == "I don't know." and all(t["upos"] for t in parsed[0] if t["id"] != (2, "-", 3))
    lemma_to_deps = [line.split("\t")[2:9] for line in written.splitlines() if "\t" in line]
    assert {c for row in lemma_to_deps for i, c in enumerate(row) if i != 1} == {"_"}  # only UPOS is predicted
    assert [line.split("\t")[9] for line in written.splitlines() if "\t" in line][4] == "SpaceAfter=No"
    attnlab("predict", *SMALL, "--ckpt_path", "best", "--data.predict_path", "in.conllu",
            "--data.predict_output", "out/kept.conllu", "--data.keep_columns", "true")
    kept = Path("out/kept.conllu").read_text()
    untouched = [line.split("\t")[:3] + line.split("\t")[4:] for line in kept.splitlines() if "\t" in line]
    assert untouched == [line.split("\t")[:3] + line.split("\t")[4:] for line in EDGE.splitlines() if "\t" in line]
    assert not list(Path("out").glob(".*.tmp"))


def test_test_without_checkpoint_says_what_is_missing(in_run_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="--ckpt_path"):
        attnlab("test", *SMALL)


def test_init_from_fine_tunes_and_reports_keys(in_run_dir: Path, tmp_path: Path) -> None:
    ckpt = find_checkpoint(APP_DIR, "best")
    source = Tagger.load_from_checkpoint(ckpt, map_location="cpu")
    model = Tagger(encoder=TAGGER_ENCODER.replace(dim=64, depth=2, num_heads=4, mlp_ratio=2.0, max_relative_distance=8),
                   word_dim=48, char_dim=16, char_channels=48, init_from=str(ckpt))
    data = SyntheticTreebank(num_train=64, num_val=16, num_test=16, seed=3, min_word_freq=1)  # other words
    trainer = L.Trainer(max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, data)
    assert model.vocab == source.vocab and data.vocab is model.vocab  # the new data is encoded with the old vocab
    assert model.init_report["loaded"] == sorted(source.state_dict()) and not model.init_report["missing"]
    narrower = Tagger(encoder=TAGGER_ENCODER.replace(dim=32, depth=2, num_heads=4), word_dim=48, char_dim=16,
                      char_channels=48)
    narrower.set_vocab(source.vocab)
    report = narrower.load_matching_weights(ckpt)
    assert "features.word.weight" in report["loaded"] and "head.weight" in report["reshaped"]


# ------------------------------------------------------------------------------------------ real data
@pytest.mark.real
def test_ewt_upos_accuracy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """configs/pos/ewt.yaml from scratch: EWT UPOS test accuracy >= 95.5 % (about 30 minutes on a CPU)."""
    if not (EWT / "en_ewt-ud-train.conllu").is_file():
        pytest.skip(f"{EWT} not available")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["attnlab"])
    config = ["--config", str(ROOT / "configs" / "pos" / "ewt.yaml"), *QUIET]
    for split in ("train", "dev", "test"):
        config += [f"--data.{split}", str(EWT / f"en_ewt-ud-{split}.conllu")]
    attnlab("fit", *config)
    attnlab("test", *config, "--ckpt_path", "best")
    metrics = json.loads(find_checkpoint(APP_DIR, "best").with_suffix(".metrics.json").read_text())["metrics"]
    assert metrics["test/acc"] >= 0.955, metrics


def test_a_truncated_pattern_from_the_cli_keeps_each_word_in_its_window(tmp_path: Path) -> None:
    """`--model.pattern core.Truncated`: one line swaps which words a word sees; the weights say so."""
    root = tmp_path / "runs"
    args = ["--config", CONFIG, *QUIET, "--data.num_train", "200", "--data.num_val", "40", "--data.num_test", "40",
            "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(root), "--model.pattern", "core.Truncated",
            "--model.pattern.left", "1", "--model.pattern.right", "1"]
    attnlab("fit", *args)
    model = Tagger.load_from_checkpoint(next(root.rglob("last.ckpt"))).eval()
    assert isinstance(model.pattern, Truncated) and (model.pattern.left, model.pattern.right) == (1, 1)
    sentence = ["the", "dog", "saw", "a", "big", "book", "."]
    batch = collate([(0, model.vocab.encode(sentence))])
    with torch.no_grad():
        x = model.features(batch["words"], batch["chars"], batch["shapes"], batch.get("suffixes"))
        _, weights = model._encode(x, batch["mask"], return_weights=True)
    offsets = torch.arange(len(sentence))[:, None] - torch.arange(len(sentence))[None, :]
    for layer in weights:  # (B, H, L, L)
        assert bool((layer[..., offsets.abs() > 1] == 0).all()) and bool((layer[..., offsets.abs() <= 1] > 0).all())
    with pytest.raises(ValueError, match="pattern over the words"):
        Tagger(pattern=Neighborhood2D(1, grid=(2, 2)))
