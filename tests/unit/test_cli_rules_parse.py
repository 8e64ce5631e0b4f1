"""`peregrine rules parse`: the AST as JSON, or line:col and a caret on a syntax error."""

from __future__ import annotations

import json

from pipeline.cli.main import main


def test_parse_prints_the_ast_as_json(capsys) -> None:
    code = main(["rules", "parse", "spawned_process and proc.name in (bash, sh) and not unknown.field exists"])
    out = capsys.readouterr().out
    assert code == 0
    tree = json.loads(out)
    assert tree["type"] == "and"
    assert [item["type"] for item in tree["items"]] == ["macro", "compare", "not"]
    assert tree["items"][1]["right"]["items"][1]["text"] == "sh"
    assert tree["items"][2]["operand"]["left"]["name"] == "unknown.field"


def test_parse_reports_a_syntax_error_with_a_caret(capsys) -> None:
    code = main(["rules", "parse", "proc.name = bash and (a or )"])
    err = capsys.readouterr().err
    assert code == 1
    assert "1:28" in err
    assert "unexpected ')'" in err
    lines = err.rstrip("\n").split("\n")
    assert lines[-2].strip() == "proc.name = bash and (a or )"
    assert lines[-1].index("^") - lines[-2].index("p") == 27
    assert "Traceback" not in err
