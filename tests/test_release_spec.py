"""`kind: Release` documents: the examples validate; every problem is named by its field path; the
CLI says so in one line per problem (exit 2) and prints the JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from models.documents import SpecError
from models.release import CHANNELS, load_release, parse_release

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples" / "releases").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_release_example_validates(path):
    release = load_release(path)
    assert release.spec.phases and release.digest() == load_release(path).digest()


def problems(change) -> list[str]:
    document = yaml.safe_load((REPO / "examples" / "releases" / "desktop-stable.yaml").read_text())
    change(document["spec"])
    with pytest.raises(SpecError) as error:
        parse_release(document)
    return error.value.problems


def test_problems_name_their_field():
    assert problems(lambda s: s["phases"].append({"percent": 5})) == [
        "spec.phases[3]: exposure 5% is below the phase before (50%): each phase is a superset of the last"]
    assert problems(lambda s: s["phases"][0].update(basisPoints=100)) == [
        "spec.phases[0]: a phase gives exactly one of percent, basisPoints"]
    assert problems(lambda s: s["phases"][1].update(percent=120)) == [
        "spec.phases[1].percent: Input should be less than or equal to 100"]
    assert problems(lambda s: s["channel"].update(store={})) == [
        f"spec.channel: unknown release channel 'store' (known: {', '.join(CHANNELS)})"]
    assert problems(lambda s: s["channel"]["updater"].update(channel="canary")) == [
        "spec.channel.updater.channel: Input should be 'stable', 'beta', 'alpha' or 'nightly', got 'canary'"]
    assert problems(lambda s: s["artifact"].pop("file")) == [
        "spec.artifact.file: required for the updater channel"]
    assert problems(lambda s: s["artifact"].update(variant="on")) == [
        "spec.artifact.variant: not used by the updater channel"]
    assert problems(lambda s: s["phases"][0]["analysis"]["templates"][0].update(templateName="nope")) == [
        "spec.phases[0].analysis: no analysis template 'nope' in spec.analysis.templates"]
    assert problems(lambda s: s.update(onFailure="pray")) == [
        "spec.onFailure: Input should be 'halt' or 'rollback', got 'pray'"]


def test_the_cli_validates_a_release_and_prints_its_schema(tmp_path):
    bad = tmp_path / "bad.yaml"
    document = yaml.safe_load(EXAMPLES[0].read_text())
    document["spec"]["phases"] = []
    bad.write_text(yaml.safe_dump(document))
    run = lambda *args: subprocess.run([sys.executable, "-m", "starters.cli", *args], cwd=REPO,  # noqa: E731
                                       capture_output=True, text=True, timeout=60)
    done = run("validate", "-f", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip() == f"rollout: {bad}: spec.phases: List should have at least 1 item after validation, not 0"
    schema = json.loads(run("schema", "--kind", "Release").stdout)
    assert schema["title"] == "durable-rollouts Release" and "phases" in json.dumps(schema)


def test_a_flag_names_one_store_and_unleash_takes_whole_percents():
    document = yaml.safe_load((REPO / "examples" / "releases" / "checkout-flag.yaml").read_text())
    document["spec"]["channel"]["flag"]["s3"] = {"bucket": "flags", "key": "flags.json"}
    with pytest.raises(SpecError) as two:
        parse_release(document)
    assert two.value.problems == ["spec.channel.flag: a flag lives in exactly one store: give file, s3, configMap "
                                  "or unleash"]
    document["spec"]["channel"]["flag"] = {"unleash": {"url": "http://127.0.0.1:4242"}, "flag": "new-checkout"}
    document["spec"]["phases"][0] = {"basisPoints": 50}
    with pytest.raises(SpecError) as fine:
        parse_release(document)
    assert fine.value.problems == ["spec.phases[0]: Unleash rolls out whole percents, not 0.5%"]


def test_a_flag_release_of_its_own_baseline_is_refused_naming_the_field():
    document = yaml.safe_load((REPO / "examples" / "releases" / "checkout-flag.yaml").read_text())
    document["spec"]["artifact"] = {"variant": document["spec"]["channel"]["flag"].get("baseline", "off")}
    with pytest.raises(SpecError) as same:
        parse_release(document)
    assert len(same.value.problems) == 1 and "spec.channel.flag.baseline" in same.value.problems[0], same.value.problems
