"""Every file in `examples/` runs on the local cluster: the demo's preparation (devtools/localcluster/examples.py)
makes what the example refers to — its Deployment, Services and router objects — and the engine's own
first step accepts it: the canary's or blue-green's prepare activity (which refuses a missing or
mis-routed router object naming it) on the real API server, then its abort puts everything back; a
rolling update's or recreate's target is observed on the previous version, ready."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from temporalio.testing import ActivityEnvironment

from activities.targets.kubernetes.bluegreen import BlueGreenActivities
from activities.targets.kubernetes.canary import CanaryActivities
from activities.targets.kubernetes.client import KubeClients
from activities.targets.kubernetes.observe import ObserveActivities
from localcluster.examples import prepare, previous_version
from models.kubernetes import BlueGreenInput, FinishInput, PrepareCanaryInput
from models.spec import parse_rollout

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def clients(local_cluster):
    clients = KubeClients(str(local_cluster.kubeconfig))
    yield clients
    clients.close()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_is_prepared_and_accepted_by_the_engine(path, kube_api, clients, unique):
    document = yaml.safe_load(path.read_text())
    document["spec"]["target"]["kubernetes"]["namespace"] = f"ex-{unique}"  # each example in a namespace of its own
    rollout = parse_rollout(document, str(path))
    prepared = prepare(kube_api, rollout)
    assert prepared.stable_image == previous_version(rollout.spec.image) != rollout.spec.image
    spec, st, env = rollout.spec, rollout.spec.strategy, ActivityEnvironment()
    t = spec.target.kubernetes
    chosen = st.canary or (st.ab_test.as_canary() if st.ab_test else None)
    if chosen is not None:
        fields = dict(rollout_id=rollout.rollout_id, target=t, image=spec.image, stable_service=chosen.stable_service,
                      canary_service=chosen.canary_service, progress_deadline_seconds=120,
                      traffic_routing=chosen.traffic_routing)
        canary = CanaryActivities(clients)
        result = env.run(canary.prepare_canary, PrepareCanaryInput(**fields))
        assert (result.total_replicas, result.stable_image) == (5, prepared.stable_image)
        env.run(canary.abort_canary, FinishInput(**fields, container=result.container, total_replicas=5))
    elif st.blue_green is not None:
        bg = st.blue_green
        request = BlueGreenInput(rollout_id=rollout.rollout_id, target=t, image=spec.image, active_service=bg.active_service,
                                 preview_service=bg.preview_service, progress_deadline_seconds=120,
                                 traffic_routing=bg.traffic_routing if bg.gradual_shift else None)
        blue_green = BlueGreenActivities(clients)
        result = env.run(blue_green.prepare_blue_green, request)
        assert (result.total_replicas, result.stable_image) == (5, prepared.stable_image)
        env.run(blue_green.abort_blue_green, request.model_copy(update={"stable_hash": result.stable_hash,
                                                                        "total_replicas": 5,
                                                                        "container": result.container}))
    seen = env.run(ObserveActivities(clients).observe_kubernetes_target, t)
    assert (seen.version, seen.ready) == (prepared.stable_image, True), seen
    again = prepare(kube_api, rollout)  # a second demo run starts from the same objects
    assert again == prepared
