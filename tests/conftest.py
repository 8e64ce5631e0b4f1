"""Shared test configuration.

Tests under tests/integration/ need the real local stack and are marked
`integration` automatically; everything else runs with no servers
(`make test-unit`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
UPSTREAM_RULES = SHARED / "upstream" / "falco-rules"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def upstream_rules_dir() -> Path:
    """Falco's upstream rule files, read from ../shared (never copied into the project)."""
    if not UPSTREAM_RULES.is_dir():
        pytest.skip(f"needs ../shared/upstream/falco-rules (looked in {UPSTREAM_RULES})")
    return UPSTREAM_RULES
