"""A loopback stand-in for the generic MDM server (the REST shape in `mdm-openapi.yaml` beside this
file), every request and answer checked with openapi-core against that description. Packages are
kept by sha256 (the idempotency key returns the same package); a policy's groups are replaced as a
whole; a paused policy installs nothing new; each device of an assigned group installs (or fails, by
`failing`) when the status is read after `install_seconds`."""

from __future__ import annotations

import hashlib
import itertools
import re
import time
from pathlib import Path
from urllib.parse import parse_qs

from localcluster.stores.contracts import OpenApiContract
from localcluster.stores.standin import Refusal, Reply, Request, StandIn, Violation

SPEC = Path(__file__).with_name("mdm-openapi.yaml")


class MdmStandIn(StandIn):
    name = "mdm"

    def __init__(self, token: str) -> None:
        super().__init__()
        self.contract = OpenApiContract(SPEC)
        self.token = token
        self.ids = (f"{n:06d}" for n in itertools.count(100_001))
        self.packages: dict[str, dict] = {}
        self.policies: dict[str, dict] = {}
        self.protections: dict[str, dict] = {}
        self.groups: dict[str, list[str]] = {}  # group → devices
        self.failing: dict[str, float] = {}
        self.installed_at: dict[tuple[str, str], float] = {}  # (policy, device) → when it was targeted
        self.group_sets: list[list[str]] = []
        self.states: list[str] = []
        self.upload_delay = 0.0  # seconds a package upload takes (a slow link, to abort a release mid-deploy)

    def handle(self, request: Request) -> Reply:
        return self.checked(self.contract, request, self.check_token, self.route)

    def check_token(self, request: Request) -> None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            raise Refusal(401, "invalid API token")

    def error(self, status: int, message: str) -> dict:
        return {"message": message}

    def route(self, request: Request) -> Reply:
        m, path = request.method, request.path
        query = {k: v[-1] for k, v in parse_qs(request.query).items()}
        if path == "/api/v1/packages":
            if m == "GET":
                return Reply(200, {"items": [p for p in self.packages.values() if p["sha256"] == query["sha256"]]})
            sha256 = hashlib.sha256(request.body).hexdigest()
            if request.headers["idempotency-key"] != sha256:
                raise Refusal(400, "Idempotency-Key must be the package's sha256")
            if sha256 in self.packages:
                return Reply(200, self.packages[sha256])
            time.sleep(self.upload_delay)
            self.packages[sha256] = {"id": next(self.ids), "name": request.headers["x-package-name"],
                                     "version": request.headers["x-package-version"], "sha256": sha256,
                                     "size": len(request.body)}
            return Reply(201, self.packages[sha256])
        if path == "/api/v1/app-protection-policies":
            if m == "GET":
                return Reply(200, {"items": [p for p in self.protections.values() if p["name"] == query["name"]]})
            body = request.json()
            if body["name"] in self.protections:
                raise Refusal(409, f"app-protection policy {body['name']} exists")
            self.protections[body["name"]] = {**body, "id": next(self.ids)}
            return Reply(201, self.protections[body["name"]])
        if path == "/api/v1/deployment-policies":
            if m == "GET":
                return Reply(200, {"items": [p for p in self.policies.values() if p["name"] == query["name"]]})
            body = request.json()
            if any(p["name"] == body["name"] for p in self.policies.values()):
                raise Refusal(409, f"deployment policy {body['name']} exists")
            if not any(p["id"] == body["packageId"] for p in self.packages.values()):
                raise Refusal(400, f"no package {body['packageId']}")
            policy = {**body, "id": next(self.ids), "state": "active", "groups": []}
            self.policies[policy["id"]] = policy
            return Reply(201, policy)
        found = re.fullmatch(r"/api/v1/deployment-policies/([^/]+)(/groups|/status)?", path)
        if found:
            key, tail = found.groups()
            policy = self.policies.get(key) or next((p for p in self.policies.values() if p["name"] == key), None)
            if policy is None:
                raise Refusal(404, f"no deployment policy {key}")
            if tail == "/groups":
                policy["groups"] = request.json()["groups"]
                self.group_sets.append(list(policy["groups"]))
                self.target(policy)
            elif tail == "/status":
                return Reply(200, self.status(policy))
            else:
                policy["state"] = request.json()["state"]
                self.states.append(policy["state"])
                self.target(policy)
            return Reply(200, policy)
        raise Violation(f"{m} {path}: not in the MDM API")

    def devices(self, policy: dict) -> list[tuple[str, str]]:
        return [(g, d) for g in self.groups for d in self.groups[g]
                if g in policy["groups"] or "*" in policy["groups"]]

    def target(self, policy: dict) -> None:
        """Devices of newly assigned groups start installing (a paused policy starts nobody)."""
        if policy["state"] != "active":
            return
        for _, device in self.devices(policy):
            self.installed_at.setdefault((policy["id"], device), time.monotonic())

    def status(self, policy: dict) -> dict:
        rows = []
        for group in sorted({g for g, _ in self.devices(policy)}):
            devices = self.groups[group]
            failing = round(len(devices) * self.failing.get(group, 0.0))
            started = [d for d in devices if (policy["id"], d) in self.installed_at]
            failed = [d for d in started if devices.index(d) < failing]
            rows.append({"groupId": group, "targeted": len(devices), "installed": len(started) - len(failed),
                         "failed": len(failed), "pending": len(devices) - len(started)})
        totals = {k: sum(r[k] for r in rows) for k in ("targeted", "installed", "failed", "pending")}
        done = totals["installed"] + totals["failed"]
        totals["successRate"] = round(100 * totals["installed"] / done, 3) if done else None
        return {"groups": rows, "totals": totals}
