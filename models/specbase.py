"""What every part of the spec is built from: camelCase models that reject unknown keys, DNS names,
and one-of blocks that name the key they do not know."""

from __future__ import annotations

import json
import re
import reprlib
import types
import typing
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

DnsLabel = Annotated[
    str,
    StringConstraints(max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
]
# 253 (a DNS subdomain) less the longest suffix we add ("-warm-r" and a revision number).
DnsSubdomain = Annotated[
    str,
    StringConstraints(max_length=240, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
]


def numeric(annotation: Any) -> bool:
    """Whether a field holds only numbers (int or float, perhaps None): never a bool, never text."""
    if typing.get_origin(annotation) is Annotated:
        return numeric(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(kinds) and all(numeric(a) for a in kinds)
    return annotation in (int, float)


def not_a_number(value: Any, annotation: Any) -> str:
    """Why `value` is not what a numeric `annotation` holds — itself, or inside a list, tuple, set or
    mapping of numbers — ("" when it is, or when the field holds no numbers)."""
    if numeric(annotation):
        if isinstance(value, bool):
            return f"a number, not {value} (YAML reads yes, no, on and off as booleans)"
        return f"a number, not the text {value[:20]!r}" if isinstance(value, str) else ""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return not_a_number(value, args[0])
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        return not_a_number(value, kinds[0]) if len(kinds) == 1 else ""
    if origin in (list, set, frozenset, tuple) and isinstance(value, list | tuple | set) and args:
        for index, item in enumerate(value):
            problem = not_a_number(item, args[0] if origin is not tuple or args[-1] is Ellipsis
                                   else args[min(index, len(args) - 1)])
            if problem:
                return f"item {index}: {problem}"
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        for key, item in value.items():
            problem = not_a_number(item, args[1])
            if problem:
                return f"{str(key)[:40]}: {problem}"
    return ""


class SpecModel(BaseModel):
    """Spec documents use camelCase keys and reject keys they do not know; in a document, a number is
    written as a number (YAML's yes/no/on/off are booleans, and a quoted number is text: both refused,
    where pydantic would read True as 1 and "5" as 5)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if info.context and info.context.get("document"):
            field = cls.model_fields.get(info.field_name or "")
            problem = not_a_number(value, field.annotation) if field is not None else ""
            if problem:
                raise ValueError(problem)
        return value


class Message(BaseModel):
    """Workflow and activity messages: camelCase on the wire, snake_case in code."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class OneOf(SpecModel):
    """A block that holds exactly one of its keys: a strategy, a router, a delivery target, a step, a
    provider. `CHOICES` are the keys as written, `WHAT` names the block in errors; `chosen_key` says
    which one is given."""

    CHOICES: ClassVar[tuple[str, ...]] = ()
    WHAT: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        return exactly_one(data, cls.CHOICES, cls.WHAT)

    @property
    def chosen_key(self) -> str:
        for name, field in type(self).model_fields.items():
            if (field.alias or name) in self.CHOICES and getattr(self, name) is not None:
                return field.alias or name
        raise AssertionError(f"no {self.WHAT} given")  # the validator guarantees one

    @property
    def chosen_value(self) -> Any:
        return next(getattr(self, name) for name, field in type(self).model_fields.items()
                    if (field.alias or name) == self.chosen_key)


def exactly_one(data: Any, known: tuple[str, ...], what: str) -> Any:
    """For one-of blocks (`strategy`, `trafficRouting`): name the unknown key instead of a generic error."""
    if not isinstance(data, dict):
        return data
    unknown = [key for key in data if key not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r} (known: {', '.join(known)})")
    given = [key for key in known if data.get(key) is not None]
    if len(given) != 1:
        raise ValueError(f"exactly one {what} is needed (one of: {', '.join(known)}), got {len(given)}")
    return data


def _path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif str(part).startswith(("function-", "tagged-union")):
            continue
        elif re.fullmatch(r"[A-Za-z_][\w-]*", str(part)):
            text += ("." if text else "") + str(part)
        else:  # a key that is not a plain name (empty, spaces, quotes): quoted, so the path stays readable
            text += f"[{json.dumps(str(part), ensure_ascii=False)}]"
    return text or "(document)"


_SHORT = reprlib.Repr()  # Python 3.12 takes these as arguments; 3.11 as attributes
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 4, 4, 60, 60


def describe_errors(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        loc = tuple(item["loc"])
        if message.startswith("@"):  # a cross-field check naming the field below its model
            relative, _, message = message[1:].partition(": ")
            loc += tuple(int(p) if p.isdigit() else p for p in re.split(r"[.\[\]]+", relative) if p)
        if item["type"] == "missing":
            message = "required field is missing"
        elif item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "literal_error":
            message = f"{message}, got {_SHORT.repr(item['input'])}"  # never the whole (alias-expanded) input
        problems.append(cut(f"{_path(loc)}: {message}"))
    if len(problems) > MAX_PROBLEMS:
        problems[MAX_PROBLEMS:] = [f"(document): {len(problems) - MAX_PROBLEMS} more problems not shown"]
    return problems


MAX_PROBLEMS, MAX_LINE = 50, 300  # what a person reads; a value's repr can be any size


def cut(line: str) -> str:
    return line if len(line) <= MAX_LINE else f"{line[:MAX_LINE - 25]}… ({len(line)} characters)"
