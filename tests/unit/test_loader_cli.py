"""`peregrine rules validate`: ok and counts, or every error as file:line:col with the line and a caret."""

from __future__ import annotations

import textwrap

import loader_fields
import pytest

import pipeline.rules.loader as loader_module
from pipeline.cli.main import main


@pytest.fixture(autouse=True)
def small_registries(monkeypatch):
    """The CLI uses the default registries; these tests pin them to the small test ones."""
    monkeypatch.setattr(loader_module, "_default_registry_for", lambda: loader_fields.registry_for)


GOOD = """\
- list: shells
  items: [bash, sh]
- macro: spawned_process
  condition: evt.type = execve
- rule: Shell
  desc: a shell ran
  condition: spawned_process and proc.name in (shells)
  output: shell %proc.name
  priority: WARNING
"""

BAD_FILES = {
    "bad_yaml.yaml": ("- rule: R\n  desc: [oops\n  condition: evt.type = open\n", None),
    "unknown_macro.yaml": (
        "- rule: R1\n  desc: d\n  condition: evt.type = open and not trusted_proc\n  output: o\n  priority: info\n",
        (3, 38),
    ),
    "unknown_field.yaml": (
        "- rule: R2\n  desc: d\n  condition: evt.type = open and proc.nmae = cat\n  output: o\n  priority: info\n",
        (3, 34),
    ),
    "bad_priority.yaml": (
        "- rule: R3\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: LOUD\n",
        (5, 13),
    ),
    "bad_append.yaml": ("- rule: Nowhere\n  condition: and proc.name = x\n  override:\n    condition: append\n", (1, 3)),
    "folded_syntax.yaml": (
        "- rule: R4\n  desc: d\n  output: o\n  priority: info\n  condition: >\n"
        "    evt.type = open\n    and proc.name in (cat, less)\n    and fd.name = = x\n",
        (8, 19),
    ),
}
MESSAGES = {
    "bad_yaml.yaml": "invalid YAML",
    "unknown_macro.yaml": "undefined macro 'trusted_proc' used in rule 'R1'",
    "unknown_field.yaml": "unknown field 'proc.nmae' for source 'syscall'",
    "bad_priority.yaml": "invalid priority 'LOUD'",
    "bad_append.yaml": "rule 'Nowhere' uses 'append'",
    "folded_syntax.yaml": "unexpected '='",
}


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_good_file_prints_ok_and_counts(tmp_path, capsys) -> None:
    code = main(["rules", "validate", write(tmp_path, "good.yaml", GOOD)])
    out, err = capsys.readouterr()
    assert code == 0
    assert out.strip() == "ok: 1 rules, 1 macros, 1 lists in 1 file (0 warnings)"
    assert err == ""


def test_warnings_are_printed_but_do_not_fail(tmp_path, capsys) -> None:
    text = GOOD + "- list: spare\n  items: [x]\n"
    code = main(["rules", "validate", write(tmp_path, "good.yaml", text)])
    out, err = capsys.readouterr()
    assert code == 0
    assert "(1 warnings)" in out
    assert f"{tmp_path / 'good.yaml'}:10:3: warning: list 'spare' is not used" in err
    code = main(["rules", "validate", "--no-warnings", str(tmp_path / "good.yaml")])
    assert code == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_each_bad_file_reports_its_error_with_a_caret(tmp_path, capsys, name: str) -> None:
    text, position = BAD_FILES[name]
    path = write(tmp_path, name, text)
    code = main(["rules", "validate", path])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert MESSAGES[name] in err
    assert "Traceback" not in err
    lines = err.rstrip("\n").split("\n")
    assert lines[-1] == "1 error in 1 file"
    head, shown, caret = lines[0], lines[1], lines[2]
    if position is not None:
        line, col = position
        assert head.startswith(f"{path}:{line}:{col}: ")
        assert shown == "    " + text.split("\n")[line - 1]
        assert caret == " " * (4 + col - 1) + "^"
    else:
        assert head.startswith(f"{path}:3:")  # PyYAML's mark: where the flow sequence went wrong


def test_the_folded_block_error_is_on_the_yaml_line_of_the_bad_token(tmp_path, capsys) -> None:
    text, _ = BAD_FILES["folded_syntax.yaml"]
    path = write(tmp_path, "folded.yaml", text)
    assert main(["rules", "validate", path]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:8:19: unexpected '='")
    assert err.split("\n")[1] == "        and fd.name = = x"


def test_every_error_of_every_file_is_reported_in_one_run(tmp_path, capsys) -> None:
    directory = tmp_path / "rules"
    directory.mkdir()
    for name, (text, _) in BAD_FILES.items():
        write(directory, name, text)
    code = main(["rules", "validate", str(directory)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.rstrip().endswith(f"{len(BAD_FILES)} errors in {len(BAD_FILES)} files")
    for name, message in MESSAGES.items():
        assert message in err, name
        position = BAD_FILES[name][1]
        if position is not None:
            assert f"{directory / name}:{position[0]}:{position[1]}: " in err


def test_files_stack_in_the_order_given(tmp_path, capsys) -> None:
    base = write(tmp_path, "base.yaml", GOOD)
    local = write(tmp_path, "local.yaml", "- list: shells\n  items: [zsh]\n  override:\n    items: append\n")
    assert main(["rules", "validate", base, local]) == 0
    assert "in 2 files" in capsys.readouterr().out
    assert main(["rules", "validate", local, base]) == 1
    assert "list 'shells' uses 'append'" in capsys.readouterr().err


def test_an_empty_directory_is_an_error(tmp_path, capsys) -> None:
    assert main(["rules", "validate", str(tmp_path)]) == 2
    assert "no *.yaml rules files" in capsys.readouterr().err


def test_errors_are_listed_in_file_order_then_line_order(tmp_path, capsys) -> None:
    """Reading errors (a bad priority) and compile errors (a condition) come out by position."""
    text = (
        "- rule: A\n  desc: d\n  condition: proc.name = bash and (\n  output: o\n  priority: info\n"
        "- rule: B\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: loud\n"
    )
    first = write(tmp_path, "first.yaml", text)
    second = write(tmp_path, "second.yaml", BAD_FILES["unknown_field.yaml"][0])
    assert main(["rules", "validate", "--no-warnings", second, first]) == 1
    heads = [line for line in capsys.readouterr().err.splitlines() if line.startswith(str(tmp_path))]
    assert [head.split(": ")[0] for head in heads] == [f"{second}:3:34", f"{first}:3:36", f"{first}:10:13"]
