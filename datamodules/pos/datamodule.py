"""``PosDataModule``: what the treebank and the synthetic corpus share: vocabulary, length-bucketed batches
(``datamodules.batching.BucketBatchSampler``; sentences are never truncated, the tagger windows long ones) and
prediction input/output.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal

from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from core.errors import ConfigError

from ..base import BucketedSplits
from .batches import EncodedSentences, collate
from .conllu import COLUMNS, TAGSETS, Column, Sentence, Tagset, fill_tags, read_conllu
from .tokenise import TOKENIZERS, Tokenizer, read_text
from .vocab import PosVocab


class PosDataModule(BucketedSplits):
    """Shared by the treebank and the synthetic corpus: vocabulary, bucketed batches, prediction input/output.

    ``setup("fit")`` builds ``self.vocab`` from the training split (unless it already holds one, e.g. the
    tagger's, when fine-tuning); test/predict never build it: the tagger hands over the one in its
    checkpoint before the dataloaders are made.

    ``predict_path``: raw text (one sentence per line) or CoNLL-U, chosen by ``predict_format`` ("auto":
    ``.conllu`` suffix means CoNLL-U); ``predict_output``: the CoNLL-U file written with the tags filled in
    (default: ``<input stem>.tagged.conllu`` in the predict run's folder).
    ``tokenizer``: how raw text is split into words: "spacy" (UD-style, spaCy's blank ``language`` tokeniser:
    "isn't" -> "is n't"), "whitespace" (already tokenised text) or "regex" (no package needed; see
    ``datamodules.pos.tokenise``). ``keep_columns``: the predicted CoNLL-U keeps the input's other columns
    (LEMMA, FEATS, HEAD, ...) as read; by default only ID, FORM, the predicted tag column and ``SpaceAfter=No``
    are written, the rest ``_``, so nothing read looks predicted.

    Args:
        tagset: the tag column the model predicts: upos or xpos
        min_word_freq: a training word joins the vocabulary when seen at least this many times (lower-cased)
        max_word_chars: characters per word the character encoder reads (longer words: their first and last half)
        max_suffix: longest word ending (characters) with its own embedding (0: none)
        min_suffix_words: an ending is kept when at least this many distinct training words share it
        max_stems: look a word up by the training lemmas (LEMMA column) it begins with, this many of them, the
            longest first ("evlerimizde" -> "ev"): unseen inflections of seen lemmas (0: none)
        aux_tagset: the other tagset (upos|xpos) as an auxiliary target; null: none
        columns: other CoNLL-U columns predicted beside tagset, each by its own head, all trained together and
            written into the predicted CoNLL-U: xpos, feats (each FEATS string one class); a column the training
            treebank leaves `_` gets no head and stays `_`
        predict_path: what attnlab predict / explain tags: raw text (one sentence per line) or CoNLL-U
        predict_format: auto (.conllu/.conll suffix: CoNLL-U, else text), conllu or text
        predict_output: CoNLL-U file predict writes; null: <input stem>.tagged.conllu in the predict run's folder
        tokenizer: how raw text is split into words: spacy (UD-style), whitespace (already tokenised) or regex
        language: the spaCy blank language of tokenizer spacy (e.g. en, de, fr)
        keep_columns: the predicted CoNLL-U keeps the input's other columns (LEMMA, FEATS, HEAD, ...) as read
        seed: seed of the length-bucketed batch order (and of the synthetic corpus)
    """

    def __init__(
        self,
        tagset: Tagset = "upos",
        min_word_freq: int = 2,
        max_word_chars: int = 24,
        max_suffix: int = 4,
        min_suffix_words: int = 3,
        max_stems: int = 0,
        aux_tagset: Tagset | None = None,
        columns: list[Column] | None = None,
        predict_path: str | None = None,
        predict_format: Literal["auto", "conllu", "text"] = "auto",
        predict_output: str | None = None,
        tokenizer: Tokenizer = "spacy",
        language: str = "en",
        keep_columns: bool = False,
        seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory)
        if tagset not in TAGSETS:
            raise ValueError(f"data.tagset must be one of {TAGSETS}, got {tagset!r}")
        if min_word_freq < 1:
            raise ValueError(f"data.min_word_freq must be >= 1, got {min_word_freq}")
        if max_word_chars < 2:
            raise ValueError(f"data.max_word_chars must be >= 2, got {max_word_chars}")
        if max_suffix < 0 or min_suffix_words < 1:
            raise ValueError(f"data.max_suffix must be >= 0 and data.min_suffix_words >= 1, got {max_suffix} and "
                             f"{min_suffix_words}")
        if max_stems < 0:
            raise ValueError(f"data.max_stems must be >= 0, got {max_stems}")
        self.tagset, self.min_word_freq, self.max_word_chars = tagset, min_word_freq, max_word_chars
        self.max_stems = max_stems
        if aux_tagset is not None and (aux_tagset not in TAGSETS or aux_tagset == tagset):
            raise ValueError(f"data.aux_tagset must be null or the other one of {TAGSETS} than data.tagset "
                             f"({tagset}), got {aux_tagset!r}")
        self.max_suffix, self.min_suffix_words, self.aux_tagset = max_suffix, min_suffix_words, aux_tagset
        self.columns = list(columns or [])
        bad = [c for c in self.columns if c not in COLUMNS or c == tagset]
        if bad or len(set(self.columns)) != len(self.columns):
            raise ConfigError(f"data.columns={self.columns}", expected=f"distinct columns of {list(COLUMNS)} other "
                              f"than data.tagset ({tagset}), e.g. [xpos, feats]")
        self.predict_path, self.predict_format, self.predict_output = predict_path, predict_format, predict_output
        if tokenizer not in TOKENIZERS:
            raise ConfigError(f"data.tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
        self.tokenizer, self.language, self.keep_columns = tokenizer, language, keep_columns
        self.seed = seed
        self.vocab: PosVocab | None = None
        self.sentences: dict[str, list[Sentence]] = {}
        self._encoded: dict[str, tuple[PosVocab, EncodedSentences]] = {}

    # subclasses: the gold-tagged sentences of "train", "val" or "test"
    def load_split(self, split: str) -> list[Sentence]:
        raise NotImplementedError

    def _split(self, split: str) -> list[Sentence]:
        if split not in self.sentences:
            self.sentences[split] = self.load_predict() if split == "predict" else self.load_split(split)
        return self.sentences[split]

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}
        for split in splits.get(stage or "fit", ()):
            self._split(split)
        if stage in (None, "fit") and self.vocab is None:
            self.vocab = self.build_vocab()

    def build_vocab(self) -> PosVocab:
        train = self._split("train")
        vocab = PosVocab.build(train, self.tagset, self.min_word_freq, self.max_word_chars, self.max_suffix,
                               self.min_suffix_words, self.aux_tagset, self.columns, self.max_stems)
        rank_zero_info(f"vocabulary from {len(train)} training sentences: {len(vocab.words)} words "
                       f"(min_freq={self.min_word_freq}), {len(vocab.chars)} characters, "
                       f"{len(vocab.suffixes) - 2} endings of up to {self.max_suffix} characters, "
                       + (f"{len(vocab.stems) - 2} lemmas as stems, " if vocab.max_stems else "") +
                       f"{len(vocab.tags) - 2} {self.tagset} tags"
                       + (f", {len(vocab.aux_tags) - 2} {self.aux_tagset} tags" if self.aux_tagset else "")
                       + "".join(f", {len(v) - 2} {name} values" for name, v in vocab.columns.items()))
        return vocab

    def dataset(self, split: str) -> EncodedSentences:
        if self.vocab is None:
            raise RuntimeError(f"{type(self).__name__}: no vocabulary to encode the {split} data with. "
                               "test/predict take it from the tagger's checkpoint: pass --ckpt_path "
                               "(best, last or a file) of a tagger trained with `attnlab fit`")
        cached = self._encoded.get(split)
        if cached is None or cached[0] is not self.vocab:
            sentences = self._split(split)
            if not sentences:
                raise ValueError(f"{type(self).__name__}: the {split} split has no sentences")
            if split != "predict":
                self._warn_unseen_tags(split, sentences)
            cached = self._encoded[split] = (self.vocab, EncodedSentences(sentences, self.vocab))
        return cached[1]

    def _warn_unseen_tags(self, split: str, sentences: list[Sentence]) -> None:
        unseen = Counter(t for s in sentences for t in (s.tags or ()) if t not in self.vocab.tags)
        if unseen:
            rank_zero_warn(f"{split}: {sum(unseen.values())} words have tags the tagger was not trained on "
                           f"({dict(unseen.most_common(5))}); they count as errors")

    collate = staticmethod(collate)

    def item_lengths(self, data) -> list[int]:
        return [len(item["words"]) for item in data.items]

    # ------------------------------------------------------------------ prediction input / output
    def load_predict(self) -> list[Sentence]:
        if self.predict_path is None:
            raise ValueError(f"{type(self).__name__}: set data.predict_path (a raw text file, one sentence per "
                             "line, or a .conllu file) to run predict")
        path = Path(self.predict_path)
        fmt = self.predict_format
        if fmt == "auto":
            fmt = "conllu" if path.suffix.lower() in (".conllu", ".conll") else "text"
        if fmt not in ("conllu", "text"):
            raise ValueError(f"data.predict_format must be 'auto', 'conllu' or 'text', got {fmt!r}")
        if fmt == "conllu":
            return read_conllu(path, self.tagset, require_tags=False)
        return read_text(path, self.tokenizer, self.language)

    def output_path(self) -> Path:
        if self.predict_output:
            return Path(self.predict_output)
        return Path(f"{Path(self.predict_path or 'predictions').stem}.tagged.conllu")

    def render_predictions(self, tags_by_index: dict[int, list[str] | dict[str, list[str]]],
                           tagset: str | None = None) -> str:
        """The predict input as CoNLL-U text, the ``tagset`` column of every word filled in; a value per sentence
        is its tags, or ``{column: values}`` of every predicted column (the tagset column and e.g. xpos, feats)."""
        sentences = self._split("predict")
        missing = [i for i in range(len(sentences)) if i not in tags_by_index]
        if missing:
            raise ValueError(f"no predictions for {len(missing)} of {len(sentences)} sentences (first: "
                             f"{sentences[missing[0]].where})")
        tagset = tagset or self.tagset
        predicted = {i: v if isinstance(v, dict) else {tagset: v} for i, v in tags_by_index.items()}
        return "".join(fill_tags(s, predicted[i][tagset], tagset, self.keep_columns,
                                 {k: v for k, v in predicted[i].items() if k != tagset}).serialize()
                       for i, s in enumerate(sentences))
