"""The flag channel's backends, one write at a time: what a write keeps (the rest of a ConfigMap, a
file's mode, owner and symlink, an Unleash strategy's variants and constraints), what two writers
sharing a document get (every write kept), and each store's own failures (a lock held too long, a path
the worker cannot use, S3 AccessDenied, a ConfigMap deleted meanwhile, a disabled Unleash strategy).
The flagd document itself (targeting, text, parsing) is test_flag_stores.py."""

from __future__ import annotations

import base64
import json

from models.flags import FlagChannel
from tests.test_flag_stores import CHECKOUT, DOCUMENT, _attempt, flagd_file


def test_a_configmap_write_keeps_the_rest_of_the_configmap(local_cluster, kube_api, unique):
    """Only the flags key changes: other data keys, binaryData, labels and annotations survive."""
    from kubernetes import client as k8s

    from activities.targets.flag.configmap import ConfigMapBackend
    from activities.targets.flag.store import FlagdStore
    from activities.targets.kubernetes.client import KubeClients

    namespace = f"flagcm-{unique}"
    core = k8s.CoreV1Api(kube_api)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    logo = base64.b64encode(b"\x89PNG\x00\xff").decode()
    core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="flagd", labels={"app": "checkout"}, annotations={"owner": "team-pay"}),
        data={"flags.json": json.dumps(DOCUMENT), "other.yaml": "a: 1\n"}, binary_data={"logo.png": logo}))
    channel = FlagChannel(config_map={"namespace": namespace, "name": "flagd"}, flag="new-checkout")
    clients = KubeClients(str(local_cluster.kubeconfig))
    try:
        FlagdStore(ConfigMapBackend(clients)).write(channel, "on", 500)
    finally:
        clients.close()
    after = core.read_namespaced_config_map("flagd", namespace)
    assert after.data["other.yaml"] == "a: 1\n"
    assert after.binary_data == {"logo.png": logo}
    assert after.metadata.labels == {"app": "checkout"}
    assert after.metadata.annotations == {"owner": "team-pay"}
    targeting = json.loads(after.data["flags.json"])["flags"]["new-checkout"]["targeting"]
    assert targeting == {"fractional": [["on", 500], ["off", 9500]]}



def test_two_releases_sharing_a_flags_file_lose_no_write(tmp_path):
    """Two writers (the README's layout: two Releases, two flags, one file), each write read-modify-write
    with a pause between read and write: every one of the 40 writes is in the file at the end."""
    import threading
    import time

    from temporalio.exceptions import ApplicationError

    from activities.targets.flag.file import FileBackend
    from activities.targets.flag.store import FlagdStore

    class Slow(FileBackend):
        def load(self, channel):
            loaded = super().load(channel)
            time.sleep(0.003)  # another writer gets in here
            return loaded

    path = tmp_path / "flags.json"
    store = FlagdStore(Slow())

    def writer(prefix: str) -> None:
        for n in range(20):
            channel = FlagChannel(file=str(path), flag=f"{prefix}-{n}")
            while True:  # what the activity's retry policy does with a conflict
                try:
                    store.write(channel, "on", 100 * (n + 1))
                    break
                except ApplicationError as error:
                    assert error.type == "FlagStoreConflict", error

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    flags = json.loads(path.read_text())["flags"]
    assert sorted(flags) == sorted(f"{p}-{n}" for p in "ab" for n in range(20)), f"{40 - len(flags)} writes lost"



def test_a_file_write_keeps_its_mode_and_symlink(tmp_path):
    import os
    import stat

    real = tmp_path / "real" / "flags.json"
    real.parent.mkdir()
    real.write_text(json.dumps(DOCUMENT))
    real.chmod(0o640)
    link = tmp_path / "flags.json"
    link.symlink_to(real)
    from activities.targets.flag.file import FileBackend
    from activities.targets.flag.store import FlagdStore

    FlagdStore(FileBackend()).write(FlagChannel(file=str(link), flag="new-checkout"), "on", 500)
    assert link.is_symlink() and os.path.realpath(link) == str(real)
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert json.loads(real.read_text())["flags"]["new-checkout"]["targeting"]["fractional"][0] == ["on", 500]



def unleash_store(monkeypatch, strategies: list[dict], enabled: bool = True, **where):
    import httpx

    from activities.targets.flag.unleash import UnleashStore
    from localcluster.unleash import UnleashStandIn

    unleash = UnleashStandIn(admin_token="admin-secret", client_token="client-secret").start()
    unleash.add_feature("new-checkout", strategies=strategies, enabled=enabled)
    monkeypatch.setenv("DURABLE_ROLLOUTS_UNLEASH_TOKEN", "admin-secret")
    channel = FlagChannel(unleash={"url": unleash.url, **where}, flag="new-checkout")
    return unleash, UnleashStore(httpx.Client()), channel



EU_ONLY = {"name": "flexibleRollout", "title": "eu-beta", "parameters": {"rollout": "100", "stickiness": "default",
                                                                       "groupId": "eu"},
           "constraints": [{"contextName": "region", "operator": "IN", "values": ["eu"]}]}


RELEASE = {"name": "flexibleRollout", "title": "release",
           "parameters": {"rollout": "1", "stickiness": "userId", "groupId": "new-checkout"},
           "constraints": [{"contextName": "appName", "operator": "IN", "values": ["checkout"]}],
           "variants": [{"name": "blue", "weight": 1000, "weightType": "variable", "stickiness": "default",
                         "payload": {"type": "string", "value": "b"}}]}



def test_an_unleash_write_keeps_the_strategys_variants_and_constraints(monkeypatch):
    unleash, store, channel = unleash_store(monkeypatch, [EU_ONLY, RELEASE], strategy="release")
    try:
        assert store.read(channel, "on").basis_points == 100
        store.write(channel, "on", 1000)
        eu, release = unleash.strategies("new-checkout")
    finally:
        unleash.stop()
    assert release["parameters"] == {**RELEASE["parameters"], "rollout": "10"}
    assert (release["variants"], release["constraints"]) == (RELEASE["variants"], RELEASE["constraints"])
    assert {k: eu[k] for k in EU_ONLY} == EU_ONLY, "the other strategy untouched"
    assert unleash.refused == [] and ("PATCH" in {m for m, _ in unleash.calls})



def test_unleash_refuses_what_it_cannot_ramp_naming_why(monkeypatch):
    from temporalio.exceptions import ApplicationError

    for why, strategies, enabled in (("name the one to ramp", [EU_ONLY, RELEASE], True),
                                     ("environment is disabled", [RELEASE], False)):
        unleash, store, channel = unleash_store(monkeypatch, strategies, enabled)
        try:
            for method, share in (("write", 1000), ("read", [1000, 10_000])):
                try:
                    getattr(store, method)(channel, "on", share)
                    raise AssertionError(f"written or planned ({why})")
                except ApplicationError as error:
                    assert why in str(error) and error.non_retryable
            assert [s["parameters"]["rollout"] for s in unleash.strategies("new-checkout")] == [
                s["parameters"]["rollout"] for s in strategies]
        finally:
            unleash.stop()



def test_an_s3_key_answered_403_is_missing_only_where_configured():
    """Without s3:ListBucket, S3 answers a missing key 403: with deniedIsMissing the document is new
    (written with If-None-Match: *), without it the 403 is a permanent error naming AccessDenied."""
    from botocore.exceptions import ClientError
    from temporalio.exceptions import ApplicationError

    from activities.targets.flag.s3object import S3ObjectBackend
    from activities.targets.flag.store import FlagdStore

    class NoListBucket:
        def __init__(self) -> None:
            self.puts: list[dict] = []

        def get_object(self, **_):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

        def put_object(self, **request):
            self.puts.append(request)

    s3 = NoListBucket()
    store = FlagdStore(S3ObjectBackend(lambda o: s3))
    where = {"bucket": "flags", "key": "flagd/flags.json"}
    store.write(FlagChannel(s3={**where, "deniedIsMissing": True}, flag="new-checkout"), "on", 500)
    assert [put["IfNoneMatch"] for put in s3.puts] == ["*"]
    try:
        store.write(FlagChannel(s3=where, flag="new-checkout"), "on", 500)
        raise AssertionError("written")
    except ApplicationError as error:
        assert "AccessDenied" in str(error) and error.non_retryable



def test_a_disabled_unleash_strategy_serves_nobody(monkeypatch):
    """Unleash does not serve a `disabled: true` strategy to SDKs: its share reads 0, raising it is
    refused naming why (lowering it is written), and the stand-in does not serve it either."""
    from temporalio.exceptions import ApplicationError

    unleash, store, channel = unleash_store(monkeypatch, [{**RELEASE, "disabled": True}])
    try:
        assert store.read(channel, "on").basis_points == 0
        try:
            store.write(channel, "on", 1000)
            raise AssertionError("written")
        except ApplicationError as error:
            assert "strategy is disabled" in str(error) and error.non_retryable
        store.write(channel, "on", 0)
        assert unleash.rollout("new-checkout") == "0"
        served = unleash._client_features()["features"][0]
        assert served["strategies"] == [] and served["enabled"] is False
    finally:
        unleash.stop()



def test_a_file_write_keeps_its_owner_and_waits_for_the_lock_only_so_long(tmp_path, monkeypatch):
    """The owner survives the rename (fchown of the new content); a lock held elsewhere is waited for
    with a deadline, then the write is refused retryably; a temporary file a crash left is removed."""
    import fcntl
    import os
    import threading
    import time

    from temporalio.exceptions import ApplicationError

    from activities.targets.flag import file as file_backend

    path, store, channel = flagd_file(tmp_path, {"new-checkout": CHECKOUT})
    os.chown(path, 4321, 4322)
    stale = tmp_path / ".flags.json.crashed.flagtmp"
    stale.write_text("half a write")
    os.utime(stale, (time.time() - 120, time.time() - 120))
    store.write(channel, "on", 500)
    assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4322)
    assert not stale.exists(), "a crash's leftover removed"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".flagtmp")] == []

    monkeypatch.setattr(file_backend, "LOCK_WAIT", 0.5)
    outcome: list[object] = []
    with open(tmp_path / ".flags.json.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        writer = threading.Thread(target=lambda: outcome.append(_attempt(store, channel, 1000)), daemon=True)
        writer.start()
        writer.join(5)
        fcntl.flock(held, fcntl.LOCK_UN)
    assert not writer.is_alive(), "waited for the lock past its deadline"
    assert isinstance(outcome[0], ApplicationError) and outcome[0].type == "FlagStoreConflict", outcome



def test_a_file_the_worker_cannot_use_is_a_permanent_error_naming_it(tmp_path):
    """A directory where the file should be, a symlinked lock file: refused, non-retryable, named."""
    import os

    from activities.targets.flag.file import FileBackend
    from activities.targets.flag.store import FlagdStore

    store = FlagdStore(FileBackend())
    (tmp_path / "dir.json").mkdir()
    error = _attempt(store, FlagChannel(file=str(tmp_path / "dir.json"), flag="new-checkout"), 500)
    assert error.non_retryable and "dir.json" in str(error), error
    path, store, channel = flagd_file(tmp_path, {"new-checkout": CHECKOUT})
    os.symlink(tmp_path / "elsewhere", tmp_path / ".flags.json.lock")
    error = _attempt(store, channel, 500)
    assert error.non_retryable and ".flags.json.lock" in str(error), error
    assert not (tmp_path / "elsewhere").exists()



def test_an_s3_object_denied_but_there_is_a_permanent_error_naming_access_denied():
    """deniedIsMissing, but GET was denied for another reason and the object exists: the PUT with
    If-None-Match: * answers 412 — permanent, naming AccessDenied (was a conflict retried for 30 minutes)."""
    from botocore.exceptions import ClientError
    from temporalio.exceptions import ApplicationError

    from activities.targets.flag.s3object import S3ObjectBackend
    from activities.targets.flag.store import FlagdStore

    class DeniedButThere:
        def get_object(self, **_):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

        def put_object(self, **_):
            raise ClientError({"Error": {"Code": "PreconditionFailed", "Message": "At least one"}}, "PutObject")

    store = FlagdStore(S3ObjectBackend(lambda o: DeniedButThere()))
    channel = FlagChannel(s3={"bucket": "flags", "key": "flagd/flags.json", "deniedIsMissing": True}, flag="new-checkout")
    error = _attempt(store, channel, 500)
    assert isinstance(error, ApplicationError) and error.non_retryable and "AccessDenied" in str(error), error



def test_a_configmap_deleted_meanwhile_is_a_conflict_and_a_binary_key_is_refused():
    """A PATCH answered 404 (the ConfigMap deleted since it was read) is the retryable conflict (read
    again: created); a flags key held in binaryData is refused, naming it (was read as absent)."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException
    from temporalio.exceptions import ApplicationError

    from activities.targets.flag.configmap import ConfigMapBackend

    class Core:
        def __init__(self, found):
            self.found = found

        def read_namespaced_config_map(self, name, namespace):
            return self.found

        def patch_namespaced_config_map(self, *_, **__):
            raise ApiException(status=404, reason="Not Found")

    class Clients:
        def __init__(self, found):
            self.found = found

        def core(self, context):
            return Core(self.found)

    channel = FlagChannel(config_map={"namespace": "shop", "name": "flagd"}, flag="new-checkout")
    there = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(resource_version="7"), data={"flags.json": json.dumps(DOCUMENT)})
    backend = ConfigMapBackend(Clients(there))
    data, token = backend.load(channel)
    try:
        backend.save(channel, data, token)
        raise AssertionError("saved")
    except ApplicationError as error:
        assert error.type == "FlagStoreConflict" and not error.non_retryable, error
    binary = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(resource_version="7"), binary_data={"flags.json": "e30="})
    try:
        ConfigMapBackend(Clients(binary)).load(channel)
        raise AssertionError("loaded")
    except ApplicationError as error:
        assert error.non_retryable and "binaryData" in str(error), error


def test_an_unleash_rollout_not_a_percent_is_refused_naming_it(monkeypatch):
    from temporalio.exceptions import ApplicationError

    unleash, store, channel = unleash_store(monkeypatch, [{**RELEASE, "parameters": {"rollout": "ten"}}])
    try:
        error = _attempt(store, channel, 1000)
        assert isinstance(error, ApplicationError) and error.non_retryable and "'ten'" in str(error), error
    finally:
        unleash.stop()
