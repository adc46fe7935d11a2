"""A Compose-host rolling update and canary through worker kills (every container made and removed once, by
the engine's own events; every proxy change once, by the runtime API's own log), and the documents and
hosts files that must be refused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from models.spec import parse_rollout
from models.status import Phase
from starters.commands import start_workflow
from tests.compose.helpers import REPO, Events, compose_document, containers, hosts_env, hosts_file, replay
from tests.helpers import finished


async def killed(document: dict, points: list[dict], env: dict[str, str], compose, docker_host, dev_server,
                 dev_client, release_worker_processes, tmp_path, arm=None):
    """`document` run by a worker killed at `points` and restarted by a supervisor, the engine's events recorded:
    (the final status, the events, the kills, the restarts). `arm(supervisor)`: before the start, for a test
    that kills the worker itself."""
    from localcluster.faults import read_journal
    from tests.matrix import Supervisor
    from tests.test_matrix import kill_plan

    plan, journal = kill_plan(tmp_path, points)
    events = Events(docker_host, compose.project)
    queue = f"compose-kill-{compose.project}"
    supervisor = Supervisor(release_worker_processes, dev_server.address, queue, env={**env, **plan})
    if arm is not None:
        arm(supervisor)
    try:
        final = await finished(await start_workflow(dev_client, parse_rollout(document), queue, "test"), 240)
    finally:
        await supervisor.stop()
    return final, events.close(), read_journal(journal), supervisor.restarts


async def test_a_worker_killed_during_a_rolling_update_makes_and_removes_each_container_once(
        compose, docker_host, dev_server, dev_client, release_worker_processes, unique, tmp_path):
    """SIGKILL 2.5 s into the update (a container made, its health pending): the retried attempt adopts what
    the killed one made. (A kill after an activity returned, before the server heard: the canary's cell below.)"""
    old_image = docker_host.service_image("shop/web", "1.0.0")
    new_image = docker_host.service_image("shop/web", "4.0.0-slow", behaviour="slow")  # a wait to be killed in
    compose.up(old_image)
    before = {c["Name"].lstrip("/") for c in containers(docker_host, compose.project)}
    final, seen, kills, restarts = await killed(
        compose_document(f"kill-{unique}", compose.project, new_image, deadline=120),
        [{"when": "during", "activities": ["roll_out_compose"], "seconds": 2.5}], hosts_env(tmp_path, docker_host, projects=[compose.project]),
        compose, docker_host, dev_server, dev_client, release_worker_processes, tmp_path)
    assert final.phase is Phase.HEALTHY, final.message
    assert len(kills) == 1 and restarts == 1, (kills, restarts)
    actions = [a for a, _, _ in seen]
    assert actions.count("create") == 3 and actions.count("destroy") == 3, seen
    assert actions.count("start") == 3, seen
    most, fewest = replay(seen, before)
    assert most <= 4 and fewest >= 3, (most, fewest, seen)
    after = containers(docker_host, compose.project)
    assert [c["Config"]["Image"] for c in after] == [new_image] * 3


async def test_a_worker_killed_between_a_containers_creation_and_its_start_adopts_the_container(
        compose, docker_host, dev_server, dev_client, release_worker_processes, unique, tmp_path):
    """The engine's socket behind a relay that SIGKILLs the worker as it asks the engine to start its first new
    container, and drops that request: the container is made, never started, its maker dead. The next
    worker's attempt finds it by label and starts it: three made, three started, none doubled."""
    old_image, new_image = docker_host.service_image("shop/web", "1.0.0"), docker_host.service_image("shop/web", "2.0.0")
    compose.up(old_image)
    before = {c["Name"].lstrip("/") for c in containers(docker_host, compose.project)}
    cut = KillingRelay(str(docker_host.socket), r"POST /v[\d.]+/containers/(\w+)/start")
    hosts = tmp_path / "docker-hosts.yaml"
    hosts.write_text(yaml.safe_dump({"hosts": {"web-1": {"engine": f"unix://{cut.path}", "projects": [compose.project]}}}))
    final, seen, _, restarts = await killed(
        compose_document(f"cs-{unique}", compose.project, new_image, deadline=120), [],
        {"ROLLOUT_DOCKER_HOSTS": str(hosts)}, compose, docker_host, dev_server, dev_client, release_worker_processes,
        tmp_path, arm=cut.arm)
    cut.close()
    assert final.phase is Phase.HEALTHY, final.message
    assert len(cut.killed) == 1 and restarts == 1, (cut.killed, restarts)
    actions = [a for a, _, _ in seen]
    assert actions.count("create") == 3 and actions.count("start") == 3 and actions.count("destroy") == 3, seen
    after = containers(docker_host, compose.project)
    assert [c["Config"]["Image"] for c in after] == [new_image] * 3
    assert any(c["Id"].startswith(cut.killed[0].group(1)) for c in after), "the orphan was adopted, not replaced"
    assert not before & {c["Name"].lstrip("/") for c in after}


def test_documents_a_compose_host_cannot_roll_are_refused_naming_the_field(tmp_path):
    from models.documents import SpecError

    def refused(change) -> str:
        document = compose_document("bad", "shop", "shop/web:2")
        change(document["spec"])
        with pytest.raises(SpecError) as error:
            parse_rollout(document)
        assert len(error.value.problems) == 1, error.value.problems
        return error.value.problems[0]

    document = compose_document("bad", "shop", "shop/web:2")  # from the CLI: one line, exit 2
    document["spec"]["target"]["composeHost"]["compose"]["services"]["web"]["environment"] = {"DB": "${DB_URL}"}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(document))
    result = subprocess.run([sys.executable, "-m", "starters.cli", "validate", "-f", str(tmp_path / "bad.yaml")],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "spec.target.composeHost.compose.services.web.environment.DB: a variable" in result.stderr

    def web(spec) -> dict:
        return spec["target"]["composeHost"]["compose"]["services"]["web"]

    assert "compose.services.web.environment" in refused(lambda s: web(s).update(environment={"DB": "${DB_URL}"}))
    assert "compose.services.web.extends" in refused(lambda s: web(s).update(extends={"service": "base"}))
    assert "compose.services.web.ports" in refused(lambda s: web(s).update(ports=["8080:8080"]))
    assert "compose.services.web.container_name" in refused(lambda s: web(s).update(container_name="web"))
    assert "compose.services.web.deploy.resources" in refused(lambda s: web(s)["deploy"].update(resources={}))
    assert "compose.services.web.healthcheck.retries" in refused(lambda s: web(s).update(healthcheck={"retries": "x"}))
    assert "healthcheck.interval" in refused(lambda s: web(s).update(healthcheck={"interval": "soon"}))
    assert "deploy.replicas" in refused(lambda s: web(s)["deploy"].update(replicas="3"))
    assert "compose.services.web.restart" in refused(lambda s: web(s).update(restart="sometimes"))
    assert "target.composeHost.service" in refused(lambda s: s["target"]["composeHost"].update(service="api"))
    assert "target.composeHost.project" in refused(lambda s: s["target"]["composeHost"].update(project="Shop"))
    assert "target.composeHost.host" in refused(lambda s: s["target"]["composeHost"].update(host="../etc"))
    with_proxy = {"backend": "web", "port": 8080}
    assert "target.composeHost.proxy" in refused(lambda s: s.update(strategy={"canary": {"steps": [{"setWeight": 10}]}}))
    assert "target.composeHost.proxy" in refused(lambda s: s.update(strategy={"blueGreen": {}}))
    assert "strategy.abTest" in refused(lambda s: (s["target"]["composeHost"].update(proxy=with_proxy), s.update(
        strategy={"abTest": {"audience": [{"headerName": "x", "headerValue": {"exact": "1"}}]}})))
    assert "setHeaderRoute" in refused(lambda s: (s["target"]["composeHost"].update(proxy=with_proxy), s.update(
        strategy={"canary": {"steps": [{"setHeaderRoute": {"name": "h", "match": [
            {"headerName": "x", "headerValue": {"exact": "1"}}]}}]}})))
    assert "proxy.backend" in refused(lambda s: s["target"]["composeHost"].update(
        proxy={"backend": "web; del server", "port": 8080}))
    assert "rollbackWindow" in refused(lambda s: s.update(rollbackWindow={"duration": "10m"}))
    ok = compose_document("ok", "shop", "shop/web:2")
    web(ok["spec"]).update(environment={"PRICE": "$$5"}, command="httpd -f")  # a literal dollar
    assert parse_rollout(ok).spec.target.compose_host.replicas() == 3


def test_the_worker_refuses_hosts_it_does_not_know_and_engines_on_plain_tcp(tmp_path):
    from temporalio.exceptions import ApplicationError

    from activities.docker import DockerHosts

    path = tmp_path / "hosts.yaml"
    path.write_text(yaml.safe_dump({"hosts": {"web-1": {"engine": "unix:///nowhere.sock", "projects": ["*"]}}}))
    with pytest.raises(ApplicationError, match="'web-9' is not one of this worker's.*web-1") as refused:
        DockerHosts(str(path)).client("web-9")
    assert refused.value.non_retryable and refused.value.type == "InvalidTarget"
    path.write_text(yaml.safe_dump({"hosts": {"web-1": {"engine": "tcp://10.0.0.1:2375", "projects": ["*"]}}}))
    with pytest.raises(ApplicationError, match="hosts.web-1.tls: an engine on tcp:// needs tls"):
        DockerHosts(str(path)).client("web-1")
    with pytest.raises(ApplicationError, match="no Docker hosts: set ROLLOUT_DOCKER_HOSTS"):
        DockerHosts("").client("web-1")
    for entry, problem in (({}, "hosts.web-1.projects: a list of names"),
                           ({"projects": "shop"}, "hosts.web-1.projects: a list"),
                           ({"projects": ["shop"], "haproxy": "tcp://127.0.0.1:9999"}, "hosts.web-1.backends: a list"),
                           ({"projects": ["shop"], "networks": []}, "hosts.web-1.networks: a list")):
        path.write_text(yaml.safe_dump({"hosts": {"web-1": {"engine": "unix:///nowhere.sock", **entry}}}))
        with pytest.raises(ApplicationError, match=problem):
            DockerHosts(str(path)).client("web-1")


def test_a_document_reaches_only_the_projects_backends_and_networks_its_host_allows(docker_host, tmp_path, unique):
    """A document naming another team's project, weighting another service's backend, or joining another
    project's network (by `name:` or as `external`) is refused, naming the hosts file's key, before the
    engine or the proxy is asked to change anything; what the host's entry lists is allowed."""
    from temporalio.exceptions import ApplicationError

    from activities.docker import DockerHosts
    from activities.targets.compose.allowed import engine_for, proxy_for

    mine = f"shop{unique}".lower()
    path = hosts_file(tmp_path / "hosts.yaml", docker_host, projects=[mine])

    def target(project: str = mine, networks: dict | None = None, joins: list | None = None, **extra):
        document = compose_document("allowed", project, "shop/web:2", **extra)
        block = document["spec"]["target"]["composeHost"]
        if networks:
            block["compose"]["networks"] = networks
            block["compose"]["services"]["web"]["networks"] = joins
        return parse_rollout(document).spec.target.compose_host

    def refused(call, t) -> str:
        with pytest.raises(ApplicationError) as error:
            call(DockerHosts(str(path)), t)
        assert error.value.non_retryable and error.value.type == "InvalidTarget"
        return error.value.message

    assert "project billing is not one this worker rolls on web-1 (ROLLOUT_DOCKER_HOSTS: hosts.web-1.projects)" \
        in refused(engine_for, target("billing"))
    assert "backend payments is not one this worker weights on web-1 (ROLLOUT_DOCKER_HOSTS: hosts.web-1.backends)" \
        in refused(proxy_for, target(proxy={"backend": "payments", "port": 8080}))
    assert proxy_for(DockerHosts(str(path)), target(proxy={"backend": "web", "port": 8080})) is not None
    client = docker_host.client()
    made = [client.networks.create(f"billing{unique}_default", labels={"com.docker.compose.project": "billing"}),
            client.networks.create(f"edge{unique}"),
            client.networks.create(f"{mine}_x_default", labels={"com.docker.compose.project": f"{mine}_x",
                                                               "com.docker.compose.network": "default"})]
    try:
        for named in ({"db": {"name": f"billing{unique}_default"}}, {"db": {"name": f"db{unique}_default"}},  # none yet
                      {"db": {"name": made[0].id}}):  # the engine also finds a network by its ID
            assert f"network {named['db']['name']} is not a network Compose makes for project {mine}: joining it " \
                "needs it in ROLLOUT_DOCKER_HOSTS: hosts.web-1.networks" in refused(engine_for, target(
                    networks=named, joins=["db"]))
        assert f"network {mine}_x_default is not the project's (it belongs to {mine}_x, as default)" in refused(
            engine_for, target(networks={"x_default": {}}, joins=["x_default"]))  # project shop_x's network
        edge = {f"edge{unique}": {"external": True}}
        assert f"network edge{unique} is not a network Compose makes" in refused(
            engine_for, target(networks=edge, joins=[f"edge{unique}"]))
        assert engine_for(DockerHosts(str(path)), target(networks={"own": {}}, joins=["own"])) is not None  # made later
        hosts_file(path, docker_host, projects=[mine])
        listed = yaml.safe_load(path.read_text())
        listed["hosts"]["web-1"]["networks"] = [f"edge{unique}"]
        path.write_text(yaml.safe_dump(listed))
        assert engine_for(DockerHosts(str(path)), target(networks=edge, joins=[f"edge{unique}"])) is not None
    finally:
        for network in made:
            network.remove()
        client.close()


CANARY_EFFECTS = ["prepare_compose_canary", "set_compose_routes", "promote_compose_canary"]


async def test_a_worker_killed_after_each_canary_change_changes_the_proxy_and_containers_once(
        compose, docker_host, dev_server, dev_client, release_worker_processes, unique, tmp_path):
    """SIGKILL after every activity that changes containers or the proxy (its effect done, its result not yet
    at the server): the runtime API's own log (a relay in front of it) and the engine's events show each
    server added, weighted, drained and deleted once, each container made and removed once."""
    compose.up(docker_host.service_image("shop/web", "1.0.0"))
    new_image = docker_host.service_image("shop/web", "2.0.0")
    hosts = hosts_file(tmp_path / "logged.yaml", docker_host, projects=[compose.project],
                       runtime=docker_host.logged_runtime())
    logged_before = len(docker_host.runtime_log())
    document = compose_document(f"ckill-{unique}", compose.project, new_image, deadline=120,
                                proxy={"backend": "web", "port": 8080}, strategy={"canary": {"steps": [
                                    {"setWeight": 25}, {"pause": {"duration": "1s"}}, {"setWeight": 50},
                                    {"setWeight": 100}]}})
    final, seen, kills, _ = await killed(
        document, [{"when": "after", "activities": CANARY_EFFECTS}], {"ROLLOUT_DOCKER_HOSTS": str(hosts)},
        compose, docker_host, dev_server, dev_client, release_worker_processes, tmp_path)
    assert final.phase is Phase.HEALTHY, final.message
    assert {k["activity"] for k in kills} == set(CANARY_EFFECTS), kills
    changes = [c for c in docker_host.runtime_log()[logged_before:] if not c.startswith("show ")]
    weights: dict[str, str] = {}
    for command in changes:
        words = command.split()
        server = words[2]  # "<verb> server <backend>/<name> …"
        if words[0] == "add":
            assert server not in weights, ("added twice", server, changes)
            weights[server] = words[-1]
        elif words[:2] == ["set", "server"] and words[3] == "weight":
            assert weights.get(server) != words[4], ("the same weight set twice", command, changes)
            weights[server] = words[4]
    for verb in ("add server", "enable server", "del server"):
        named = [c.split()[2] for c in changes if c.startswith(verb)]
        assert len(named) == len(set(named)), (verb, changes)
    assert len([c for c in changes if c.startswith("del server")]) == 3, changes  # the three stable ones
    actions = [a for a, _, _ in seen]
    assert actions.count("create") == 3 and actions.count("destroy") == 3, seen
    after = containers(docker_host, compose.project)
    assert [c["Config"]["Image"] for c in after] == [new_image] * 3


async def test_a_worker_killed_between_a_drain_and_its_del_server_deletes_it_after_the_restart(
        compose, docker_host, dev_server, dev_client, release_worker_processes, unique, tmp_path):
    """The runtime API behind a relay that SIGKILLs the worker as it sends its first `del server` (a stable
    server drained, not yet deleted) and drops it: the next worker deletes that server, once, and removes its
    container once; nothing of the new version is touched."""
    compose.up(docker_host.service_image("shop/web", "1.0.0"))
    new_image = docker_host.service_image("shop/web", "2.0.0")
    cut = KillingRelay(docker_host.runtime.removeprefix("unix://"), r".*del server (\S+)")
    hosts = hosts_file(tmp_path / "cut.yaml", docker_host, projects=[compose.project], runtime=f"unix://{cut.path}")
    document = compose_document(f"dkill-{unique}", compose.project, new_image, deadline=120,
                                proxy={"backend": "web", "port": 8080},
                                strategy={"canary": {"steps": [{"setWeight": 50}, {"setWeight": 100}]}})
    final, seen, _, restarts = await killed(
        document, [], {"ROLLOUT_DOCKER_HOSTS": str(hosts)}, compose, docker_host, dev_server, dev_client,
        release_worker_processes, tmp_path, arm=cut.arm)
    delivered = [c.strip() for line in cut.log.read_text().splitlines() for c in line.split(";")]
    cut.close()
    assert final.phase is Phase.HEALTHY, final.message
    assert len(cut.killed) == 1 and restarts == 1, (cut.killed, restarts)
    dropped = cut.killed[0].group(1).rstrip(";")
    deleted = [c.split()[2] for c in delivered if c.startswith("del server")]
    assert sorted(deleted) == sorted(set(deleted)) and len(deleted) == 3 and dropped in deleted, (dropped, delivered)
    actions = [a for a, _, _ in seen]
    assert actions.count("create") == 3 and actions.count("destroy") == 3, seen
    after = containers(docker_host, compose.project)
    assert [c["Config"]["Image"] for c in after] == [new_image] * 3
    assert set(docker_host_servers(docker_host)) == {c["Name"].lstrip("/") for c in after}


class KillingRelay:
    """A unix socket relayed to `target` that SIGKILLs the supervised worker when the first request matching
    `pattern` goes out, and drops that request (the worker dies between two calls); what it carried is
    logged (first lines)."""

    def __init__(self, target: str, pattern: str) -> None:
        import re
        import socket
        import tempfile
        from pathlib import Path

        from localcluster.relay import relay

        self.pattern, self.killed, self.supervisor = re.compile(pattern), [], None
        folder = Path(tempfile.mkdtemp(prefix="cut", dir="/tmp"))  # a unix socket's path is at most 107 bytes
        self.path, self.log = folder / "relay.sock", folder / "delivered.log"
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(self.path))
        self.listener.listen(16)
        relay(self.listener, target, self.log, intercept=self._intercept)

    def arm(self, supervisor) -> None:
        self.supervisor = supervisor

    def _intercept(self, line: str) -> bool:
        import os
        import signal

        matched = self.pattern.match(line)
        if self.killed or not matched:
            return True
        self.killed.append(matched)
        os.kill(self.supervisor.worker.process.pid, signal.SIGKILL)
        return False

    def close(self) -> None:
        import shutil
        import socket

        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # ends the relay's accept (a close alone would not)
        except OSError:
            pass
        self.listener.close()
        shutil.rmtree(self.path.parent, ignore_errors=True)


def docker_host_servers(docker_host) -> list[str]:
    from activities.targets.compose.haproxy import Haproxy

    return Haproxy(docker_host.runtime).servers("web")
