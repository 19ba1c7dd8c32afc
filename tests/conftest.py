"""Shared pytest setup: `real` tests (long accuracy runs on ../shared/data) run only with --run-real, `faults_slow`
tests (tests/test_faults.py through a real attnlab process) only with --run-faults-slow; `make test` and CI skip
both."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-real", action="store_true", default=False,
        help="run tests marked `real` (long accuracy runs on ../shared/data)",
    )
    parser.addoption(
        "--run-faults-slow", action="store_true", default=False,
        help="run tests marked `faults_slow` (fault injection through a real attnlab process)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_faults = pytest.mark.skip(reason="fault injection through an attnlab process: pass --run-faults-slow")
    for item in items:
        if "faults_slow" in item.keywords and not config.getoption("--run-faults-slow"):
            item.add_marker(skip_faults)
    if config.getoption("--run-real"):
        return
    skip = pytest.mark.skip(reason="long accuracy run: pass --run-real (make check-real)")
    for item in items:
        if "real" in item.keywords:
            item.add_marker(skip)
