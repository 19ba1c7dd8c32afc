"""Shared pytest setup: `real` tests (long accuracy runs on ../shared/data) run only with --run-real."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-real", action="store_true", default=False,
        help="run tests marked `real` (long accuracy runs on ../shared/data)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-real"):
        return
    skip = pytest.mark.skip(reason="long accuracy run: pass --run-real (make check-real)")
    for item in items:
        if "real" in item.keywords:
            item.add_marker(skip)
