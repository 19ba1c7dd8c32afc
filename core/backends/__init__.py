"""One file per way of computing attention; ``core.attend`` chooses between them."""

from .banded import banded_attention
from .dense import dense_attention
from .edges import edge_attention
from .flex import flex_attention
from .neighborhood import neighborhood_attention
from .sdpa import sdpa_attention
from .sparse import sparse_attention

__all__ = ["banded_attention", "dense_attention", "edge_attention", "flex_attention", "neighborhood_attention",
           "sdpa_attention", "sparse_attention"]
