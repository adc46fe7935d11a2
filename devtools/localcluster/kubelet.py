"""A fake kubelet: registers one Ready node, binds pending pods to it (a DaemonSet's pod to the node its
required node affinity names), gives them pod IPs (so the real endpoints controller fills Service
endpoints) and marks them Running, then Ready after a delay. It runs the pods of every node named
`fake-node-…` (more are made by `localcluster.workload.add_nodes`, labelled and zoned as a test wants).
Images declared `ready: never` stay unready; `ready: crashloop` show CrashLoopBackOff. Pods being
deleted are confirmed at once (no containers to stop). Nothing is ever run and no IP is contacted.

    python -m localcluster.kubelet --kubeconfig FILE [--ready-delay SECONDS]
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import itertools
import logging
import queue
import threading
import time
from datetime import UTC, datetime

from kubernetes import client, config, watch

from localcluster.behaviour import Behaviours

NODE = "fake-node-1"
PREFIX = "fake-node-"  # the nodes this kubelet runs pods on
MERGE = "application/strategic-merge-patch+json"  # the client would send a dict as json-patch
log = logging.getLogger("fake-kubelet")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")



def image_id(image: str) -> str:
    """The runtime's imageID for a reference: its repository at the digest pulled — the pinned one when
    the reference has a digest; for a tag, one derived from the reference (no registry is asked here)."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    repository = name[:slash + 1] + name[slash + 1:].split(":")[0]
    return f"{repository}@{digest or 'sha256:' + hashlib.sha256(image.encode()).hexdigest()}"

def _node_for(pod: client.V1Pod) -> str:
    """The node a DaemonSet's pod must run on (its required affinity's `metadata.name In [node]`, as the
    DaemonSet controller writes it), else this kubelet's own."""
    affinity = pod.spec.affinity.node_affinity if pod.spec.affinity and pod.spec.affinity.node_affinity else None
    required = affinity.required_during_scheduling_ignored_during_execution if affinity else None
    for term in (required.node_selector_terms if required else None) or []:
        for field in term.match_fields or []:
            if field.key == "metadata.name" and field.operator == "In" and field.values and \
                    field.values[0].startswith(PREFIX):
                return field.values[0]
    return NODE


class FakeKubelet:
    def __init__(self, core: client.CoreV1Api, ready_delay: float):
        self.core = core
        self.ready_delay = ready_delay
        self.behaviours = Behaviours(core, max_age=0)
        self.events: queue.Queue = queue.Queue()
        self.timers: list[tuple[float, int, str, str]] = []  # (when, seq, namespace, name)
        self.seq = itertools.count()
        self.ips: dict[str, str] = {}  # pod uid -> ip
        self.next_ip = itertools.count(1)
        self.started: set[str] = set()  # uids already given an IP and Running

    # ---- node -------------------------------------------------------------------------------------

    def register_node(self) -> None:
        node = client.V1Node(metadata=client.V1ObjectMeta(name=NODE, labels={"kubernetes.io/hostname": NODE}))
        try:
            self.core.create_node(node)
        except client.ApiException as error:
            if error.status != 409:
                raise
        self.heartbeat()

    def heartbeat(self) -> None:
        now = _now()
        status = {
            "status": {
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "2000"},
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "2000"},
                "addresses": [{"type": "InternalIP", "address": "10.240.0.1"}, {"type": "Hostname", "address": NODE}],
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "fake kubelet",
                     "lastHeartbeatTime": now, "lastTransitionTime": now}
                ],
                "nodeInfo": {"kubeletVersion": "v1.20.2-fake", "architecture": "amd64", "operatingSystem": "linux",
                             "containerRuntimeVersion": "fake://0", "kernelVersion": "", "osImage": "fake",
                             "kubeProxyVersion": "", "bootID": "", "machineID": "", "systemUUID": ""},
            }
        }
        self.core.patch_node_status(NODE, status, _content_type=MERGE)

    # ---- pods -------------------------------------------------------------------------------------

    def watch_pods(self) -> None:
        """Feed pod events into the queue, relisting after any watch error so nothing is missed."""
        while True:
            try:
                pods = self.core.list_pod_for_all_namespaces()
                for pod in pods.items:
                    self.events.put(pod)
                stream = watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces,
                    resource_version=pods.metadata.resource_version,
                    timeout_seconds=120,
                )
                for event in stream:
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self.events.put(event["object"])
            except Exception as error:  # noqa: BLE001 - a watch must never die
                log.warning("pod watch restarts: %s", error)
                time.sleep(1)

    def handle(self, pod: client.V1Pod) -> None:
        meta = pod.metadata
        if meta.deletion_timestamp is not None:
            self._confirm_deletion(pod)
        elif not pod.spec.node_name:
            self._bind(pod)
        elif pod.spec.node_name.startswith(PREFIX) and meta.uid not in self.started and pod.status.phase == "Pending":
            self._start(pod)

    def _confirm_deletion(self, pod: client.V1Pod) -> None:
        try:
            # The body's gracePeriodSeconds is what counts (a query parameter beside a body is ignored).
            options = client.V1DeleteOptions(
                grace_period_seconds=0, preconditions=client.V1Preconditions(uid=pod.metadata.uid)
            )
            self.core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, body=options)
        except client.ApiException as error:
            if error.status not in (404, 409):
                raise
        self.started.discard(pod.metadata.uid)
        self.ips.pop(pod.metadata.uid, None)

    def _bind(self, pod: client.V1Pod) -> None:
        body = client.V1Binding(
            metadata=client.V1ObjectMeta(name=pod.metadata.name),
            target=client.V1ObjectReference(api_version="v1", kind="Node", name=_node_for(pod)),
        )
        try:
            # The generated client fails to deserialize the Status that binding returns: ignore it.
            self.core.create_namespaced_binding(pod.metadata.namespace, body, _preload_content=False)
        except client.ApiException as error:
            if error.status not in (404, 409):
                raise

    def _start(self, pod: client.V1Pod) -> None:
        uid = pod.metadata.uid
        n = next(self.next_ip)
        ip = self.ips.setdefault(uid, f"10.244.{(n // 250) % 250}.{n % 250 + 1}")
        image = pod.spec.containers[0].image
        behaviour = self.behaviours.for_image(image)
        crashing = behaviour.ready == "crashloop"
        self._set_status(pod, ip, ready=False, crashing=crashing)
        self.started.add(uid)
        if behaviour.ready == "yes":
            delay = behaviour.ready_delay_seconds if behaviour.ready_delay_seconds is not None else self.ready_delay
            heapq.heappush(self.timers, (time.monotonic() + delay, next(self.seq), pod.metadata.namespace,
                                         pod.metadata.name))

    def _make_ready(self, namespace: str, name: str) -> None:
        try:
            pod = self.core.read_namespaced_pod(name, namespace)
        except client.ApiException as error:
            if error.status == 404:
                return
            raise
        if pod.metadata.deletion_timestamp is None and pod.metadata.uid in self.ips:
            self._set_status(pod, self.ips[pod.metadata.uid], ready=True, crashing=False)

    def _set_status(self, pod: client.V1Pod, ip: str, ready: bool, crashing: bool) -> None:
        """As a kubelet reports a pod: its conditions and, per container, the image and the `imageID` the
        runtime pulled (`repository@digest`, as containerd and Docker report it)."""
        now = _now()
        flag = "True" if ready else "False"
        if crashing:
            state = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}}
        else:
            state = {"running": {"startedAt": now}}
        status = {
            "status": {
                "phase": "Running",
                "hostIP": "10.240.0.1",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "startTime": now,
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
                    {"type": "Ready", "status": flag, "lastTransitionTime": now},
                ],
                "containerStatuses": [
                    {"name": c.name, "image": c.image, "imageID": image_id(c.image), "ready": ready,
                     "restartCount": 3 if crashing else 0, "started": not crashing, "state": state}
                    for c in pod.spec.containers
                ],
            }
        }
        try:
            self.core.patch_namespaced_pod_status(
                pod.metadata.name, pod.metadata.namespace, status, _content_type=MERGE
            )
        except client.ApiException as error:
            if error.status != 404:
                raise

    # ---- loop -------------------------------------------------------------------------------------

    def run(self) -> None:
        self.register_node()
        threading.Thread(target=self.watch_pods, daemon=True).start()
        next_heartbeat = time.monotonic() + 20
        while True:
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, namespace, name = heapq.heappop(self.timers)
                self._guard(self._make_ready, namespace, name)
            if now >= next_heartbeat:
                self._guard(self.heartbeat)
                next_heartbeat = now + 20
            wait = min([t[0] for t in self.timers[:1]] + [next_heartbeat]) - now
            try:
                pod = self.events.get(timeout=max(0.01, min(wait, 1.0)))
            except queue.Empty:
                continue
            self._guard(self.handle, pod)

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as error:  # noqa: BLE001 - one bad pod must not stop the kubelet
            log.warning("%s failed: %s", fn.__name__, error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--ready-delay", type=float, default=1.0, help="seconds from Running to Ready")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    core = client.CoreV1Api(config.new_client_from_config(args.kubeconfig))
    FakeKubelet(core, args.ready_delay).run()


if __name__ == "__main__":
    main()
