"""Reading a spec file safely: PyYAML's safe loader with limits (size, nesting, aliases — anchor bombs)
and no duplicate keys (a `metadata:` given twice would otherwise change a rollout's identity silently:
the last value wins). Every refusal is a `SpecError` whose problems name the line or the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError, ValidationInfo

from models.specbase import describe_errors

Model = TypeVar("Model", bound=BaseModel)

MAX_SPEC_BYTES = 1 << 20  # a spec is a page or two; anything near this is not one
MAX_DEPTH = 64
MAX_ALIASES = 100
_MERGE = "tag:yaml.org,2002:merge"


class SpecError(Exception):
    """A spec that cannot be used; `problems` holds one line per problem, each naming its field path."""

    def __init__(self, source: str, problems: list[str]):
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class _Limit(Exception):
    pass


class _GuardedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with limits on nesting and on aliases, refusing duplicate keys."""

    depth = 0
    aliases = 0

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
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



def load_document(path: str | Path, kind: str) -> Any:
    """The one YAML document in `path` (not yet validated), or SpecError naming what is wrong."""
    source = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_SPEC_BYTES:
            raise SpecError(source, [f"(file): {size} bytes, more than the {MAX_SPEC_BYTES} a spec may have"])
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(source, [f"(file): cannot read: {error.strerror or error}"]) from None
    except UnicodeDecodeError as error:
        raise SpecError(source, [f"(file): not UTF-8 text (byte {error.start})"]) from None
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


def parse_as(model: type[Model], document: Any, source: str, kind: str) -> Model:
    """`document` validated as `model` (a Rollout, a Release), or SpecError with every problem's field path."""
    if not isinstance(document, dict):
        raise SpecError(source, [f"(document): a {kind} is a YAML mapping, got {type(document).__name__}"])
    try:
        return model.model_validate(document, context=DOCUMENT)
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
