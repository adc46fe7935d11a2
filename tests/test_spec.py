"""Spec validation: good specs pass; malformed ones are rejected with their field path before anything starts."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from models.spec import SpecError, json_schema, load_rollout, parse_rollout
from tests.helpers import canary_document

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def mutated(path: str, value, delete: bool = False, steps: list | None = None) -> dict:
    document = copy.deepcopy(canary_document(steps=steps))
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key = int(last) if last.isdigit() else last
    if delete:
        del node[key]
    else:
        node[key] = value
    return document


CANARY = "spec.strategy.canary"
BETA = {"headerName": "x-beta", "headerValue": {"exact": "1"}}
MALFORMED = [
    # (what is wrong, document, the field path the message must name, words it must say)
    ("wrong apiVersion", mutated("apiVersion", "argoproj.io/v1alpha1"), "apiVersion", "rollouts.durable.dev"),
    ("wrong kind", mutated("kind", "Deployment"), "kind", "Rollout"),
    ("missing metadata.name", mutated("metadata.name", None, delete=True), "metadata.name", "required"),
    ("name not a DNS label", mutated("metadata.name", "Checkout_API"), "metadata.name", "pattern"),
    ("missing environment", mutated("metadata.environment", None, delete=True), "metadata.environment", "required"),
    ("missing target", mutated("spec.target", None, delete=True), "spec.target", "required"),
    ("missing namespace", mutated("spec.target.kubernetes.namespace", None, delete=True),
     "spec.target.kubernetes.namespace", "required"),
    ("deployment wrong type", mutated("spec.target.kubernetes.deployment", 42), "spec.target.kubernetes.deployment",
     "string"),
    ("unknown target field", mutated("spec.target.kubernetes.cluster", "x"), "spec.target.kubernetes.cluster",
     "unknown field"),
    ("image without tag", mutated("spec.image", "registry.local/checkout-api"), "spec.image", "tag or digest"),
    ("image not a reference", mutated("spec.image", "Registry Local/x:1"), "spec.image", "not a valid image"),
    ("unknown strategy", mutated("spec.strategy", {"redBlack": {}}), "spec.strategy",
     "unknown strategy 'redBlack' (known: canary, blueGreen, abTest, rollingUpdate, recreate)"),
    ("blue-green preview is the active Service",
     mutated("spec.strategy", {"blueGreen": {"activeService": "web", "previewService": "web"}}),
     "spec.strategy.blueGreen.previewService", "different Service"),
    ("blue-green auto-promotion delay without auto-promotion",
     mutated("spec.strategy", {"blueGreen": {"activeService": "web", "previewService": "web-preview",
                                             "autoPromotionEnabled": False, "autoPromotionSeconds": 30}}),
     "spec.strategy.blueGreen.autoPromotionSeconds", "no effect"),
    ("blue-green preview of zero pods",
     mutated("spec.strategy", {"blueGreen": {"activeService": "web", "previewService": "web-preview",
                                             "previewReplicaCount": 0}}),
     "spec.strategy.blueGreen.previewReplicaCount", "greater than or equal to 1"),
    ("no strategy", mutated("spec.strategy", {}), "spec.strategy", "exactly one strategy"),
    ("weight above 100", mutated(f"{CANARY}.steps", [{"setWeight": 120}]), f"{CANARY}.steps[0].setWeight",
     "less than or equal to 100"),
    ("negative weight", mutated(f"{CANARY}.steps", [{"setWeight": -5}]), f"{CANARY}.steps[0].setWeight",
     "greater than or equal to 0"),
    ("weight not a number", mutated(f"{CANARY}.steps", [{"setWeight": "half"}]), f"{CANARY}.steps[0].setWeight",
     "a number, not the text 'half'"),
    ("weights not increasing", mutated(f"{CANARY}.steps", [{"setWeight": 50}, {"pause": {}}, {"setWeight": 20}]),
     f"{CANARY}.steps[2].setWeight", "must be greater than steps[0].setWeight 50"),
    ("negative pause", mutated(f"{CANARY}.steps", [{"setWeight": 10}, {"pause": {"duration": "-5s"}}]),
     f"{CANARY}.steps[1].pause.duration", "negative"),
    ("pause not a duration", mutated(f"{CANARY}.steps", [{"pause": {"duration": "soon"}}]),
     f"{CANARY}.steps[0].pause.duration", "not like 30s"),
    ("step with two actions", mutated(f"{CANARY}.steps", [{"setWeight": 10, "pause": {}}]), f"{CANARY}.steps[0]",
     "exactly one step is needed"),
    ("unknown step", mutated(f"{CANARY}.steps", [{"experiment": {}}]), f"{CANARY}.steps[0]", "unknown step 'experiment'"),
    ("canary scale with the replicas router", mutated(f"{CANARY}.steps", [{"setCanaryScale": {"replicas": 2}}]),
     f"{CANARY}.steps[0].setCanaryScale", "replicas router sets the canary scale"),
    ("header route with the replicas router",
     mutated(f"{CANARY}.steps", [{"setHeaderRoute": {"name": "beta", "match": [{"cookieName": "beta", "cookieValue": "1"}]}}]),
     f"{CANARY}.steps[0].setHeaderRoute", "needs a router that routes by header"),
    ("mirror with nginx", mutated(f"{CANARY}.trafficRouting", {"nginx": {"stableIngress": "web"}}, steps=[
        {"setMirrorRoute": {"name": "shadow", "percentage": 10}}]),
     f"{CANARY}.steps[0].setMirrorRoute", "needs a router that mirrors (istio, gatewayAPI), not nginx"),
    ("nginx header regex", mutated(f"{CANARY}.trafficRouting", {"nginx": {"stableIngress": "web"}}, steps=[
        {"setHeaderRoute": {"name": "b", "match": [{"headerName": "x-beta", "headerValue": {"regex": "1.*"}}]}}]),
     f"{CANARY}.steps[0].setHeaderRoute.match", "one exact header or cookie"),
    ("match on header and cookie", mutated(f"{CANARY}.trafficRouting", {"istio": {"virtualService": {"name": "web"}}},
        steps=[{"setHeaderRoute": {"name": "b", "match": [{"headerName": "x", "headerValue": {"exact": "1"},
                                                            "cookieName": "c", "cookieValue": "1"}]}}]),
     f"{CANARY}.steps[0].setHeaderRoute.match[0]", "exactly one of headerName, cookieName"),
    ("header without value", mutated(f"{CANARY}.trafficRouting", {"gatewayAPI": {"httpRoute": "web"}},
        steps=[{"setHeaderRoute": {"name": "b", "match": [{"headerName": "x-beta"}]}}]),
     f"{CANARY}.steps[0].setHeaderRoute.match[0].headerValue", "required with headerName"),
    ("dynamic stable scale with replicas", mutated(f"{CANARY}.dynamicStableScale", True),
     f"{CANARY}.dynamicStableScale", "already scales stable"),
    ("A/B test through the replicas router",
     mutated("spec.strategy", {"abTest": {"stableService": "web", "canaryService": "web-canary",
                                          "trafficRouting": {"replicas": {}}, "audience": [BETA]}}),
     "spec.strategy.abTest.trafficRouting", "needs a router that routes by header"),
    ("A/B test without an audience",
     mutated("spec.strategy", {"abTest": {"stableService": "web", "canaryService": "web-canary",
                                          "trafficRouting": {"nginx": {"stableIngress": "web"}}, "audience": []}}),
     "spec.strategy.abTest.audience", "at least 1"),
    ("A/B test decision without a duration",
     mutated("spec.strategy", {"abTest": {"stableService": "web", "canaryService": "web-canary", "audience": [BETA],
                                          "trafficRouting": {"nginx": {"stableIngress": "web"}}, "afterDuration": "abort"}}),
     "spec.strategy.abTest.afterDuration", "needs a duration"),
    ("blue-green gradual shift without a router",
     mutated("spec.strategy", {"blueGreen": {"activeService": "web", "previewService": "web-preview",
                                             "gradualShift": {"weights": [10, 50, 100], "hold": "1m"}}}),
     "spec.strategy.blueGreen.trafficRouting", "gradualShift needs a router"),
    ("blue-green shift weights going down",
     mutated("spec.strategy", {"blueGreen": {"activeService": "web", "previewService": "web-preview",
                                             "trafficRouting": {"nginx": {"stableIngress": "web"}},
                                             "gradualShift": {"weights": [50, 25, 100]}}}),
     "spec.strategy.blueGreen.gradualShift.weights", "must rise strictly"),
    ("rollback window of a rolling update without a service",
     mutated("spec", dict(canary_document()["spec"], strategy={"rollingUpdate": {}}, rollbackWindow={"duration": "1h"})),
     "spec.rollbackWindow.service", "required with rollingUpdate"),
    ("rollback window of too many revisions", mutated("spec.rollbackWindow", {"duration": "1h", "revisions": 9}),
     "spec.rollbackWindow.revisions", "less than or equal to 5"),
    ("analysis condition that is not a safe expression", mutated("spec.analysis", {"templates": [{
        "name": "t", "metrics": [{"name": "m", "successCondition": "result.__class__ == 1",
                                  "provider": {"prometheus": {"query": "up"}}}]}]}),
     "spec.analysis.templates[0].metrics[0].successCondition", "Attribute is not allowed"),
    ("analysis condition that does not parse", mutated("spec.analysis", {"templates": [{
        "name": "t", "metrics": [{"name": "m", "failureCondition": "result >", "provider": {"web": {"url": "http://x"}}}]}]}),
     "spec.analysis.templates[0].metrics[0].failureCondition", "not an expression"),
    ("analysis step naming no template", mutated(f"{CANARY}.steps", [{"analysis": {"templates": [{"templateName": "nope"}]}}]),
     "spec.strategy.canary.steps[0].analysis", "no analysis template 'nope'"),
    ("analysis step missing an arg", mutated(f"{CANARY}.steps", [{"analysis": {"templates": [{"templateName": "error-rate"}]}}]),
     "spec.strategy.canary.steps[0].analysis", "arg 'namespace' has no value"),
    ("analysis query using an undeclared arg", mutated("spec.analysis", {"templates": [{
        "name": "t", "metrics": [{"name": "m", "successCondition": "result[0] > 0",
                                  "provider": {"prometheus": {"query": "up{job=\"{{args.job}}\"}"}}}]}]}),
     "spec.analysis.templates[0].metrics[0]", "{{args.job}}, not declared"),
    ("two routers", mutated(f"{CANARY}.trafficRouting", {"replicas": {}, "nginx": {"stableIngress": "web"}}),
     f"{CANARY}.trafficRouting", "exactly one traffic router"),
    ("empty steps", mutated(f"{CANARY}.steps", []), f"{CANARY}.steps", "at least 1"),
    ("same stable and canary service", mutated(f"{CANARY}.canaryService", "checkout-api"), f"{CANARY}.canaryService",
     "different Service"),
    ("unknown traffic router", mutated(f"{CANARY}.trafficRouting", {"linkerd": {}}), f"{CANARY}.trafficRouting",
     "unknown traffic router 'linkerd'"),
    ("missing stableService", mutated(f"{CANARY}.stableService", None, delete=True), f"{CANARY}.stableService",
     "required"),
    ("rolling update that cannot move", mutated("spec.strategy", {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}),
     "spec.strategy.rollingUpdate.maxUnavailable", "cannot both be 0"),
    ("maxSurge not a count or percentage", mutated("spec.strategy", {"rollingUpdate": {"maxSurge": "lots"}}),
     "spec.strategy.rollingUpdate.maxSurge", "percentage like 25%"),
    ("two strategies", mutated("spec.strategy", {"recreate": {}, "rollingUpdate": {}}), "spec.strategy",
     "exactly one strategy"),
    ("unknown concurrency policy", mutated("spec.concurrencyPolicy", "queue"), "spec.concurrencyPolicy",
     "'reject' or 'supersede'"),
    ("progress deadline too short", mutated("spec.progressDeadlineSeconds", 1), "spec.progressDeadlineSeconds",
     "greater than or equal to 10"),
    # approvals, execution windows, notifications
    ("more approvals than approvers", mutated(f"{CANARY}.steps.1", {"approval": {"approvers": ["a", "b"], "minApprovals": 3}}),
     f"{CANARY}.steps[1].approval.minApprovals", "only 2 approvers"),
    ("approver listed twice", mutated(f"{CANARY}.steps.1", {"approval": {"approvers": ["a", "a"]}}),
     f"{CANARY}.steps[1].approval.approvers", "listed twice"),
    ("empty group name", mutated(f"{CANARY}.steps.1", {"approval": {"approvers": ["group:"]}}),
     f"{CANARY}.steps[1].approval.approvers[0]", "not a user name or group:NAME"),
    ("onTimeout without timeout", mutated(f"{CANARY}.steps.1", {"approval": {"onTimeout": "abort"}}),
     f"{CANARY}.steps[1].approval.onTimeout", "needs a timeout"),
    ("no choice promotes", mutated(f"{CANARY}.steps.1", {"approval": {"choices": [{"name": "no", "action": "abort"}]}}),
     f"{CANARY}.steps[1].approval.choices", "at least one choice must promote"),
    ("extend choice without duration", mutated(f"{CANARY}.steps.1", {"approval": {"choices": [
        {"name": "go", "action": "promote"}, {"name": "soak", "action": "extend"}]}}),
     f"{CANARY}.steps[1].approval.choices[1].duration", "needs a duration"),
    ("unknown approval action", mutated(f"{CANARY}.steps.1", {"approval": {"choices": [{"name": "go", "action": "ship"}]}}),
     f"{CANARY}.steps[1].approval.choices[0].action", "'promote', 'abort' or 'extend'"),
    ("reminders with nowhere to go", mutated(f"{CANARY}.steps.1", {"approval": {"remindEvery": "10m"}}),
     "spec.strategy.canary.steps[1].approval.remindEvery", "need spec.notifications"),
    ("unknown timezone", mutated("spec.executionWindows", {"timezone": "Mars/Olympus"}), "spec.executionWindows.timezone",
     "unknown timezone 'Mars/Olympus'"),
    ("window ends before it starts", mutated("spec.executionWindows", {"allow": [{"start": "17:00", "end": "09:00"}]}),
     "spec.executionWindows.allow[0].end", "must be after start"),
    ("window time not a time", mutated("spec.executionWindows", {"allow": [{"start": "9am"}]}),
     "spec.executionWindows.allow[0].start", "not a time like 09:00"),
    ("unknown weekday", mutated("spec.executionWindows", {"allow": [{"days": ["Someday"]}]}),
     "spec.executionWindows.allow[0].days[0]", "'Mon'"),
    ("freeze ends before it starts", mutated("spec.executionWindows", {"freezes": [
        {"start": "2026-12-24T00:00:00Z", "end": "2026-12-20T00:00:00Z"}]}),
     "spec.executionWindows.freezes[0].end", "must be after start"),
    ("unknown severity", mutated("spec.notifications", [{"channel": "releases", "minSeverity": "loud"}]),
     "spec.notifications[0].minSeverity", "'info', 'warning' or 'critical'"),
]


@pytest.mark.parametrize("what, document, path, words", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_spec_is_rejected_naming_its_field(what, document, path, words):
    with pytest.raises(SpecError) as rejected:
        parse_rollout(document)
    matching = [p for p in rejected.value.problems if p.startswith(f"{path}: ")]
    assert matching, f"no problem names {path}: {rejected.value.problems}"
    assert any(words in p for p in matching), f"{words!r} not in {matching}"


def test_at_least_twenty_distinct_malformed_specs():
    assert len({m[0] for m in MALFORMED}) >= 20


def test_good_specs_pass_and_durations_parse():
    rollout = parse_rollout(canary_document(steps=[{"setWeight": 5}, {"pause": {"duration": "1h30m"}},
                                                   {"pause": {"duration": 90}}, {"setWeight": 100}]))
    steps = rollout.spec.strategy.canary.steps
    assert steps[1].pause.duration.total_seconds() == 5400 and steps[2].pause.duration.total_seconds() == 90
    assert rollout.rollout_id == "rollout/test/checkout-api"
    digest = "registry.local/checkout-api@sha256:" + "a" * 64
    assert parse_rollout(canary_document(image=digest)).spec.image == digest


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_is_valid(path):
    load_rollout(path)


def test_examples_exist():
    from models.spec import STRATEGIES

    strategies = {load_rollout(path).spec.strategy.name for path in EXAMPLES}
    assert strategies == set(STRATEGIES), "one example per strategy at least"


def test_spec_survives_the_data_converter_round_trip():
    from temporalio.contrib.pydantic import pydantic_data_converter

    from models.status import RolloutInput

    original = RolloutInput(rollout=parse_rollout(canary_document()), requested_by="ci")
    payloads = pydantic_data_converter.payload_converter.to_payloads([original])
    [decoded] = pydantic_data_converter.payload_converter.from_payloads(payloads, [RolloutInput])
    assert decoded == original


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "starters.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120, **kwargs)


def test_cli_validate_prints_every_problem_and_exits_2(tmp_path):
    bad = canary_document(image="registry.local/checkout-api", steps=[{"setWeight": 150}])
    spec = tmp_path / "bad.yaml"
    spec.write_text(json.dumps(bad))
    result = run_cli("validate", "-f", str(spec))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "spec.strategy.canary.steps[0].setWeight" in result.stderr and "spec.image" in result.stderr


def test_cli_validate_bad_yaml_and_missing_file(tmp_path):
    spec = tmp_path / "broken.yaml"
    spec.write_text("apiVersion: [unclosed\n")
    broken = run_cli("validate", "-f", str(spec))
    assert broken.returncode == 2 and "not valid YAML" in broken.stderr and ", column " in broken.stderr and "Traceback" not in broken.stderr
    missing = run_cli("validate", "-f", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_cli_validate_good_example():
    result = run_cli("validate", "-f", "examples/canary.yaml")
    assert result.returncode == 0, result.stderr
    assert "rollout/prod/checkout-api" in result.stdout


def test_schema_describes_the_spec():
    result = run_cli("schema")
    schema = json.loads(result.stdout)
    assert schema["title"] == "durable-rollouts Rollout"
    assert set(schema["required"]) == {"apiVersion", "kind", "metadata", "spec"}
    weight = json_schema()["$defs"]["CanaryStep"]["properties"]["setWeight"]["anyOf"][0]
    assert (weight["minimum"], weight["maximum"]) == (0, 100)


DUPLICATED = """\
apiVersion: rollouts.durable.dev/v1alpha1
kind: Rollout
metadata: {name: checkout-api, environment: prod}
spec:
  target:
    kubernetes: {namespace: shop, deployment: checkout-api}
  image: registry.local/checkout-api:1.4.2
  strategy:
    canary:
      stableService: checkout-api
      canaryService: checkout-api-canary
      steps: [{setWeight: 50}]
metadata: {name: payments, environment: prod}
"""
SINGLE = DUPLICATED.replace("metadata: {name: payments, environment: prod}\n", "")


@pytest.mark.parametrize("text, line, key", [
    (DUPLICATED, 13, "metadata"),  # the identity changed silently: last value won
    (SINGLE.replace("  image: registry", "  image: registry.local/old:1\n  image: registry"), 8, "image"),
    (SINGLE.replace("{name: checkout-api, environment: prod}", "{name: checkout-api, name: payments, environment: prod}"),
     3, "name"),
])
def test_a_duplicated_key_is_refused_naming_line_and_key(tmp_path, text, line, key):
    spec = tmp_path / "dup.yaml"
    spec.write_text(text)
    with pytest.raises(SpecError) as refused:
        load_rollout(spec)
    [problem] = refused.value.problems
    assert problem.startswith(f"line {line}, column ") and f"duplicate key {key!r}" in problem, problem
    result = run_cli("validate", "-f", str(spec))
    assert result.returncode == 2 and f"duplicate key {key!r}" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_keys_merged_in_by_an_anchor_may_be_overridden(tmp_path):
    """`<<: *defaults` then a key of its own is YAML's override, not a duplicate."""
    spec = tmp_path / "merge.yaml"
    spec.write_text(SINGLE.replace("metadata: {name: checkout-api, environment: prod}",
                                   "metadata:\n  <<: &defaults {name: base, environment: prod}\n  name: checkout-api"))
    assert load_rollout(spec).rollout_id == "rollout/prod/checkout-api"


def test_template_hash_args_only_where_there_are_such_pods():
    """valueFrom.podTemplateHashValue: a canary's or blue-green's analysis reads Latest and Stable, a rolling
    update's Latest; a template's own args, a value beside it, a rolling update's Stable, a pipeline's gate
    (before its rollouts) and a stage override its template's strategy cannot fill are refused by field."""
    from models.pipeline import parse_pipeline
    from tests.pipeline_helpers import pipeline_document, stage

    def with_step(args, strategy=None):
        document = canary_document(steps=[{"setWeight": 50}, {"analysis": {"templates": [{"templateName": "t"}],
                                                                           "args": args}}], strategy=strategy)
        document["spec"]["analysis"] = {"templates": [{"name": "t", "args": [{"name": "h"}], "metrics": [
            {"name": "m", "successCondition": "result == 1", "provider": {"web": {"url": "http://127.0.0.1/{{args.h}}"}}}]}]}
        return document

    latest, stable = ({"name": "h", "valueFrom": {"podTemplateHashValue": role}} for role in ("Latest", "Stable"))
    assert parse_rollout(with_step([latest])).spec.strategy.canary.steps[1].analysis.hash_roles() == ["Latest"]
    parse_rollout(with_step([stable]))

    def refused(document) -> str:
        with pytest.raises(SpecError) as error:
            parse_rollout(document)
        return error.value.problems[0]

    assert refused(with_step([{**latest, "value": "x"}])) == \
        "spec.strategy.canary.steps[1].analysis.args[0].valueFrom: an arg has a value or a valueFrom, not both"
    assert refused(with_step([{"name": "h", "valueFrom": {"podTemplateHashValue": "Previous"}}])).startswith(
        "spec.strategy.canary.steps[1].analysis.args[0].valueFrom.podTemplateHashValue: Input should be 'Latest' or")
    document = with_step([latest])
    document["spec"]["analysis"]["templates"][0]["args"] = [latest]
    assert refused(document) == ("spec.analysis.templates[0].args[0].valueFrom: a template's arg has a default value "
                                 "at most; the analysis step's args take valueFrom")
    rolling = with_step([], strategy={"rollingUpdate": {"analysis": {"templates": [{"templateName": "t"}],
                                                                     "args": [stable]}}})
    assert refused(rolling) == ("spec.strategy.rollingUpdate.analysis: arg 'h': valueFrom.podTemplateHashValue Stable: "
                                "no such pods here (a canary's or blue-green's analysis has Latest and Stable, a "
                                "rolling update's Latest)")
    rolling["spec"]["strategy"]["rollingUpdate"]["analysis"]["args"] = [latest]
    parse_rollout(rolling)

    template = with_step([latest])
    gated = stage("prod", "shop", ["eu-1"], gate={"analysis": {"templates": [{"templateName": "t"}], "args": [latest]}})
    gated["rollout"] = template
    document = pipeline_document("shop", "registry.local/web:2.0.0", [stage("dev", "shop", ["dev-1"]), gated],
                                 analysis=template["spec"]["analysis"])
    with pytest.raises(SpecError) as error:
        parse_pipeline(document)
    assert error.value.problems[0].startswith("spec.stages[1].gate.analysis: arg 'h': valueFrom.podTemplateHashValue "
                                              "Latest: no such pods here"), error.value.problems
    overridden = stage("prod", "shop", ["eu-1"], overrides={"args": [stable]})
    overridden["rollout"] = with_step([], strategy={"rollingUpdate": {}})
    with pytest.raises(SpecError) as error:
        parse_pipeline(pipeline_document("shop", "registry.local/web:2.0.0", [overridden]))
    assert error.value.problems[0] == ("spec.stages[0].overrides.args[0].valueFrom: rollingUpdate has no Stable pods to "
                                       "read a template hash of"), error.value.problems
