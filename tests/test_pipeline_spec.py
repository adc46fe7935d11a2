"""The Pipeline document: what validation refuses (naming the field), how a stage's Rollout is made for a
target, and pinning a bundle against a real registry (Debian's docker-registry on loopback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from temporalio.exceptions import ApplicationError

from activities.registry import RegistryActivities, split_reference
from models.documents import SpecError
from models.kinds import load_pipeline
from models.pipeline import child_name, parse_pipeline, target_name
from tests.pipeline_helpers import pipeline_document, rolling_template, stage

REPO = Path(__file__).resolve().parent.parent


def problems(document) -> list[str]:
    with pytest.raises(SpecError) as error:
        parse_pipeline(document)
    return error.value.problems


def doc(*stages, **spec):
    return pipeline_document("shop", "registry.local/web:2.0.0", list(stages), **spec)


@pytest.mark.parametrize("change, expected", [
    (lambda d: d["spec"]["stages"].append(dict(d["spec"]["stages"][0])), "spec.stages: two stages have the same name"),
    (lambda d: d["spec"]["stages"][0].update(gate={"soak": "1h"}), "spec.stages[0].gate.soak: the first stage"),
    (lambda d: d["spec"]["stages"][0].update(maxFailures=2), "spec.stages[0].maxFailures: tolerating failures needs"),
    (lambda d: d["spec"]["stages"][0].update(approve="wave"), "spec.stages[0].approve: wave approvals need"),
    (lambda d: d["spec"]["stages"][0].update(image="api"), "spec.stages[0].image: 'api' is not in bundle.images"),
    (lambda d: d["spec"]["stages"][0]["waves"][0]["targets"].append({"context": "eu-1"}), "target eu-1 is listed twice"),
    (lambda d: d["spec"]["bundle"]["images"].update(web="registry.local/web"), "spec.bundle.images.web: "),
    (lambda d: d["spec"]["stages"][0]["rollout"]["spec"].update(image="NOT AN IMAGE"), "spec.stages[0].rollout: "),
    (lambda d: d["spec"]["stages"][0].update(rolloutFile="x.yaml"), "spec.stages[0].rollout: give the template inline"),
    (lambda d: d["spec"]["stages"][0]["waves"][0].update(maxParallel=0), "spec.stages[0].waves[0].maxParallel"),
    (lambda d: d["spec"]["stages"][0].update(gate={"analysis": {"templates": [{"templateName": "nope"}]}}),
     "no template 'nope'"),
])
def test_refusals_name_the_field(change, expected):
    document = doc(stage("prod", "shop", ["eu-1", "us-1"]))
    change(document)
    assert any(expected in p for p in problems(document)), problems(document)


def test_a_stage_rollout_for_each_target():
    p = parse_pipeline(doc(stage("prod", "shop", [], overrides={"deployment": "api"},
                                 waves=[{"targets": [{"context": "eu-1", "namespace": "shop-eu"}, {"context": "us-1"}]}])))
    prod = p.spec.stages[0]
    eu, us = (prod.rollout_for(t, "registry.local/web:2.0.0@sha256:" + "a" * 64, p.rollout_id) for t in prod.targets)
    assert eu.spec.target.kubernetes.describe() == "eu-1/shop-eu/api" and us.spec.target.kubernetes.describe() == "us-1/shop/api"
    assert eu.rollout_id == f"rollout/test/shop-prod-eu-1-shop-eu-{target_name(p.rollout_id, 'prod', prod.targets[0].key)[-8:]}"
    before = prod.rollout_for(prod.targets[0], eu.spec.image, None)  # a run recorded before: the template's
    assert before.rollout_id == "rollout/test/web-prod-eu-1-shop-eu" and before.spec == eu.spec
    assert eu.spec.image.endswith("a" * 64)
    assert p.spec.step_descriptions() == ["prod: wave 1/1 (eu-1, us-1; rounds of 1)"]
    long = child_name("a" * 40, "production", "cluster-with-a-very-long-context-name")
    assert len(long) <= 63 and long != child_name("a" * 40, "production", "cluster-with-a-very-long-context-namf")
    # no two pipelines, stages or targets share a child, however their names are cut and joined
    names = {target_name("pipeline/test/web", "prod-eu", "c1"), target_name("pipeline/test/web-prod", "eu", "c1"),
             target_name("pipeline/prod/web", "prod-eu", "c1"), target_name("pipeline/test/web", "prod", "eu_c1"),
             target_name("pipeline/test/web", "prod", "eu-c1"), target_name("pipeline/test/" + "a" * 60, "prod", "c1"),
             target_name("pipeline/test/" + "a" * 60, "prod", "c2")}
    assert len(names) == 7 and all(len(n) <= 63 for n in names)
    assert target_name("pipeline/test/web-prod", "eu", "c1").startswith("web-prod-eu-c1-")  # readable, then the hash


def test_rollout_files_are_read_relative_to_the_pipeline(tmp_path):
    document = doc(stage("dev", "shop", ["dev-1"]))
    template = document["spec"]["stages"][0].pop("rollout")
    document["spec"]["stages"][0]["rolloutFile"] = "rollouts/web.yaml"
    (tmp_path / "rollouts").mkdir()
    (tmp_path / "rollouts" / "web.yaml").write_text(yaml.safe_dump(template))
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(document))
    assert load_pipeline(str(tmp_path / "pipeline.yaml")).spec.stages[0].template().metadata.name == "web"
    (tmp_path / "rollouts" / "web.yaml").write_text("kind: Rollout\nspec: [1]\n")
    with pytest.raises(SpecError) as error:
        load_pipeline(str(tmp_path / "pipeline.yaml"))
    assert any(p.startswith("spec.stages[0].rollout") for p in error.value.problems), error.value.problems


def test_the_cli_refuses_a_bad_pipeline_in_one_line_per_problem(tmp_path):
    document = doc(stage("prod", "shop", ["eu-1"], gate={"soak": "1h"}))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(document))
    result = subprocess.run([sys.executable, "-m", "starters.cli", "pipeline", "start", "-f", str(tmp_path / "p.yaml")],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "spec.stages[0].gate.soak: the first stage has no stage before it to soak in" in result.stderr


def test_image_references_split_as_registries_read_them():
    assert split_reference("nginx:1.25") == ("registry-1.docker.io", "library/nginx", "1.25", "")
    assert split_reference("localhost:5000/shop/web:2") == ("localhost:5000", "shop/web", "2", "")
    assert split_reference("ghcr.io/acme/web@sha256:" + "b" * 64) == ("ghcr.io", "acme/web", "", "sha256:" + "b" * 64)
    assert split_reference("acme/web:3") == ("registry-1.docker.io", "acme/web", "3", "")


def test_a_tag_is_pinned_to_the_digest_the_registry_reports(registry):
    digest = registry.push("shop/api", "3.1.0")
    pin = RegistryActivities().pin
    assert pin(registry.image("shop/api", "3.1.0")) == f"{registry.image('shop/api', '3.1.0')}@{digest}"
    already = f"{registry.image('shop/api', '3.1.0')}@{digest}"
    assert pin(already) == already, "a digest is kept as it is"
    registry.push("shop/api", "3.1.0")  # the tag moves to a new manifest: the next pin says so
    assert pin(registry.image("shop/api", "3.1.0")) != already
    with pytest.raises(ApplicationError) as missing:
        pin(registry.image("shop/api", "9.9.9"))
    assert missing.value.non_retryable and "no tag '9.9.9'" in missing.value.message


def test_every_analysis_of_a_target_can_select_the_pinned_revision():
    """The pinned image and digest reach every analysis of a target's rollout as args (a health query can
    select the new revision by them), with the stage's overrides — blue-green's pre- and post-promotion
    analyses included."""
    template = rolling_template("shop")
    template["spec"]["strategy"] = {"blueGreen": {
        "activeService": "web", "previewService": "web-preview",
        "prePromotionAnalysis": {"templates": [{"templateName": "health"}]},
        "postPromotionAnalysis": {"templates": [{"templateName": "health"}]}}}
    args = [{"name": "pinnedDigest", "value": "unpinned"}, {"name": "region", "value": "anywhere"}]  # the template alone
    template["spec"]["analysis"] = {"templates": [{"name": "health", "args": args,
                                                   "metrics": [{"name": "errors", "successCondition": "result[0] < 1",
                                                                "provider": {"prometheus": {"query": "up"}}}]}]}
    document = doc(stage("prod", "shop", ["eu-1"], overrides={"args": [{"name": "region", "value": "eu"}]}))
    document["spec"]["stages"][0]["rollout"] = template
    prod = parse_pipeline(document).spec.stages[0]
    digest = "sha256:" + "c" * 64
    bg = prod.rollout_for(prod.targets[0], f"registry.local/web:2.0.0@{digest}", "web").spec.strategy.blue_green
    for step in (bg.pre_promotion_analysis, bg.post_promotion_analysis):
        assert {a.name: a.value for a in step.args} == {"pinnedImage": f"registry.local/web:2.0.0@{digest}",
                                                         "pinnedDigest": digest, "region": "eu"}
