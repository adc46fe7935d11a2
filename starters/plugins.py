"""Commands other distributions add to `rollout` through the `durable_rollouts.commands` entry point group
— today the dev tools' `dev`, `cluster` and `demo` (devtools/localcluster/cli.py). A plugin module offers
`COMMANDS`, `add_parsers(subparsers)`, `run(args, load) -> exit code` and, if it knows one,
`default_kubeconfig()`. The product imports plugins only through their entry points, never by name, and
only when the command line is not one of its own: a product command (the worker's included) never loads
one. A plugin cannot replace a product command or another plugin's, and a broken one costs its own
commands only (one line on stderr), never the CLI."""

from __future__ import annotations

import argparse
import functools
import sys
from types import ModuleType

GROUP = "durable_rollouts.commands"
# Named here only to say where they come from when the dev tools are not installed.
DEV_TOOLS = {"dev": "the dev tools", "cluster": "the dev tools", "demo": "the dev tools"}


@functools.cache
def installed() -> tuple[ModuleType, ...]:
    from importlib.metadata import entry_points

    found = []
    for point in entry_points(group=GROUP):
        try:
            found.append(point.load())
        except Exception as error:  # noqa: BLE001 - a broken plugin costs its own commands, not the CLI
            print(f"rollout: the {point.value} commands are unavailable ({point.dist and point.dist.name}): "
                  f"{type(error).__name__}: {error}", file=sys.stderr)
    return tuple(found)


def add_parsers(sub) -> None:
    """Each plugin's commands that no product command or earlier plugin has taken."""
    for plugin in installed():
        declared = getattr(plugin, "COMMANDS", ())
        offered, taken = [c for c in declared if c not in sub.choices], [c for c in declared if c in sub.choices]
        if taken:
            print(f"rollout: {plugin.__name__} may not add {', '.join(taken)}: already a command", file=sys.stderr)
        if not offered:
            continue
        try:
            plugin.add_parsers(_Only(sub, offered, plugin.__name__))
        except Exception as error:  # noqa: BLE001 - a broken plugin costs its own commands, not the CLI
            print(f"rollout: the {plugin.__name__} commands are unavailable: {type(error).__name__}: {error}",
                  file=sys.stderr)


class _Only:
    """The subparsers as a plugin sees them: it may add the commands it was allowed; any other it adds goes
    to a parser nobody reads (said on stderr)."""

    def __init__(self, sub, allowed: list[str], plugin: str) -> None:
        self._sub, self._allowed, self._plugin = sub, set(allowed), plugin

    def add_parser(self, name: str, **kwargs):
        if name in self._allowed:
            return self._sub.add_parser(name, **kwargs)
        if name not in self._sub.choices:  # an undeclared one (a taken one was said above)
            print(f"rollout: {self._plugin} may not add {name}: not among its COMMANDS", file=sys.stderr)
        return argparse.ArgumentParser(prog=f"rollout {name}", add_help=False)


def owner(command: str) -> ModuleType | None:
    return next((plugin for plugin in installed() if command in getattr(plugin, "COMMANDS", ())), None)


def missing(argv: list[str]) -> str | None:
    """The one-line answer to a plugin's command when no installed plugin offers it."""
    command = argv[0] if argv else ""
    if command in DEV_TOOLS and owner(command) is None:
        return (f"`rollout {command}` comes with {DEV_TOOLS[command]}, which this installation lacks (or could "
                "not load): pip install -e ./devtools from the repository (scripts/setup does)")
    return None


def default_kubeconfig() -> str | None:
    for plugin in installed():
        offered = getattr(plugin, "default_kubeconfig", None)
        if offered is not None and (path := offered()):
            return path
    return None
