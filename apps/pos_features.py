"""The tagger's word input: a word embedding, its spelling (char CNN or char BiLSTM), its endings and shape.

Kept apart from ``apps.pos`` so the LightningModule reads as embed -> encoder -> heads; these are the
"embed" part, the only place that knows how a word becomes a vector.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.pos import SHAPES, WORD_INPUTS, PosVocab


class CharCNN(nn.Module):
    """Characters of each word (with begin/end markers) -> convolutions -> max over the word -> one vector.

    ``kernel`` may be a list of widths: one convolution of ``channels`` filters per width, outputs concatenated,
    so a word vector can hold both short pieces ("s</w>") and whole suffixes ("ing</w>", "ness</w>")."""

    def __init__(self, num_chars: int, char_dim: int, channels: int, kernel: int | Sequence[int]) -> None:
        super().__init__()
        kernels = [kernel] if isinstance(kernel, int) else list(kernel)
        if not kernels or any(k < 1 for k in kernels):
            raise ValueError(f"model.char_kernel must be a positive width or a list of them, got {kernel!r}")
        self.embed = nn.Embedding(num_chars, char_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(char_dim, channels, k, padding=k // 2) for k in kernels)
        self.out_channels = channels * len(kernels)

    def forward(self, chars: Tensor) -> Tensor:
        """(B, L, C) char ids -> (B, L, channels · widths)."""
        batch, length, width = chars.shape
        flat = chars.reshape(batch * length, width)
        x = self.embed(flat).transpose(1, 2)
        real = (flat != 0).unsqueeze(1)
        # Even widths pad one more on the left than they cut on the right: keep the first ``width`` outputs.
        h = [(F.relu(conv(x))[..., :width] * real.to(x.dtype)).amax(-1) for conv in self.convs]  # padding -> 0
        return torch.cat(h, dim=-1).reshape(batch, length, -1)


class CharLSTM(nn.Module):
    """Characters of each word (with begin/end markers) -> BiLSTM -> last forward and first backward state.

    Reads the whole spelling in order, so prefixes and suffixes of unseen words (``-ly``, ``un-``, ``-ing``)
    shape the vector more directly than a max over CNN windows (Plank et al. 2016)."""

    def __init__(self, num_chars: int, char_dim: int, channels: int) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"char_channels must be even for the char BiLSTM (half per direction), got {channels}")
        self.embed = nn.Embedding(num_chars, char_dim, padding_idx=0)
        self.lstm = nn.LSTM(char_dim, channels // 2, batch_first=True, bidirectional=True)
        self.out_channels = channels

    def forward(self, chars: Tensor) -> Tensor:
        """(B, L, C) char ids -> (B, L, channels); padding words get zeros."""
        batch, length, width = chars.shape
        flat = chars.reshape(batch * length, width)
        lengths = (flat != 0).sum(1)
        real = lengths > 0
        out = flat.new_zeros(batch * length, self.lstm.hidden_size * 2, dtype=self.embed.weight.dtype)
        if bool(real.any()):
            packed = nn.utils.rnn.pack_padded_sequence(self.embed(flat[real]), lengths[real].cpu(), batch_first=True,
                                                       enforce_sorted=False)
            _, (h, _) = self.lstm(packed)  # h: (2, words, hidden): last forward state, first backward state
            out[real] = torch.cat([h[0], h[1]], dim=-1).to(out.dtype)
        return out.view(batch, length, -1)


class WordFeatures(nn.Module):
    """Lower-cased word embedding ⊕ char CNN ⊕ ending embeddings ⊕ shape features, projected to ``dim``.

    ``word_dropout``: while training, a word id is replaced by ``<unk>`` with this probability, so the
    model learns to tag from characters and context the words it has no embedding for. ``word_dropout_by:
    frequency``: with probability α / (α + count) instead, α = ``word_dropout`` and count its training count
    (Kiperwasser & Goldberg 2016): rare words, the ones most like unseen test words, are dropped often, frequent
    ones (whose embeddings carry their ambiguity) seldom.
    ``suffix_dim``: size of the sum of the embeddings of a word's endings (``PosVocab.suffixes``); 0: unused.
    ``stem_dim``: size of the embedding of each training lemma the word begins with (``PosVocab.stems``, the
    longest first, one slot each, concatenated so the longest keeps its place); 0: unused.
    """

    def __init__(self, vocab: PosVocab, dim: int, word_dim: int, char_dim: int, char_channels: int,
                 char_kernel: int | Sequence[int], dropout: float, word_dropout: float,
                 char_encoder: str = "cnn", suffix_dim: int = 0, word_dropout_by: str = "uniform",
                 stem_dim: int = 0) -> None:
        super().__init__()
        self.word = nn.Embedding(len(vocab.words), word_dim, padding_idx=0)
        self.chars = (CharCNN(len(vocab.chars), char_dim, char_channels, char_kernel) if char_encoder == "cnn"
                      else CharLSTM(len(vocab.chars), char_dim, char_channels))
        self.suffixes = (nn.EmbeddingBag(len(vocab.suffixes), suffix_dim, mode="sum", padding_idx=0)
                         if suffix_dim > 0 and vocab.max_suffix > 0 else None)
        suffix_dim = suffix_dim if self.suffixes is not None else 0
        self.stems = (nn.Embedding(len(vocab.stems), stem_dim, padding_idx=0)
                      if stem_dim > 0 and vocab.max_stems > 0 else None)
        stems_width = stem_dim * vocab.max_stems if self.stems is not None else 0
        self.proj = nn.Linear(word_dim + self.chars.out_channels + suffix_dim + stems_width + len(SHAPES), dim)
        self.drop = nn.Dropout(dropout)
        self.word_dropout = word_dropout
        drop = torch.zeros(len(vocab.words))  # per word id; <pad> and <unk> never
        if word_dropout_by == "frequency":
            if len(vocab.word_counts) != len(vocab.words) - 2:
                raise ValueError("model.word_dropout_by=frequency needs the training count of every word, which "
                                 "this vocabulary (saved before counts were kept) lacks: use uniform")
            counts = torch.tensor(vocab.word_counts, dtype=torch.float)
            drop[2:] = word_dropout / (word_dropout + counts)
        else:
            drop[2:] = word_dropout
        self.register_buffer("drop_prob", drop, persistent=False)  # rebuilt from the vocabulary, not saved

    def embed(self, batch: dict[str, Tensor]) -> Tensor:
        """The word vectors of a batch dict (``datamodules.pos.collate``): its ``WORD_INPUTS``, in ``forward``'s
        order, the optional ones (endings, stems) None when the batch has none."""
        return self(*(batch.get(key) for key in WORD_INPUTS))

    def forward(self, words: Tensor, chars: Tensor, shapes: Tensor, suffixes: Tensor | None = None,
                stems: Tensor | None = None) -> Tensor:
        if self.training and self.word_dropout > 0:
            drop = torch.rand(words.shape, device=words.device) < self.drop_prob[words]
            words = words.masked_fill(drop, 1)  # 1 = <unk>
        parts = [self.word(words), self.chars(chars)]
        if self.suffixes is not None:
            if suffixes is None:
                raise ValueError("this tagger embeds word endings: the batch needs 'suffixes' (PosVocab.encode)")
            parts.append(self.suffixes(suffixes.flatten(0, 1)).view(*words.shape, -1))
        if self.stems is not None:
            if stems is None:
                raise ValueError("this tagger embeds lemma stems: the batch needs 'stems' (PosVocab.encode)")
            parts.append(self.stems(stems).flatten(-2))
        x = torch.cat([*parts, shapes.to(self.proj.weight.dtype)], dim=-1)
        return self.proj(self.drop(x))
