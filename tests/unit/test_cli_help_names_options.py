"""Every --option a command's help names is an option of that command: `alerts report --since`
said "How far back from --until", an option that does not exist (it is --until-ms)."""

from __future__ import annotations

import re

import typer

from pipeline.cli.main import app


def _commands(command, path=()):
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name, sub in subcommands.items():
            yield from _commands(sub, path + (name,))
    else:
        yield " ".join(path), command


def test_help_texts_name_only_options_the_command_has():
    wrong = []
    for name, command in _commands(typer.main.get_command(app)):
        options = {o for p in command.params for o in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))}
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        wrong += [f"{name}: {flag}" for text in texts for flag in re.findall(r"--[a-z][a-z-]*", text) if flag not in options]
    assert wrong == []
