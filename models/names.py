"""Names shared by the worker, the workflows and the CLI: task queue, search attributes, rollout IDs."""

from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy

from models.targets import Target

TASK_QUEUE = "durable-rollouts"
# Target families, one task queue each, so a worker holds only its family's credentials: Kubernetes
# (rollouts and pipelines) on the base queue, the updater and flag channels on `<base>-updater`, the
# stores and MDM on `<base>-stores`; each delivery target names its own (models/targets.py). `rollout
# worker` serves all of them unless told `--targets`.
CHANNEL_FAMILY = {"updater": "updater", "flag": "updater", "googlePlay": "stores", "appStore": "stores",
                  "microsoftStore": "stores", "intune": "stores", "mdm": "stores"}
FAMILIES = tuple(dict.fromkeys([*(model.FAMILY for model in Target.models().values()), *CHANNEL_FAMILY.values()]))


def task_queue_for(base: str, family: str) -> str:
    """The task queue of a target family, from the base queue (`--task-queue`, $ROLLOUT_TASK_QUEUE)."""
    return base if family == "kubernetes" else f"{base}-{family}"


def base_queue(queue: str, family: str) -> str:
    """The base queue a family's task queue was made from (`task_queue_for`'s inverse)."""
    return queue.removesuffix(task_queue_for("", family)) if family != "kubernetes" else queue

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
DEFAULT_UI = "http://localhost:8233"

ROLLOUT_NAME = SearchAttributeKey.for_keyword("RolloutName")
ROLLOUT_ENVIRONMENT = SearchAttributeKey.for_keyword("RolloutEnvironment")
ROLLOUT_STRATEGY = SearchAttributeKey.for_keyword("RolloutStrategy")
ROLLOUT_PHASE = SearchAttributeKey.for_keyword("RolloutPhase")
ROLLOUT_STEP = SearchAttributeKey.for_int("RolloutStep")
ROLLOUT_AWAITING_APPROVAL = SearchAttributeKey.for_bool("RolloutAwaitingApproval")
ROLLOUT_KIND = SearchAttributeKey.for_keyword("RolloutKind")  # Rollout, Release, Pipeline
ROLLOUT_PIPELINE = SearchAttributeKey.for_keyword("RolloutPipeline")  # a pipeline's target: the pipeline's ID

# name -> type, as `temporal server start-dev --search-attribute NAME=TYPE` and
# `temporal operator search-attribute create` take them.
SEARCH_ATTRIBUTES = {
    key.name: {ROLLOUT_STEP: "Int", ROLLOUT_AWAITING_APPROVAL: "Bool"}.get(key, "Keyword")
    for key in (ROLLOUT_NAME, ROLLOUT_ENVIRONMENT, ROLLOUT_STRATEGY, ROLLOUT_PHASE, ROLLOUT_STEP,
                ROLLOUT_AWAITING_APPROVAL, ROLLOUT_KIND, ROLLOUT_PIPELINE)
}



def start_options(document: Any, strategy: str = "", pipeline: str = "", workflow_id: str = "") -> dict[str, Any]:
    """The one start path's ID and search attributes, for `client.start_workflow` (a rollout, a release, a
    pipeline, undo/restart) and `workflow.start_child_workflow` (a pipeline's target, a train's release)
    alike: `document` a Rollout, Release or Pipeline (its `kind`, name, environment, ID); `strategy` when it
    is not the document's own (undo, restart); `pipeline` the pipeline's ID for its targets; `workflow_id`
    when the run is not the document's own ID (a train numbers its releases)."""
    pairs = [
        SearchAttributePair(ROLLOUT_NAME, document.metadata.name),
        SearchAttributePair(ROLLOUT_ENVIRONMENT, document.metadata.environment),
        SearchAttributePair(ROLLOUT_STRATEGY, strategy or document.strategy_name),
        SearchAttributePair(ROLLOUT_PHASE, "Progressing"),
        SearchAttributePair(ROLLOUT_STEP, 0),
        SearchAttributePair(ROLLOUT_KIND, document.kind),
    ]
    if pipeline:
        pairs.append(SearchAttributePair(ROLLOUT_PIPELINE, pipeline))
    return {"id": workflow_id or document.rollout_id, "search_attributes": TypedSearchAttributes(pairs),
            "id_reuse_policy": WorkflowIDReusePolicy.ALLOW_DUPLICATE}


# Labels and annotations the engine puts on Kubernetes objects.
LABEL_ROLE = "rollouts.durable.dev/role"
ANNOTATION_ROLLOUT_ID = "rollouts.durable.dev/rollout-id"
ANNOTATION_RUN_ID = "rollouts.durable.dev/run-id"  # the workflow run that owns the canary
ANNOTATION_STABLE_REPLICAS = "rollouts.durable.dev/stable-replicas"
ANNOTATION_PREVIOUS_REVISION = "rollouts.durable.dev/previous-revision"  # what undo goes back to
ANNOTATION_REVISION = "deployment.kubernetes.io/revision"  # set by the Deployment controller
ANNOTATION_STRATEGY = "rollouts.durable.dev/strategy"  # which strategy holds a Deployment
ANNOTATION_ORIGINAL_SELECTOR = "rollouts.durable.dev/original-selector"  # a Service's selector before we pinned it
LABEL_POD_TEMPLATE_HASH = "pod-template-hash"  # set on pods by the Deployment controller
LABEL_WARM_OF = "rollouts.durable.dev/warm-of"  # a warm copy of an earlier revision of this Deployment
LABEL_WARM_REVISION = "rollouts.durable.dev/warm-revision"
ANNOTATION_WEIGHT = "rollouts.durable.dev/weight"
ANNOTATION_STEP = "rollouts.durable.dev/step"


def rollout_id(environment: str, name: str) -> str:
    """The workflow ID of a rollout: one running rollout per environment and name."""
    return f"rollout/{environment}/{name}"


def canary_deployment_name(deployment: str) -> str:
    return f"{deployment}-canary"


def preview_deployment_name(deployment: str) -> str:
    return f"{deployment}-preview"


def warm_deployment_name(deployment: str, revision: int) -> str:
    return f"{deployment}-warm-r{revision}"


def window_id(rollout_id: str) -> str:
    """The workflow ID of a rollout's rollback window."""
    return f"{rollout_id}/window"
