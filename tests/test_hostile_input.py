"""Hostile and malformed specs (hypothesis): whatever a spec file holds, `load_rollout` either returns a
valid Rollout or raises SpecError whose every problem starts with the field path it is about — never
another exception, never a hang. Anchor bombs, deep nesting and oversized files are refused by the
loader before validation."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.spec import MAX_SPEC_BYTES, SpecError, load_rollout, parse_rollout
from tests import figures
from tests.helpers import canary_document

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
SEGMENT = r'(\.[A-Za-z_][\w-]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\])'
PROBLEM = re.compile(rf"^(\(document\)|\(file\)|line \d+, column \d+|([A-Za-z_][\w-]*|\[\"[^\n]*?\"\]){SEGMENT}*): \S")

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=30))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                      max_leaves=12)


def _paths(node, prefix=()):
    """Every (path, container) in a document, for picking a place to damage."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


def _documents() -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in EXAMPLES] + [canary_document()]


def _set(document, path, value):
    node = document
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


COUNTS = {"generated": 0, "rejected": 0}


@pytest.fixture(scope="module", autouse=True)
def _figures():
    yield
    figures.write("specs", dict(COUNTS))


def _check(document, parse=parse_rollout) -> None:
    COUNTS["generated"] += 1
    try:
        parse(document)
    except SpecError as error:
        COUNTS["rejected"] += 1
        assert error.problems, "a rejection without a reason"
        for problem in error.problems:
            assert PROBLEM.match(problem), f"problem without a field path: {problem!r}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_damaged_spec_is_valid_or_rejected_naming_its_field(data):
    documents = _documents()
    document = copy.deepcopy(data.draw(st.sampled_from(documents)))
    paths = [p for p in _paths(document) if p]
    path = data.draw(st.sampled_from(paths))
    _set(document, path, data.draw(values))
    _check(document)


# Identifiers built from their parts (no filter: a filter that throws most draws away trips hypothesis'
# filter_too_much health check on some seeds).
_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
IDENTIFIERS = st.builds(str.__add__, st.sampled_from(_FIRST), st.text(alphabet=_FIRST + "0123456789", max_size=11))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), key=IDENTIFIERS)
def test_an_unknown_key_anywhere_is_named(data, key):
    document = copy.deepcopy(data.draw(st.sampled_from(_documents())))
    mappings = [p for p in _paths(document) if isinstance(_at(document, p), dict)]
    path = data.draw(st.sampled_from(mappings))
    target = _at(document, path)
    if key in target:
        return
    target[key] = "surprise"
    COUNTS["generated"] += 1
    with pytest.raises(SpecError) as rejected:
        parse_rollout(document)
    COUNTS["rejected"] += 1
    assert any(key in p for p in rejected.value.problems), rejected.value.problems


@pytest.mark.parametrize("value", [-86399999913601.0, -1e300, float("-inf"), 1e300, "P99999999D", "P400D"])
def test_durations_beyond_any_wait_are_named_not_overflowed(value):
    """Found by the property test above on a fresh run: a huge negative number overflowed timedelta."""
    document = canary_document(steps=[{"setWeight": 10}, {"pause": {"duration": value}}])
    COUNTS["generated"] += 1
    with pytest.raises(SpecError) as rejected:
        parse_rollout(document)
    COUNTS["rejected"] += 1
    assert any(p.startswith("spec.strategy.canary.steps[1].pause.duration") and "366 days" in p
               for p in rejected.value.problems), rejected.value.problems


def _at(document, path):
    node = document
    for part in path:
        node = node[part]
    return node


def _refused_quickly(tmp_path, text: str | bytes, words: str) -> None:
    spec = tmp_path / "hostile.yaml"
    spec.write_bytes(text if isinstance(text, bytes) else text.encode())
    started = time.monotonic()
    with pytest.raises(SpecError) as rejected:
        load_rollout(spec)
    assert time.monotonic() - started < 2, "the loader took too long"
    assert any(words in p for p in rejected.value.problems), rejected.value.problems


def test_an_anchor_bomb_is_refused(tmp_path):
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{n}: &a{n} [{', '.join(['*a' + str(n - 1)] * 10)}]" for n in range(1, 13)]
    _refused_quickly(tmp_path, "\n".join(lines) + "\nspec: *a12\n", "aliases")


def test_deep_nesting_is_refused(tmp_path):
    _refused_quickly(tmp_path, "spec: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than")


def test_an_oversized_file_is_refused(tmp_path):
    _refused_quickly(tmp_path, "# padding\n" * (MAX_SPEC_BYTES // 10 + 1), "more than")


def test_binary_garbage_is_refused(tmp_path):
    _refused_quickly(tmp_path, bytes(range(256)) * 4, "(file)")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "apiVersion: [", "\t\x00", "{}", "kind: Rollout\n---\nkind: Rollout\n"])
def test_cli_validate_of_garbage_is_one_line_and_exit_2(tmp_path, text):
    spec = tmp_path / "garbage.yaml"
    spec.write_text(text)
    result = subprocess.run([sys.executable, "-m", "starters.cli", "validate", "-f", str(spec)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("rollout: ")


def _pipeline_documents() -> list[dict]:
    from models.kinds import load_pipeline

    return [load_pipeline(str(p)).model_dump(mode="json", by_alias=True, exclude_none=True)
            for p in sorted((REPO / "examples" / "pipelines").glob("*.yaml")) if "kind: Pipeline" in p.read_text()]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_damaged_pipeline_is_valid_or_rejected_naming_its_field(data):
    """The same for a Pipeline, its inline Rollout templates included (their problems carry both paths)."""
    from models.pipeline import parse_pipeline

    document = copy.deepcopy(data.draw(st.sampled_from(_pipeline_documents())))
    path = data.draw(st.sampled_from([p for p in _paths(document) if p]))
    _set(document, path, data.draw(values))
    _check(document, parse_pipeline)
