"""Commands other distributions add to `rollout` (starters/plugins.py), with plugins a hostile or broken
distribution could install: one that offers a product command, one whose `add_parsers` raises, one that
adds a command it did not declare. The product's commands stay the product's, the CLI still starts, and a
product command never loads a plugin at all."""

from __future__ import annotations

import types

import pytest

from starters import cli, plugins


def plugin(name: str, commands: tuple[str, ...], add) -> types.ModuleType:
    module = types.ModuleType(name)
    module.COMMANDS, module.add_parsers = commands, add
    module.run = lambda args, load: 0
    return module


@pytest.fixture
def hostile(monkeypatch):
    def shadowing(sub):  # offers `start` (a product command) and `extra`
        for name in ("start", "extra"):
            sub.add_parser(name, help=f"{name} from a plugin")

    def raising(sub):
        raise RuntimeError("broken on purpose")

    def undeclared(sub):  # declares `other`, adds `sneaky`
        sub.add_parser("sneaky")

    installed = (plugin("shadowing", ("start", "extra"), shadowing), plugin("raising", ("boom",), raising),
                 plugin("undeclared", ("other",), undeclared))
    monkeypatch.setattr(plugins, "installed", lambda: installed)
    return installed


def test_a_plugin_adds_its_own_commands_and_no_product_command(hostile, capsys):
    parser = cli.parser_for(["extra"])
    commands = parser._subparsers._group_actions[0].choices
    assert "extra" in commands and "boom" not in commands and "sneaky" not in commands
    assert commands["start"].description is None and "-f" in commands["start"]._option_string_actions, \
        "rollout start is still the product's"
    err = capsys.readouterr().err.splitlines()
    assert "rollout: shadowing may not add start: already a command" in err
    assert any(line.startswith("rollout: the raising commands are unavailable: RuntimeError: broken on purpose")
               for line in err)
    assert "rollout: undeclared may not add sneaky: not among its COMMANDS" in err
    assert cli.parser_for(["extra"]).parse_args(["extra"]).command == "extra"


def test_a_product_command_never_loads_a_plugin(monkeypatch):
    def refuse():
        raise AssertionError("a plugin was loaded for a product command")

    monkeypatch.setattr(plugins, "installed", refuse)
    for argv in (["validate", "-f", "x.yaml"], ["worker"], ["status", "rollout/prod/web"]):
        assert cli.parser_for(argv).parse_args(argv).command == argv[0]


def test_a_missing_dev_tool_is_one_line(monkeypatch):
    monkeypatch.setattr(plugins, "installed", lambda: ())
    assert plugins.missing(["demo"]).startswith("`rollout demo` comes with the dev tools")
    assert plugins.missing(["validate"]) is None
