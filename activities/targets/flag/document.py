"""A flagd flag-definition document edited as text: one value (a flag's `targeting`, or a new flag) is
replaced where it stands, and every other byte — the other flags, their order, spacing, non-ASCII text, numbers as written — is
kept, so a GitOps diff of a write shows the released flag and nothing else.

The document is read with `json.loads` first (a malformed one never gets here); this module only finds
where the top-level `flags` object and its members start and end (JSON's grammar, RFC 8259, with the
standard library's own string and value scanners). A repeated key counts as `json.loads` counts it: the
last one wins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

_DECODER = json.JSONDecoder()
_SPACE = " \t\n\r"


@dataclass
class _Member:
    key: str
    key_at: int  # the key's opening quote
    value_at: int
    value_end: int


@dataclass
class _Object:
    start: int  # its `{`
    end: int  # just past its `}`
    members: list[_Member] = field(default_factory=list)


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _SPACE:
        at += 1
    return at


def _object(text: str, at: int) -> _Object:
    """The object starting at `at` (a `{`), with where each member's key and value are."""
    found = _Object(start=at, end=at)
    at = _skip(text, at + 1)
    if text[at] == "}":
        found.end = at + 1
        return found
    while True:
        key_at = at
        key, at = json.decoder.scanstring(text, at + 1)
        at = _skip(text, _skip(text, at) + 1)  # past the `:`
        _, end = _DECODER.raw_decode(text, at)
        found.members.append(_Member(key, key_at, at, end))
        at = _skip(text, end)
        if text[at] == "}":
            found.end = at + 1
            return found
        at = _skip(text, at + 1)  # past the `,`


def _indent(text: str, at: int) -> str:
    line = text.rfind("\n", 0, at) + 1
    return text[line:at] if text[line:at].strip(_SPACE) == "" else ""


def _render(value: object, indent: str) -> str:
    """`value` as JSON, two spaces a level from `indent`; a list of scalars (a fractional entry) on one line."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = (f"{inner}{json.dumps(k, ensure_ascii=False)}: {_render(v, inner)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(f"{inner}{_render(v, inner)}" for v in value) + f"\n{indent}]"
    return json.dumps(value, ensure_ascii=False)


def _set(text: str, inside: _Object, key: str, value: object) -> str:
    """`text` with member `key` of the object `inside` set to `value` (replaced where it is, or added
    after the last member at its indentation)."""
    mine = next((m for m in reversed(inside.members) if m.key == key), None)
    if mine is not None:
        return text[:mine.value_at] + _render(value, _indent(text, mine.key_at)) + text[mine.value_end:]
    if inside.members:
        last = inside.members[-1]
        indent = _indent(text, last.key_at)
        entry = f",\n{indent}{json.dumps(key, ensure_ascii=False)}: {_render(value, indent)}"
        return text[:last.value_end] + entry + text[last.value_end:]
    outer = _indent(text, inside.start)
    entry = f"{{\n{outer}  {json.dumps(key, ensure_ascii=False)}: {_render(value, outer + '  ')}\n{outer}}}"
    return text[:inside.start] + entry + text[inside.end:]


def with_value(text: str, keys: list[str], value: object) -> str:
    """`text` (a JSON object) with the member at `keys` (e.g. flags, a flag, targeting) set to `value`,
    objects missing on the way added; every other byte kept."""
    inside = _object(text, _skip(text, 0))
    for depth, key in enumerate(keys[:-1]):
        member = next((m for m in reversed(inside.members) if m.key == key), None)
        if member is None:
            for outer in reversed(keys[depth + 1:]):
                value = {outer: value}
            return _set(text, inside, key, value)
        inside = _object(text, member.value_at)
    return _set(text, inside, keys[-1], value)


def new_document(schema: str, name: str, flag: dict) -> str:
    return json.dumps({"$schema": schema, "flags": {name: flag}}, indent=2, ensure_ascii=False) + "\n"
