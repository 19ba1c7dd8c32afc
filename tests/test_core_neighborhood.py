"""Neighborhood2D: the O(N·k²) ``neighborhood`` backend and the FlexAttention mask_mod equal the dense formula."""

from __future__ import annotations

import pytest
import torch

from core import Full, Neighborhood2D, attend, choose_backend
from core.backends.flex import neighborhood_mask_mod
from core.errors import ConfigError
from core.scores import Scoring
from tests.test_core_backends import LargestTensor, assert_same_as_dense, make_qkv, padding, rel_err, score_modules

GRIDS = [(3, 5), (7, 7), (1, 4), (4, 1)]


def test_mask_is_the_clipped_square_window_plus_prefix_rows_and_columns():
    pattern = Neighborhood2D(1, grid=(3, 4), prefix=1)
    mask = pattern.mask(13)
    assert mask[0].all() and mask[:, 0].all()  # the class token sees and is seen by all
    patch = lambda r, c: 1 + r * 4 + c  # noqa: E731
    seen = {(r, c) for r in range(3) for c in range(4) if mask[patch(1, 1), patch(r, c)]}
    assert seen == {(r, c) for r in range(3) for c in range(3)}
    corner = {(r, c) for r in range(3) for c in range(4) if mask[patch(0, 3), patch(r, c)]}
    assert corner == {(0, 2), (0, 3), (1, 2), (1, 3)}  # clipped at the border, no wrap to the next row


def test_radius_as_large_as_the_grid_is_full():
    pattern = Neighborhood2D(4, grid=(3, 5), prefix=2)
    assert pattern.covers(17) and pattern.mask(17).all()
    assert not Neighborhood2D(1, grid=(3, 5)).covers(15)


@pytest.mark.parametrize("grid", GRIDS, ids=str)
@pytest.mark.parametrize("radius", [0, 1, 2, 9])
@pytest.mark.parametrize("prefix", [0, 1, 2])
@pytest.mark.parametrize("score", ["dot", "additive", "relative"])
def test_neighborhood_backend_equals_dense_in_outputs_and_gradients(grid, radius, prefix, score):
    pattern = Neighborhood2D(radius, grid, prefix)
    length = prefix + grid[0] * grid[1]
    q, k, v = make_qkv(2, 2, length, 8)
    additive, relative = score_modules(score, 2, 8)
    params = [p for m in (additive, relative) if m is not None for p in m.parameters()]
    assert_same_as_dense(q, k, v, "neighborhood", params, pattern=pattern, additive=additive, relative=relative)


@pytest.mark.parametrize("prefix", [0, 1])
def test_neighborhood_backend_equals_dense_with_padding_including_a_padded_class_token(prefix):
    pattern = Neighborhood2D(1, (5, 5), prefix)
    length = prefix + 25
    q, k, v = make_qkv(3, 2, length, 8)
    mask = padding(3, length)
    if prefix:
        mask[1, 0] = False  # the class token itself padded out
    assert_same_as_dense(q, k, v, "neighborhood", pattern=pattern, padding_mask=mask)


def test_neighborhood_backend_never_builds_an_N_by_N_tensor():
    pattern = Neighborhood2D(1, (48, 48), prefix=1)
    length = 1 + 48 * 48
    q, k, v = make_qkv(1, 2, length, 8)
    with LargestTensor() as probe:
        attend(q, k, v, pattern, backend="neighborhood").sum().backward()
    assert probe.largest < length * length / 8, f"largest tensor has {probe.largest} elements"


@pytest.mark.parametrize("grid", GRIDS, ids=str)
@pytest.mark.parametrize("radius,prefix", [(0, 0), (1, 1), (2, 2), (9, 1)])
def test_flex_mask_mod_equals_the_reference_mask(grid, radius, prefix):
    pattern = Neighborhood2D(radius, grid, prefix)
    length = prefix + grid[0] * grid[1]
    i, j = torch.meshgrid(torch.arange(length), torch.arange(length), indexing="ij")
    allowed = neighborhood_mask_mod(pattern, length)(0, 0, i, j)
    assert torch.equal(allowed, pattern.mask(length))


def test_flex_backend_forward_equals_dense_on_cpu():
    pattern = Neighborhood2D(1, (5, 6), prefix=1)
    q, k, v = make_qkv(2, 2, 31, 8)
    with torch.no_grad():
        out = attend(q, k, v, pattern, padding(2, 31), backend="flex")
        ref = attend(q, k, v, pattern, padding(2, 31), backend="dense")
    assert rel_err(out, ref) <= 1e-5


def test_auto_picks_neighborhood_on_cpu_flex_on_cuda_and_sdpa_when_the_window_covers_the_grid():
    dot, opts = Scoring(scale=0.125), {"dropout_p": 0.0, "return_weights": False}
    local, wide = Neighborhood2D(1, (16, 16), 1), Neighborhood2D(15, (16, 16), 1)
    assert choose_backend(local, 257, dot, cuda=False, **opts) == "neighborhood"
    assert choose_backend(local, 257, dot, cuda=True, **opts) == "flex"
    assert choose_backend(wide, 257, dot, cuda=False, **opts) == choose_backend(Full(), 257, dot, cuda=False, **opts)


@pytest.mark.parametrize("kwargs", [{"radius": -1}, {"radius": 1.5}, {"grid": (3,)}, {"grid": (0, 4)},
                                    {"prefix": -1}])
def test_bad_options_raise_one_config_error(kwargs):
    with pytest.raises(ConfigError):
        Neighborhood2D(**kwargs)


def test_for_grid_fills_in_and_refuses_a_different_grid():
    assert Neighborhood2D(1).for_grid(4, 4, 1).grid == (4, 4)
    with pytest.raises(ConfigError, match="model's grid"):
        Neighborhood2D(1, (3, 3)).for_grid(4, 4, 1)
    with pytest.raises(ValueError, match="expects 10 tokens"):
        Neighborhood2D(1, (3, 3), 1).mask(11)
