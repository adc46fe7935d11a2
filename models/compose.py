"""`spec.target.composeHost`: one service of a Docker Compose project on one Docker host — the target's block
of the spec, the checks of its Compose file, and the inputs of its activities (activities/targets/compose/).

The document names the host by a name; which engine that is (`unix://`, `tcp://` with TLS, `ssh://`) and
with which certificates is the **worker's** configuration (`ROLLOUT_DOCKER_HOSTS`, activities/docker.py):
a document never chooses an endpoint or a local file, and reaches only the projects, proxy backends and
others' networks the host's entry lists (activities/targets/compose/allowed.py). The project's Compose file travels in the document
as a mapping, checked against the Compose Specification's own JSON schema (models/schemas/compose-spec.json,
from compose-spec/compose-spec, Apache-2.0). What the schema allows but this target cannot apply as Compose
would is refused, naming the field: variables (`${VAR}`: the host's environment and `.env` are not the
worker's to read — write the values, `$$` for a literal dollar), `extends` (inline it), and, on the rolled
service, any key the containers would not get (the `ROLLED_KEYS` below: `container_name` and `ports` among
them, as two containers of the service run side by side during an update), labels the engine writes itself,
and an environment entry without a value. A secret is written `{{secrets.NAME}}` and filled in by the
activity that makes the container (activities/secrets.py): never in the document, the history or a label."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import jsonschema
from pydantic import Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from models.delivery import Capabilities
from models.routing import Router, RouteState, SetCanaryScale
from models.specbase import DnsLabel, Message, SpecModel

# A Compose project name: lowercase letters, digits, dashes and underscores, starting with a letter or a
# digit (the Compose Specification, "Name top-level element"); a service name as the schema's pattern.
ProjectName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
ServiceName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9._-]{1,63}$")]
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"

# The rolled service's keys that its containers get as Compose gives them (activities/targets/compose/).
ROLLED_KEYS = frozenset({
    "image", "command", "entrypoint", "environment", "labels", "healthcheck", "deploy", "scale", "networks",
    "stop_grace_period", "stop_signal", "user", "working_dir", "restart", "read_only", "init"})
DEPLOY_KEYS = frozenset({"replicas"})
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)")
_UNIT = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_VARIABLE = re.compile(r"(?<!\$)(?:\$\$)*\$(?!\$)(\{|[A-Za-z_])")  # an unescaped $VAR or ${…}


# Read when the module is imported (by the CLI, the worker, the workflows' pass-through), never in a workflow.
_VALIDATOR = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


def seconds(value: Any) -> float:
    """A Compose duration ("1m30s", "500ms"; the schema's `duration` format) or a number, in seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    parts = _DURATION.findall(str(value))
    if not parts or "".join(a + b for a, b in parts) != str(value):
        raise ValueError(f"not a Compose duration: {str(value)[:40]!r}")
    return sum(float(amount) * _UNIT[unit] for amount, unit in parts)


def _dotted(path: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def compose_problem(compose: dict[str, Any], service: str) -> str:
    """Why this Compose file cannot be rolled by the target ("" when it can): "@compose.path: what"."""
    errors = sorted(_VALIDATOR.iter_errors(compose), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        error = errors[0]
        return f"@compose{_dotted(error.absolute_path)}: {error.message[:200]} (the Compose Specification's schema)"
    found = _variable(compose, ())
    if found:
        return (f"@compose{_dotted(found)}: a variable; the host's environment and .env are not the worker's to "
                "read: write the value ({{secrets.NAME}} for a secret, $$ for a literal $)")
    services = compose.get("services") or {}
    for name, block in services.items():
        if isinstance(block, dict) and "extends" in block:
            return f"@compose.services.{name}.extends: not resolved here: write the service out in full"
    if service not in services:
        return f"@service: {service!r} is not a service of the Compose file ({', '.join(sorted(services)) or 'none'})"
    block = services[service] or {}
    unknown = sorted(set(block) - ROLLED_KEYS)
    if unknown:
        return (f"@compose.services.{service}.{unknown[0]}: not applied to the rolled service's containers by "
                f"this target (it applies {', '.join(sorted(ROLLED_KEYS))})")
    deploy = sorted(set(block.get("deploy") or {}) - DEPLOY_KEYS)
    if deploy:
        return f"@compose.services.{service}.deploy.{deploy[0]}: only deploy.replicas is applied"
    if "deploy" in block and "scale" in block:
        return f"@compose.services.{service}.scale: give deploy.replicas or scale, not both"
    return _values_problem(compose, service, block)


def _values_problem(compose: dict[str, Any], service: str, block: dict[str, Any]) -> str:
    """Values the schema leaves as text (for interpolation) that the containers need as numbers."""
    where = f"@compose.services.{service}"
    health = block.get("healthcheck") or {}
    for key in ("interval", "timeout", "start_period", "start_interval"):
        if key in health:
            try:
                seconds(health[key])
            except ValueError as error:
                return f"{where}.healthcheck.{key}: {error}"
    if "retries" in health and not (isinstance(health["retries"], int) and not isinstance(health["retries"], bool)
                                    and health["retries"] >= 0):
        return f"{where}.healthcheck.retries: a whole number"
    if "stop_grace_period" in block:
        try:
            seconds(block["stop_grace_period"])
        except ValueError as error:
            return f"{where}.stop_grace_period: {error}"
    for key in ("replicas",):
        value = (block.get("deploy") or {}).get(key, block.get("scale", 1))
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
            return f"{where}.deploy.{key}: a whole number from 1 to 100"
    labels = block.get("labels") or {}
    for key in (labels if isinstance(labels, dict) else [item.split("=", 1)[0] for item in labels]):
        if str(key).startswith(("com.docker.compose.", "dev.durable-rollouts.")):
            return f"{where}.labels.{key}: a label the engine writes itself (Compose's and ours): remove it"
    environment = block.get("environment") or []
    for index, item in enumerate(environment if isinstance(environment, list) else []):
        if "=" not in str(item):
            return (f"{where}.environment[{index}]: no value (Compose would take it from the host's environment, "
                    "which is not the worker's to read): write NAME=value, or {{secrets.NAME}}")
    restart = str(block.get("restart", "no"))
    if not re.fullmatch(r"no|always|unless-stopped|on-failure(:\d{1,4})?", restart):
        return f"{where}.restart: no, always, unless-stopped or on-failure[:N]"
    networks = block.get("networks") or {}
    for network, settings in (networks.items() if isinstance(networks, dict) else []):
        unknown = sorted(set(settings or {}) - {"aliases"})
        if unknown:
            return f"{where}.networks.{network}.{unknown[0]}: not applied by this target (only aliases is)"
    for name, settings in (compose.get("networks") or {}).items():
        unknown = sorted(set(settings or {}) - {"name", "driver", "internal", "external", "labels"})
        if unknown:
            return f"@compose.networks.{name}.{unknown[0]}: not applied when this target makes the network"
    for network in networks:
        if network not in (compose.get("networks") or {}) and network != "default":
            return f"@compose.services.{service}.networks.{network}: not a network of the Compose file"
    return ""


def _variable(value: Any, path: tuple) -> tuple | None:
    if isinstance(value, str):
        return path if _VARIABLE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _variable(item, (*path, key))
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _variable(item, (*path, index))
            if found is not None:
                return found
    return None


class HaproxyRouting(Router):
    """HAProxy in front of the service as a canary's router: per-server weights set through its runtime API
    (activities/targets/compose/haproxy.py); no header routes or mirrors here."""

    routes_by_header: ClassVar[bool] = False
    mirrors: ClassVar[bool] = False


class ComposeProxy(SpecModel):
    """The HAProxy backend that serves the service on its host; the runtime API's address is the worker's
    configuration for that host (`haproxy:` in ROLLOUT_DOCKER_HOSTS), never the document's."""

    backend: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
    port: int = Field(ge=1, le=65535, description="the container port the proxy sends requests to")
    preview_backend: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] | None = Field(
        None, description="blue-green: the backend (behind its own frontend) the preview is tested on")

    @model_validator(mode="after")
    def _two(self) -> ComposeProxy:
        if self.preview_backend == self.backend:
            raise ValueError("@previewBackend: another backend than the production one")
        return self

    def backends(self) -> list[str]:
        return [self.backend, *([self.preview_backend] if self.preview_backend else [])]


class ComposeHostTarget(SpecModel):
    """`spec.target.composeHost`: one service of a Compose project on a Docker host of the worker's."""

    FAMILY: ClassVar[str] = "docker"
    CAPABILITIES: ClassVar[Capabilities] = Capabilities(
        weights=True, header_routes=False, mirrors=False, instant_switch=True, warm_rollback_window=False,
        in_place_rolling=True)  # weights and the switch: through `proxy` (refused below without one)
    DELIVERY: ClassVar[str] = "workflows.targets.compose:ComposeDelivery"
    ACTIVITIES: ClassVar[str] = "activities.targets.compose:activities"
    OBSERVER: ClassVar[str] = "observe_compose_target"
    INSTANCES: ClassVar[str] = "containers"
    VALUE_FROM: ClassVar[str] = ""  # no analysis arg names a side by valueFrom here
    ROUTER: ClassVar[Router] = HaproxyRouting()

    host: DnsLabel = Field(description="a Docker host of the worker's configuration (ROLLOUT_DOCKER_HOSTS)")
    project: ProjectName = Field(description="the Compose project (com.docker.compose.project)")
    service: ServiceName = Field(description="the service to roll")
    compose: dict[str, Any] = Field(description="the project's Compose file, as a mapping")
    ready_after_seconds: int = Field(10, ge=0, le=3600, description="a container with no health check counts as "
                                                                    "ready once it has run this long")
    pre_stop: list[Annotated[str, StringConstraints(max_length=4096)]] | None = Field(
        None, min_length=1, max_length=64, description="a command run in an old container before it is stopped "
                                                       "(docker-rollout's drain hook)")
    pre_stop_timeout_seconds: int = Field(30, ge=1, le=600)
    proxy: ComposeProxy | None = Field(None, description="the HAProxy backend in front of the service: containers "
                                                         "join it when ready and are drained from it before they stop")

    @model_validator(mode="after")
    def _compose(self) -> ComposeHostTarget:
        if len(json.dumps(self.compose)) > 256 * 1024:
            raise ValueError("@compose: over 256 KiB")
        problem = compose_problem(self.compose, self.service)
        if problem:
            raise ValueError(problem)
        return self

    def describe(self) -> str:
        return f"composeHost {self.host}/{self.project}/{self.service}"

    def rolled(self) -> dict[str, Any]:
        """The rolled service's block of the Compose file."""
        return dict(self.compose["services"][self.service] or {})

    def replicas(self) -> int:
        block = self.rolled()
        return int((block.get("deploy") or {}).get("replicas", block.get("scale", 1)))

    def strategy_problem(self, strategy: Any) -> str:
        """A canary needs the proxy; blue-green and A/B tests are not built here yet; Kubernetes' Services and
        routers have no meaning here (models/capabilities.py)."""
        if strategy.name in ("canary", "blueGreen") and self.proxy is None:
            return f"@target.composeHost.proxy: a {strategy.name}'s traffic is the proxy's: required"
        if strategy.name not in ("rollingUpdate", "recreate", "canary", "blueGreen"):
            return (f"@strategy.{strategy.name}: the composeHost target runs rollingUpdate, recreate, canary and "
                    "blueGreen; abTest is not built yet")
        block = strategy.chosen_value
        for field in ("stable_service", "canary_service", "active_service", "preview_service", "traffic_routing",
                      "dynamic_stable_scale"):
            value = getattr(block, field, None)
            if value and not (field == "traffic_routing" and value.router == "replicas"):
                return (f"@strategy.{strategy.name}.{to_camel(field)}: a composeHost target routes through its "
                        "proxy (target.composeHost.proxy); remove it")
        return ""


# ---- the activities' inputs ---------------------------------------------------------------------------


class ComposeRequest(Message):
    """What every Compose-host activity is told: the rollout (whose label marks what it made), the target,
    the image the rolled service should run."""

    rollout_id: str
    target: ComposeHostTarget
    image: str
    progress_deadline_seconds: int


class ComposeRoutesInput(ComposeRequest):
    """A canary step through the proxy: the candidate's share, capacity first."""

    step: int
    total_replicas: int
    routes: RouteState
    canary_scale: SetCanaryScale | None = None


class ComposeSwitchInput(ComposeRequest):
    """Blue-green: where production traffic goes (`preview` or `stable`), the preview's share or size."""

    to: Literal["preview", "stable"] = "preview"
    weight: int | None = Field(None, ge=0, le=100)
    replicas: int | None = Field(None, ge=0)


class ComposeRollOutInput(ComposeRequest):
    """An in-place update: new containers beside the old ones in batches of maxSurge, each healthy before an
    old one is drained (pre-stop) and removed, never fewer than replicas − maxUnavailable ready; Recreate
    stops the old ones first; Undo puts back the configuration the current containers replaced (a label);
    Restart replaces the containers with the same configuration."""

    kind: Literal["RollingUpdate", "Recreate", "Undo", "Restart"]
    max_surge: int | str | None = None
    max_unavailable: int | str | None = None
    to_revision: int = 0
    restarted_at: str = ""
