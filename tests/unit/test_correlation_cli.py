"""`peregrine rules validate` checks correlation items too: counts when ok, file:line:col when not."""

from __future__ import annotations

import correlation_fields
import pytest
from correlation_helpers import RULES

import pipeline.correlation.parse as parse_module
import pipeline.rules.loader as loader_module
from pipeline.cli.main import main


@pytest.fixture(autouse=True)
def test_registries(monkeypatch):
    """The CLI uses the default registries; pin them to the correlation tests' ones."""
    monkeypatch.setattr(loader_module, "_default_registry_for", lambda: correlation_fields.registry_for)
    monkeypatch.setattr(parse_module, "_default_registry_for", lambda: correlation_fields.registry_for)


def test_validate_counts_correlations_and_their_macros_are_not_unused(capsys):
    assert main(["rules", "validate", str(RULES)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "ok: 0 rules, 5 macros, 6 lists, 5 correlations in 1 file (0 warnings)"
    assert err == ""


def test_validate_reports_a_bad_step_at_its_position(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(RULES.read_text().replace("condition: pg_spawned_process and proc.name in (pg_shells)", "rule: Not a rule"))
    assert main(["rules", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:61:13: unknown rule 'Not a rule'" in err
    assert "1 error in correlations" in err
