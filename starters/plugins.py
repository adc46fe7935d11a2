"""Commands other distributions add to `rollout` through the `durable_rollouts.commands` entry point group
— today the dev tools' `dev`, `cluster` and `demo` (devtools/localcluster/cli.py). A plugin module offers
`COMMANDS`, `add_parsers(subparsers)`, `run(args, load) -> exit code` and, if it knows one,
`default_kubeconfig()`. The product imports plugins only through their entry points, never by name."""

from __future__ import annotations

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


def owner(command: str) -> ModuleType | None:
    return next((plugin for plugin in installed() if command in plugin.COMMANDS), None)


def missing(argv: list[str]) -> str | None:
    """The one-line answer to a plugin's command when no installed plugin offers it."""
    command = argv[0] if argv else ""
    if command in DEV_TOOLS and owner(command) is None:
        return (f"`rollout {command}` comes with {DEV_TOOLS[command]}, which this installation lacks: "
                "pip install -e ./devtools from the repository (scripts/setup does)")
    return None


def default_kubeconfig() -> str | None:
    for plugin in installed():
        offered = getattr(plugin, "default_kubeconfig", None)
        if offered is not None and (path := offered()):
            return path
    return None
