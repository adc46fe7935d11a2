"""Every document a command reads is parsed by its `kind`, and no document — however built — gives a
traceback, a MemoryError or a long wait: a command given another kind says in one line which command
takes it (exit 2); `rollout validate` takes all three; files a pipeline names are read bounded (not a
device, a FIFO or a path with a NUL byte) and only when its stages could be valid; aliases are capped by
what they expand to; values accepted before and wrong (a phase of 0 %, finer than a basis point,
`percent: yes`, two phases at one exposure, `..` in a prefix, `maxFailures` covering every target, two
targets with one workflow ID) are refused naming the field — while inputs read back from a running
workflow's history still read."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from models.documents import SpecError
from models.kinds import load_kind
from models.release import ReleaseInput
from tests.helpers import canary_document
from tests.pipeline_helpers import pipeline_document, stage

REPO = Path(__file__).resolve().parent.parent
UPDATER = {"repository": {"bucket": "releases", "prefix": "desktop-app"}, "channel": "stable"}


def release_document(phases: list[dict], prefix: str = "desktop-app") -> dict:
    return {"apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Release",
            "metadata": {"name": "app", "environment": "test"},
            "spec": {"artifact": {"file": "app.tar.gz", "version": "1.2.0", "platform": "linux-x86_64"},
                     "channel": {"updater": {**UPDATER, "repository": {"bucket": "releases", "prefix": prefix}}},
                     "phases": phases}}


def write(path: Path, document) -> Path:
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False))
    return path


def rollout(*args: str, cwd: Path) -> tuple[int, str]:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "starters.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert time.monotonic() - began < 30, f"rollout {' '.join(args)} took {time.monotonic() - began:.0f}s"
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, (done.stdout + done.stderr).strip()


@pytest.fixture
def documents(tmp_path) -> dict[str, Path]:
    canary = canary_document(name="web")
    return {"Rollout": write(tmp_path / "rollout.yaml", canary),
            "Release": write(tmp_path / "release.yaml", release_document([{"percent": 1}, {"percent": 100}])),
            "Pipeline": write(tmp_path / "pipeline.yaml", pipeline_document("web", "registry.local/web:2.0.0", [
                stage("dev", "shop", ["dev-1"])]))}


def test_each_command_takes_its_kinds_and_names_the_one_for_another(documents, tmp_path):
    for kind, path in documents.items():
        code, out = rollout("validate", "-f", path.name, cwd=tmp_path)
        assert code == 0 and out.startswith(f"{path.name}: valid"), (kind, out)
    takes = {("start", "-f"): "Rollout", ("analyze", "--template", "x", "-f"): "Rollout",
             ("demo", "-f"): "Rollout", ("release", "publish", "-f"): "Release",
             ("pipeline", "start", "-f"): "Pipeline", ("pipeline", "validate", "-f"): "Pipeline"}
    hint = {"Rollout": "rollout start -f", "Release": "rollout release publish -f",
            "Pipeline": "rollout pipeline start -f"}
    for command, kind in takes.items():
        for other, path in documents.items():
            if other == kind:
                continue
            code, out = rollout(*command, path.name, cwd=tmp_path)
            assert code == 2 and len(out.splitlines()) == 1, (command, other, out)
            assert out.endswith(f"this is a {other} (`{hint[other]} {path.name}`)"), out
    write(tmp_path / "odd.yaml", {"apiVersion": "rollouts.durable.dev/v1alpha1", "kind": ["Rollout"]})
    code, out = rollout("validate", "-f", "odd.yaml", cwd=tmp_path)
    assert (code, out) == (2, "rollout: odd.yaml: kind: a list is not a kind durable-rollouts reads "
                              "(Rollout, Release, Pipeline)")


def test_no_pipeline_document_gives_a_traceback_or_reads_what_it_should_not(tmp_path):
    base = pipeline_document("web", "registry.local/web:2.0.0", [stage("dev", "shop", ["dev-1"])])
    write(tmp_path / "template.yaml", base["spec"]["stages"][0]["rollout"])
    os.mkfifo(tmp_path / "fifo.yaml")  # a read of it would wait for a writer forever

    def with_stages(stages) -> dict:
        document = copy.deepcopy(base)
        document["spec"]["stages"] = stages
        return document

    def from_file(file: str, **fields) -> dict:
        return {"name": "dev", "rolloutFile": file, "waves": [{"targets": [{"context": "dev-1"}]}], **fields}

    cases = {
        "spec not a mapping": ({**base, "spec": [1, 2]},
                               "spec: Input should be a valid dictionary or instance of PipelineSpecBody"),
        "stages not a list": (with_stages({"a": 1}), "spec.stages: Input should be a valid list"),
        "a NUL byte in rolloutFile": (with_stages([from_file("template\0.yaml")]),
                                      "spec.stages[0].rolloutFile: (file): the path has a NUL byte"),
        "rolloutFile: /dev/zero": (with_stages([from_file("/dev/zero")]),
                                   "spec.stages[0].rolloutFile: (file): not a regular file"),
        "rolloutFile: a FIFO": (with_stages([from_file("fifo.yaml")]),
                                "spec.stages[0].rolloutFile: (file): not a regular file"),
        "inline and by file": (with_stages([from_file("fifo.yaml", rollout=base["spec"]["stages"][0]["rollout"])]),
                               "spec.stages[0].rollout: give the template inline (rollout) or by file "
                               "(rolloutFile), one of them"),
        "1000 stages, each a FIFO": (with_stages([from_file("fifo.yaml", name=f"s{i}") for i in range(1000)]),
                                     "spec.stages: List should have at most 20 items after validation, not 1000"),
    }
    for what, (document, expected) in cases.items():
        write(tmp_path / "p.yaml", document)
        code, out = rollout("pipeline", "validate", "-f", "p.yaml", cwd=tmp_path)
        assert (code, out) == (2, f"rollout: p.yaml: {expected}"), what
    for spelled in ({"rollout": None, "rolloutFile": "template.yaml"}, {"rollout_file": "template.yaml"}):
        stage_ = {"name": "dev", **spelled, "waves": [{"targets": [{"context": "dev-1"}]}]}
        write(tmp_path / "p.yaml", with_stages([stage_]))  # read, never left for the workflow to find unread
        assert load_kind(tmp_path / "p.yaml", ("Pipeline",), "rollout pipeline start -f").spec.stages[0].rollout
    from models.pipeline import parse_pipeline
    with pytest.raises(SpecError) as unread:
        parse_pipeline(with_stages([from_file("template.yaml")]))
    assert unread.value.problems[0].startswith("spec.stages[0].rolloutFile: not read")


def test_pipeline_files_share_one_budget_counted_per_use(tmp_path):
    """The templates a pipeline's stages read share one spec's bytes, counted as read (a file under /proc says
    it has none) for every stage that uses one (each is validated on its own); a shared file is read once."""
    base = pipeline_document("web", "registry.local/web:2.0.0", [stage("dev", "shop", ["dev-1"])])
    template = yaml.safe_dump(base["spec"]["stages"][0].pop("rollout"))
    padded = template + "# " + "x" * (60 << 10) + "\n"  # 60 KiB: five uses are more than 256 KiB
    for name in ("one.yaml", "two.yaml", "three.yaml"):
        (tmp_path / name).write_text(padded)

    def stages(*files: str) -> dict:
        document = copy.deepcopy(base)
        document["spec"]["stages"] = [{"name": f"s{i}", "rolloutFile": f, "waves": [{"targets": [{"context": f"c{i}"}]}]}
                                      for i, f in enumerate(files)]
        return document

    write(tmp_path / "p.yaml", stages("one.yaml", "./one.yaml", "sub/../one.yaml", "two.yaml"))
    (tmp_path / "sub").mkdir()
    loaded = load_kind(tmp_path / "p.yaml", ("Pipeline",), "rollout pipeline start -f")
    assert [s.rollout["metadata"]["name"] for s in loaded.spec.stages] == ["web"] * 4
    for files, refused in ((["one.yaml", "two.yaml", "three.yaml", "two.yaml", "one.yaml"], 4),
                           (["one.yaml"] * 5, 4)):
        write(tmp_path / "p.yaml", stages(*files))
        code, out = rollout("pipeline", "validate", "-f", "p.yaml", cwd=tmp_path)
        assert code == 2 and out.startswith(f"rollout: p.yaml: spec.stages[{refused}].rolloutFile: (file): more than "
                                            "the ") and out.endswith(" bytes a spec may have (what its pipeline's files "
                                                                     "have left)"), (files, out)


def test_aliases_are_capped_by_what_they_expand_to(tmp_path):
    """Eleven levels of nine aliases each (99 aliases, under the count cap) stand for 31 billion values."""
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"] + [
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 11)]
    header = "apiVersion: rollouts.durable.dev/v1alpha1\nmetadata: {name: web}\n"
    write(tmp_path / "bomb.yaml", header + "x:\n" + "\n".join(f"  {line}" for line in levels) + "\nkind: *a10\n")
    code, out = rollout("validate", "-f", "bomb.yaml", cwd=tmp_path)
    assert (code, out) == (2, "rollout: bomb.yaml: (file): more than 20000 values once its aliases are expanded: "
                              "refused as an anchor bomb")
    write(tmp_path / "wide.yaml", "kind: Rollout\nmetadata: {name: web}\nx:\n  a0: &a0 [" + ", ".join(["x"] * 500)
          + "]\n  a1: &a1 [" + ", ".join(["*a0"] * 15) + "]\napiVersion: *a1\n")  # 2 x 7,500 values: under the cap
    code, out = rollout("validate", "-f", "wide.yaml", cwd=tmp_path)
    assert code == 2 and "apiVersion: Input should be 'rollouts.durable.dev/v1alpha1', got [['x', 'x', 'x'," in out
    assert len(out) < 600, out[:600]
    deep = ["d0: &d0 [x]"] + [f"d{i}: &d{i} [" + ", ".join([f"*d{i - 1}"] * 1) + "]" for i in range(1, 70)]
    write(tmp_path / "deep.yaml", header + "x:\n" + "\n".join(f"  {line}" for line in deep) + "\nkind: Rollout\n")
    code, out = rollout("validate", "-f", "deep.yaml", cwd=tmp_path)  # 70 anchors, each one level inside the last
    assert (code, out) == (2, "rollout: deep.yaml: (file): nested deeper than 64 levels once its aliases are expanded")


def test_values_the_yaml_grammar_accepts_and_python_cannot_build_are_one_line(tmp_path):
    cases = {"a date that is not one": "created: 2024-02-30", "a date as a key": "2024-13-45: x",
             "a 5000-digit number": "replicas: " + "9" * 5000, "a sexagesimal number": "replicas: " + "1:" * 2000 + "1",
             "0x_": "replicas: 0x_", "a time zone 25 h east": "at: 2001-12-14t21:59:43.10+25:00",
             "!!bool maybe": "x: !!bool maybe", "!!int ''": "x: !!int ''", "!!float ''": "x: !!float ''"}
    for what, line in cases.items():
        write(tmp_path / "v.yaml", f"{line}\nkind: Rollout\n")
        code, out = rollout("validate", "-f", "v.yaml", cwd=tmp_path)
        assert code == 2 and out.startswith("rollout: v.yaml: line 1, column ") and len(out.splitlines()) == 1, \
            (what, out[:300])
    code, out = rollout("validate", "-f", ".", cwd=tmp_path)
    assert (code, out) == (2, "rollout: .: (file): not a regular file")
    text = "x" * 10_000  # one string fanned out: 10 kB written, 2 MB once expanded
    write(tmp_path / "strings.yaml", f"kind: Rollout\ns: &s {text}\nl1: &l1 [" + ", ".join(["*s"] * 20) + "]\n"
          + "l2: [" + ", ".join(["*l1"] * 10) + "]\n")
    code, out = rollout("validate", "-f", "strings.yaml", cwd=tmp_path)
    assert (code, out) == (2, "rollout: strings.yaml: (file): more than 1048576 characters of text once its aliases "
                              "are expanded: refused as an anchor bomb")


def test_values_that_were_accepted_and_wrong_are_refused_naming_the_field(tmp_path):
    refused = {
        "percent: yes": ([{"percent": True}, {"percent": 100}],
                         "spec.phases[0].percent: a number, not True (YAML reads yes, no, on and off as booleans)"),
        "a phase that rounds to 0 %": ([{"percent": 0.001}, {"percent": 100}],
                                       "spec.phases[0].percent: 0.001% rounds to 0 basis points: nobody would get it"),
        "finer than a basis point": ([{"percent": 0.015}, {"percent": 100}],
                                     "spec.phases[0].percent: 0.015% is finer than a basis point, the 0.01% a phase "
                                     "can express"),
        "one exposure twice": ([{"percent": 1}, {"basisPoints": 100}, {"percent": 100}],
                               "spec.phases[1]: the same exposure as the phase before (1%): one phase, with a longer "
                               "bake (its analysis and approval gate it together)"),
        "basisPoints: yes": ([{"basisPoints": True}, {"percent": 100}],
                             "spec.phases[0].basisPoints: a number, not True (YAML reads yes, no, on and off as "
                             "booleans)"),
        "a percent that is 0 basis points": ([{"percent": 1e-300}, {"percent": 100}],
                                             "spec.phases[0].percent: 1e-300% rounds to 0 basis points: nobody would "
                                             "get it"),
    }
    for what, (phases, expected) in refused.items():
        write(tmp_path / "r.yaml", release_document(phases))
        with pytest.raises(SpecError) as refusal:
            load_kind(tmp_path / "r.yaml", ("Release",), "rollout release publish -f")
        assert refusal.value.problems == [expected], what
        ReleaseInput.model_validate({"release": release_document(phases)})  # a running release's input still reads
    write(tmp_path / "r.yaml", release_document([{"percent": 1}, {"percent": 100}], prefix="desktop/../shared"))
    code, out = rollout("validate", "-f", "r.yaml", cwd=tmp_path)
    assert code == 2 and out.startswith("rollout: r.yaml: spec.channel.updater.repository.prefix: 'desktop/../shared': "
                                        "no . or .. segments"), out
    code, out = rollout("release", "init", "--bucket", "releases", "--prefix", "a/../b", "--keys", "keys", cwd=tmp_path)
    assert code == 2 and out.startswith("rollout: --prefix: 'a/../b': no . or .. segments"), out
    assert not (tmp_path / "keys").exists()

    flag = release_document([{"percent": 5}, {"percent": 100}])
    flag["spec"]["artifact"] = {"variant": "purple"}
    flag["spec"]["channel"] = {"flag": {"file": "/tmp/flags.json", "flag": "checkout", "variants": {"on": True, "off": False}}}
    write(tmp_path / "f.yaml", flag)
    code, out = rollout("validate", "-f", "f.yaml", cwd=tmp_path)
    assert (code, out) == (2, "rollout: f.yaml: spec.artifact.variant: 'purple' is not one of channel.flag.variants "
                              "(off, on)")

    prod = stage("prod", "shop", ["eu-1", "us-1"], failFast=False, maxFailures=2)
    write(tmp_path / "p.yaml", pipeline_document("web", "registry.local/web:2.0.0", [prod]))
    code, out = rollout("pipeline", "validate", "-f", "p.yaml", cwd=tmp_path)
    assert (code, out) == (2, "rollout: p.yaml: spec.stages[0].maxFailures: 2 tolerated of 2 targets: the stage "
                              "would count as done with every target failed")
    twins = stage("prod", "shop", ["prod_eu", "prod-eu"])  # once one child workflow ID: now each its own
    write(tmp_path / "p.yaml", pipeline_document("checkout", "registry.local/web:2.0.0", [twins]))
    twins_loaded = load_kind(tmp_path / "p.yaml", ("Pipeline",), "rollout pipeline start -f")
    prod = twins_loaded.spec.stages[0]
    ids = [prod.rollout_for(t, "registry.local/web:2.0.0", twins_loaded.rollout_id).rollout_id for t in prod.targets]
    assert ids[0] != ids[1] and all(i.startswith("rollout/test/checkout-prod-prod-eu-") for i in ids), ids


def test_a_number_in_any_document_is_a_number(tmp_path):
    """`setWeight: yes` was a 1 % canary and `setWeight: "50"` a 50 % one: in any document, a field that
    holds a number refuses YAML's booleans and quoted text, naming the field."""
    examples = Path(__file__).resolve().parent.parent / "examples"
    example = yaml.safe_load((examples / "canary.yaml").read_text())
    for written, expected in [("yes", "a number, not True (YAML reads yes, no, on and off as booleans)"),
                              ('"50"', "a number, not the text '50'")]:
        text = yaml.safe_dump(example).replace("setWeight: 20", f"setWeight: {written}")
        (tmp_path / "c.yaml").write_text(text)
        code, out = rollout("validate", "-f", "c.yaml", cwd=tmp_path)
        assert (code, out) == (2, f"rollout: c.yaml: spec.strategy.canary.steps[0].setWeight: {expected}"), out
    gradual = (examples / "blue-green-gradual.yaml").read_text()
    for written, expected in [("[yes, 25, 50, 75, 100]", "item 0: a number, not True (YAML reads yes, no, on and off "
                                                         "as booleans)"),
                              ('[10, "25", 50, 75, 100]', "item 1: a number, not the text '25'")]:
        (tmp_path / "g.yaml").write_text(gradual.replace("[10, 25, 50, 75, 100]", written))
        code, out = rollout("validate", "-f", "g.yaml", cwd=tmp_path)
        assert code == 2 and out.endswith(f"weights: {expected}"), out
    analysed = (examples / "canary-analysis.yaml").read_text()
    assert "tolerance: 0.15" in analysed
    (tmp_path / "a.yaml").write_text(analysed.replace("tolerance: 0.15", "tolerance: 15e-2"))
    code, out = rollout("validate", "-f", "a.yaml", cwd=tmp_path)
    assert code == 0, f"15e-2 is a number (YAML 1.2; PyYAML's 1.1 reads it as text): {out}"
