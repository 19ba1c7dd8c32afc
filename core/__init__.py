"""attnlab's self-attention core: patterns say which keys each query sees, backends compute them.

    from core import MultiHeadSelfAttention, Full, Causal, Truncated, EdgeMask, attend
    from core import Encoder, EncoderConfig, AttentionConfig, KernelConfig  # options as typed groups
"""

from .attend import BACKENDS, attend, choose_backend
from .attention import MultiHeadSelfAttention
from .config import KERNELS, AttentionConfig, EncoderConfig, KernelConfig
from .encoder import DropPath, Encoder, EncoderBlock, Mlp
from .linear_attention import LinearAttention, RecurrentState, elu_feature_map, linear_attention, linear_attention_step
from .linformer import LinformerAttention
from .patterns import Causal, EdgeMask, Full, Neighborhood2D, Pattern, Truncated
from .performer import PerformerAttention, orthogonal_gaussian, positive_features
from .pooling import AttentionPooling, masked_mean
from .positional import LearnedPositions, RelativePositionBias, Rotary, sinusoidal_2d, sinusoidal_positions
from .rollout import attention_rollout
from .scores import AdditiveScore, masked_softmax
from .sparse_patterns import BigBird, Global, Longformer, SparseParts, SparsePattern, Strided
from .streaming import StreamingEncoder

__all__ = [
    "BACKENDS", "AdditiveScore", "AttentionPooling", "Causal", "DropPath", "EdgeMask", "Encoder", "EncoderBlock",
    "Full", "LearnedPositions", "Mlp", "MultiHeadSelfAttention", "Neighborhood2D", "Pattern", "RelativePositionBias",
    "Rotary",
    "StreamingEncoder", "Truncated", "attend", "attention_rollout", "choose_backend", "masked_mean", "masked_softmax",
    "sinusoidal_2d", "sinusoidal_positions",
    # options as typed groups (core.config)
    "AttentionConfig", "EncoderConfig", "KernelConfig",
    # efficient attention family
    "KERNELS", "BigBird", "Global", "LinearAttention", "LinformerAttention", "Longformer", "PerformerAttention",
    "RecurrentState", "SparseParts", "SparsePattern", "Strided", "elu_feature_map", "linear_attention",
    "linear_attention_step", "orthogonal_gaussian", "positive_features",
]
