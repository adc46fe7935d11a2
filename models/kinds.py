"""Which parser reads a document: its `kind` (Rollout, Release, Pipeline). Every command that reads a
document loads it here, with the kinds it takes; a document of another kind is one line naming the
command that takes it, never the other model's field errors."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from models.documents import MAX_SPEC_BYTES, SpecError, load_document, parse_document, read_spec_text
from models.pipeline import MAX_STAGES, Pipeline, parse_pipeline
from models.starter import starter_identity

COMMANDS = {"Rollout": "rollout start -f", "Release": "rollout release publish -f",
            "Pipeline": "rollout pipeline start -f"}


def load_pipeline(path: str) -> Pipeline:
    """Read a Pipeline and every `rolloutFile` it names (relative to the pipeline's file), inlined."""
    return pipeline_from(load_document(path, "Pipeline"), path)


def pipeline_from(document: Any, path: str) -> Pipeline:
    """A loaded Pipeline document with its `rolloutFile`s read, validated. The files share one spec file's
    size (MAX_SPEC_BYTES, less the pipeline's own), counted in the bytes actually read (a file under /proc
    says it has none) for every stage that uses one (each is validated on its own), a file shared by stages
    read once; they are read only for a document whose stages could be valid: a list of at most MAX_STAGES,
    each giving its template one way (with both, or neither once read, the model names the conflict)."""
    spec = document.get("spec") if isinstance(document, dict) else None
    stages = spec.get("stages") if isinstance(spec, dict) else None
    if isinstance(stages, list) and len(stages) <= MAX_STAGES:
        base, left = Path(path).parent, MAX_SPEC_BYTES - _size(path)
        read: dict[str, tuple[Any, int]] = {}  # each distinct file (as resolved) -> its document, its bytes
        for index, stage in enumerate(stages):
            if not isinstance(stage, dict):
                continue
            key = next((k for k in ("rolloutFile", "rollout_file") if k in stage), None)
            if key is None or not isinstance(stage[key], str) or stage.get("rollout") is not None:
                continue
            file = base / stage[key]
            try:
                known = _resolved(file)
                if known not in read:
                    text = read_spec_text(file, max(left, 0))
                    read[known] = parse_document(text, str(file), "Rollout"), len(text.encode())
                elif read[known][1] > left:
                    raise SpecError(str(file), [f"(file): more than the {max(left, 0)} bytes a spec may have (what its "
                                                "pipeline's files have left)"])
            except SpecError as error:
                raise SpecError(path, [f"spec.stages[{index}].rolloutFile: {p}" for p in error.problems]) from None
            left -= read[known][1]
            stage["rollout"] = copy.deepcopy(read[known][0])
            stage.pop(key)
    return parse_pipeline(document, path)


def _resolved(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, ValueError):  # a NUL byte, a loop: read_spec_text names it
        return str(path)


def _size(path: str | Path) -> int:
    try:
        return os.stat(path).st_size
    except (OSError, ValueError):
        return 0


def _parse(kind: str, document: Any, path: str) -> Any:
    if kind == "Release":
        from models.release import parse_release

        return parse_release(document, path)
    if kind == "Pipeline":
        return pipeline_from(document, path)
    from models.spec import parse_rollout

    return parse_rollout(document, path)


def load_kind(path: str | Path, takes: tuple[str, ...], command: str) -> Any:
    """The document at `path` validated by its kind's parser, when `command` takes that kind; SpecError
    otherwise. A document without `kind` is read as the command's first kind (whose model then says
    the field is missing)."""
    source = str(path)
    document = load_document(path, " or ".join(takes))
    kind = document.get("kind", takes[0]) if isinstance(document, dict) else takes[0]
    if not isinstance(kind, str) or kind not in COMMANDS:
        shown = repr(kind) if isinstance(kind, str | int | float | bool) else f"a {type(kind).__name__}"
        raise SpecError(source, [f"kind: {shown[:60]} is not a kind durable-rollouts reads "
                                 f"({', '.join(COMMANDS)})"])
    if kind not in takes:
        raise SpecError(source, [f"kind: `{command}` takes a {' or a '.join(takes)}, this is a {kind} "
                                 f"(`{COMMANDS[kind]} {source}`)"])
    parsed = _parse(kind, document, source)
    try:
        starter_identity(parsed)  # approvals that forbid self-approval under identity agree on it
    except ValueError as error:
        raise SpecError(source, [str(error)]) from None
    return parsed
