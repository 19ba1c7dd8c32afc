"""Part-of-speech tagging data: CoNLL-U treebanks (Universal Dependencies) or a synthetic tagged corpus.

One concern per module: ``conllu`` (reading, validation, writing tags back), ``tokenise`` (raw text),
``vocab`` (``PosVocab``, word shapes and endings), ``batches`` (encoded sentences, collate), ``datamodule``
(``PosDataModule``), ``treebank`` (``UDTreebank``) and ``synthetic`` (``SyntheticTreebank``, the offline default).

The names below are the package's public interface; configs and old checkpoints name the datamodules as
``datamodules.pos.<Class>``, which keeps resolving through these re-exports.
"""

from ..batching import IGNORE
from .batches import WORD_INPUTS, EncodedSentences, collate
from .conllu import (
    COLUMNS,
    FIELDS,
    TAGSETS,
    UNIVERSAL_FEATURES,
    Column,
    ConlluError,
    Sentence,
    Tagset,
    fill_tags,
    join_feats,
    parse_conllu,
    read_conllu,
    split_feats,
    universal_feats,
)
from .datamodule import PosDataModule
from .synthetic import AMBIGUOUS, LEXICON, SyntheticTreebank, generate_sentence, make_synthetic
from .tokenise import TOKENIZERS, Tokenizer, read_text, spacy_tokenizer, split_tokens, text_sentence, tokenize
from .treebank import UDTreebank
from .vocab import ABSENT, BOW, EOW, SHAPES, PosVocab, Vocab, word_shape, word_stems, word_suffixes

__all__ = [
    "ABSENT", "AMBIGUOUS", "BOW", "COLUMNS", "Column", "EOW", "FIELDS", "UNIVERSAL_FEATURES", "universal_feats",
    "IGNORE", "LEXICON", "SHAPES", "TAGSETS", "TOKENIZERS",
    "ConlluError", "EncodedSentences", "PosDataModule", "PosVocab", "Sentence", "SyntheticTreebank", "Tagset",
    "Tokenizer", "UDTreebank", "Vocab", "WORD_INPUTS",
    "collate", "fill_tags", "generate_sentence", "join_feats", "make_synthetic", "parse_conllu", "read_conllu",
    "read_text", "spacy_tokenizer", "split_feats", "split_tokens", "text_sentence", "tokenize", "word_shape",
    "word_stems", "word_suffixes",
]
