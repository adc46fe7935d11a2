"""The generic MDM channel's activities (the REST shape in devtools/localcluster/stores/mdm-openapi.yaml):
deploy (the package, looked up by sha256 and sent with it as the idempotency key; the app-protection
policy; the deployment policy, each found by name before it is made) and set the policy's groups and
state, then read its assignment status. The token is read inside the activity."""

from __future__ import annotations

import os

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.artifacts import artifact_file
from activities.targets.files import file_digest
from activities.targets.storeapi import StoreApi
from models.mdm import MdmChannel, MdmDeployInput, MdmGroupsInput, MdmStatus

TOKEN_ENV = "DURABLE_ROLLOUTS_MDM_TOKEN"


class MdmToken:
    """The MDM server's API token from the worker's environment (re-read when refused)."""

    def token(self, fresh: bool = False) -> str:
        value = os.environ.get(TOKEN_ENV, "")
        if not value:
            raise ApplicationError(f"MDM: no API token: set ${TOKEN_ENV} on the worker", type="StoreUnauthorized",
                                   non_retryable=True)
        return value


class MdmActivities:
    def __init__(self) -> None:
        self._apis: dict[str, StoreApi] = {}

    def api(self, channel: MdmChannel) -> StoreApi:
        if channel.server not in self._apis:
            self._apis[channel.server] = StoreApi("MDM", channel.server, MdmToken())
        return self._apis[channel.server]

    def _one(self, api: StoreApi, path: str, name: str, what: str) -> dict | None:
        items = api.json("GET", path, what, params={"name": name})["items"]
        return items[0] if items else None

    @activity.defn(name="deploy_mdm_policy")
    def deploy(self, request: MdmDeployInput) -> MdmStatus:
        c, path = request.channel, artifact_file(request.path)
        api = self.api(c)
        sha256, _ = file_digest(path)
        found = api.json("GET", "api/v1/packages", "packages", params={"sha256": sha256})["items"]
        package, uploaded = (found[0], False) if found else (api.json(
            "POST", "api/v1/packages", "upload the package", content=path.read_bytes(), timeout=600,
            headers={"Content-Type": "application/octet-stream", "X-Package-Name": c.package_name,
                     "X-Package-Version": request.version, "Idempotency-Key": sha256}), True)
        activity.heartbeat(package["id"])
        protection_id = None
        if c.protection is not None:
            name = f"{c.policy}-protection"
            protection = self._one(api, "api/v1/app-protection-policies", name, "app-protection policies") or api.json(
                "POST", "api/v1/app-protection-policies", "create the app-protection policy", json={
                    "name": name, "packageName": c.package_name, "requirePin": c.protection.require_pin,
                    "blockCopyPaste": c.protection.block_copy_paste,
                    **({"minimumOsVersion": c.protection.minimum_os_version} if c.protection.minimum_os_version else {})})
            protection_id = protection["id"]
        policy = self._one(api, "api/v1/deployment-policies", c.policy, "deployment policies")
        if policy is not None and policy["packageId"] != package["id"]:
            raise ApplicationError(f"MDM: deployment policy {c.policy} deploys package {policy['packageId']}, not "
                                   f"{package['id']}: give each release its own policy name", type="StoreRejected",
                                   non_retryable=True)
        if policy is None:
            policy = api.json("POST", "api/v1/deployment-policies", "create the deployment policy", json={
                "name": c.policy, "packageId": package["id"], "installBehavior": c.install_behavior,
                "updateBehavior": c.update_behavior, "network": c.network,
                "deadlineHours": int(c.deadline.total_seconds() // 3600),
                **({"protectionPolicyId": protection_id} if protection_id else {})})
        return self._status(api, policy).model_copy(update={"package_id": package["id"], "uploaded": uploaded})

    def _status(self, api: StoreApi, policy: dict) -> MdmStatus:
        s = api.json("GET", f"api/v1/deployment-policies/{policy['id']}/status", "assignment status")["totals"]
        return MdmStatus(policy_id=policy["id"], state=policy["state"], groups=policy["groups"],
                         targeted=s["targeted"], installed=s["installed"], failed=s["failed"], pending=s["pending"])

    @activity.defn(name="set_mdm_groups")
    def set_groups(self, request: MdmGroupsInput) -> MdmStatus:
        """The policy's groups replaced (only if they differ) and its state set; the assignment status."""
        api = self.api(request.channel)
        policy = self._one(api, "api/v1/deployment-policies", request.channel.policy, "deployment policies")
        if policy is None:
            raise ApplicationError(f"MDM: no deployment policy {request.channel.policy}", type="NotFound",
                                   non_retryable=True)
        if sorted(policy["groups"]) != sorted(request.groups):
            policy = api.json("PUT", f"api/v1/deployment-policies/{policy['id']}/groups", "set the groups",
                              json={"groups": request.groups})
        if policy["state"] != request.state:
            policy = api.json("PATCH", f"api/v1/deployment-policies/{policy['id']}", f"policy {request.state}",
                              json={"state": request.state})
        return self._status(api, policy)
