"""Reading a spec file safely: a regular file read to a bounded size (not a device, a FIFO or a path with
a NUL byte), PyYAML's safe loader with limits (nesting; aliases, and what they expand to — anchor bombs)
and no duplicate keys (a `metadata:` given twice would otherwise change a rollout's identity silently:
the last value wins). Every refusal is a `SpecError` whose problems name the line or the field.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError, ValidationInfo

from models.specbase import MAX_PROBLEMS, cut, describe_errors

Model = TypeVar("Model", bound=BaseModel)

MAX_SPEC_BYTES = 256 << 10  # a spec is a page or two; anything near this is not one (and a pipeline's files share it)
MAX_DEPTH = 64
MAX_ALIASES = 100
MAX_NODES = 20_000  # values in a document as written, and once its aliases are expanded (100 aliases of
MAX_EXPANDED = MAX_NODES  # aliases can otherwise stand for billions); PyYAML reads ~50,000 a second
MAX_TEXT = 1 << 20  # characters of every string once aliases are expanded: a long string fanned out by aliases
MAX_NUMBER = 100  # characters of a number: Python's int() of a long one (or a sexagesimal 1:1:1...) is quadratic
_NUMBERS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_MERGE = "tag:yaml.org,2002:merge"


class SpecError(Exception):
    """A spec that cannot be used; `problems` holds one line per problem, each naming its field path."""

    def __init__(self, source: str, problems: list[str]):
        problems = [cut(p) for p in problems[:MAX_PROBLEMS]] + (
            [f"(document): {len(problems) - MAX_PROBLEMS} more problems not shown"] if len(problems) > MAX_PROBLEMS else [])
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class _Limit(Exception):
    pass


class _GuardedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with limits on nesting and on aliases, refusing duplicate keys."""

    depth = 0
    aliases = 0
    nodes = 0

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Limit(f"more than {MAX_NODES} values: a spec is a page or two")
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _Limit(f"more than {MAX_ALIASES} aliases (*anchor references): refused as an anchor bomb")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Limit(f"nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def compose_document(self):  # type: ignore[no-untyped-def]
        node = super().compose_document()
        try:
            _expanded(node, {}, set())
        except RecursionError:
            raise _Limit(f"nested deeper than {MAX_DEPTH} levels once its aliases are expanded") from None
        return node

    def construct_object(self, node, deep=False):  # type: ignore[no-untyped-def]
        """PyYAML's constructors raise plain exceptions for values the grammar accepts (a date 2024-02-30,
        an int of 5000 digits, `0x_`, a time-zone offset of 25 h): each becomes a problem naming its line."""
        if isinstance(node, yaml.ScalarNode) and node.tag in _NUMBERS and len(node.value) > MAX_NUMBER:
            raise yaml.constructor.ConstructorError(None, None, f"a number of more than {MAX_NUMBER} characters",
                                                    node.start_mark)
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except Exception as error:  # noqa: BLE001 - KeyError (!!bool maybe), IndexError (!!int ''), ValueError...
            raise yaml.constructor.ConstructorError(None, None, f"{node.value!s:.40} is not a valid {node.tag.rsplit(':', 1)[-1]} "
                                                    f"({type(error).__name__})", node.start_mark) from None

    def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
        """A key written twice in one mapping is refused, naming both lines. Keys that `<<:` merges in
        may be overridden, as YAML says."""
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in first:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {first[key]}): a key may appear once "
                                    "in a mapping", key_node.start_mark)
                first[key] = line
        return super().construct_mapping(node, deep=deep)



# YAML 1.1 (PyYAML) reads 1e-2 as text, YAML 1.2 as a number: a document's exponent numbers are numbers
_GuardedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def _expanded(node: yaml.Node, sizes: dict[int, tuple[int, int, int]], open_: set[int]) -> tuple[int, int, int]:
    """How many nodes `node` stands for with every alias expanded (each shared node counted once per use),
    and how deep; refused past MAX_EXPANDED or MAX_DEPTH (anchors inside anchors nest deeper than the
    text does); an alias inside the node it names is refused too."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_:
        raise _Limit("an alias inside the node it refers to (a recursive structure)")
    open_.add(id(node))
    children = ([part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode)
                else node.value if isinstance(node, yaml.SequenceNode) else [])
    total, depth, text = 1, 0, len(node.value) if isinstance(node, yaml.ScalarNode) else 0
    for child in children:
        size, deep, chars = _expanded(child, sizes, open_)
        total, depth, text = total + size, max(depth, deep), text + chars
        if total > MAX_EXPANDED:
            raise _Limit(f"more than {MAX_EXPANDED} values once its aliases are expanded: refused as an anchor bomb")
        if text > MAX_TEXT:
            raise _Limit(f"more than {MAX_TEXT} characters of text once its aliases are expanded: refused as an "
                         "anchor bomb")
    if depth + 1 > MAX_DEPTH:
        raise _Limit(f"nested deeper than {MAX_DEPTH} levels once its aliases are expanded")
    open_.discard(id(node))
    sizes[id(node)] = (total, depth + 1, text)
    return total, depth + 1, text


def read_spec_text(path: str | Path, limit: int = MAX_SPEC_BYTES) -> str:
    """A spec file's text: a regular file, at most MAX_SPEC_BYTES, UTF-8 — or SpecError. Opened without
    blocking (a FIFO would wait for a writer) and read to the bound (a device reports size 0: /dev/zero)."""
    source = str(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except ValueError:
        raise SpecError(source, ["(file): the path has a NUL byte"]) from None
    except OSError as error:
        raise SpecError(source, [f"(file): cannot read: {error.strerror or error}"]) from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):  # before fdopen, which refuses a directory itself
        os.close(descriptor)
        raise SpecError(source, ["(file): not a regular file"])
    with os.fdopen(descriptor, "rb") as file:
        try:
            data = file.read(limit + 1)
        except OSError as error:
            raise SpecError(source, [f"(file): cannot read: {error.strerror or error}"]) from None
    if len(data) > limit:
        raise SpecError(source, [f"(file): more than the {limit} bytes a spec may have"
                                 + ("" if limit == MAX_SPEC_BYTES else " (what its pipeline's files have left)")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(source, [f"(file): not UTF-8 text (byte {error.start})"]) from None


def load_document(path: str | Path, kind: str, limit: int = MAX_SPEC_BYTES) -> Any:
    """The one YAML document in `path` (not yet validated), or SpecError naming what is wrong. `limit`:
    the bytes it may have (a pipeline's files share one spec's)."""
    return parse_document(read_spec_text(path, limit), str(path), kind)


def parse_document(text: str, source: str, kind: str) -> Any:
    """The one YAML document in `text` (read from `source`), not yet validated, or SpecError."""
    try:
        documents = [doc for doc in yaml.load_all(text, Loader=_GuardedLoader) if doc is not None]
    except _Limit as error:
        raise SpecError(source, [f"(file): {error}"]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"
        problem = getattr(error, "problem", None) or error
        if str(problem).startswith("duplicate key"):
            raise SpecError(source, [f"{where}: {problem}"]) from None
        raise SpecError(source, [f"{where}: not valid YAML: {problem}"]) from None
    if len(documents) != 1:
        raise SpecError(source, [f"(file): expected one {kind} document, found {len(documents)}"])
    return documents[0]


def parse_as(model: type[Model], document: Any, source: str, kind: str, as_document: bool = True) -> Model:
    """`document` validated as `model` (a Rollout, a Release), or SpecError with every problem's field path.
    `as_document=False`: a part of a workflow's input read back (a pipeline stage's template), under the
    rules it was started with."""
    if not isinstance(document, dict):
        raise SpecError(source, [f"(document): a {kind} is a YAML mapping, got {type(document).__name__}"])
    try:
        return model.model_validate(document, context=DOCUMENT if as_document else None)
    except ValidationError as error:
        raise SpecError(source, describe_errors(error)) from None


DOCUMENT = {"document": True}  # validation context: a document read now, not an input read back from a history


def from_document(info: ValidationInfo) -> bool:
    """Whether a model is validated from a document (`parse_as`), where newer rules apply; a workflow's input
    read back from its history keeps the rules it was started under (a rule added later must not make a
    running rollout's history unreadable)."""
    return bool(info.context and info.context.get("document"))


def schema_of(model: type[BaseModel], name: str, title: str) -> dict[str, Any]:
    """The JSON Schema editors read for `model` (camelCase keys, as written)."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    schema["$id"] = f"https://rollouts.durable.dev/schemas/v1alpha1/{name}.json"
    schema["title"] = title
    return schema
