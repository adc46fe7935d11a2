"""The Intune channel's activities (Microsoft Graph v1.0): read the app and its assignments, and assign
the app to its rings. `assign` replaces the whole set, so the set sent is the set as Graph holds it at
that moment, exactly as read (exclusions, all-users and all-devices targets, their settings; what an
administrator changed during the release included), with the new ring added — the settings of the app's
type (`apptypes.py`) — and, going back, the ring targets the release added taken out (the ones the app
had before it stay). An unchanged set is not sent again. New bodies are built with the
Microsoft Graph SDK's models (`msgraph-sdk`) and kiota's JSON serialization."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from urllib.parse import urlsplit

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.targets.azuread import AzureTokens
from activities.targets.intune.apptypes import (
    app_type,
    canonical,
    conflicts,
    from_graph,
    new_assignment,
    settings_like,
    takes_deadline,
)
from activities.targets.intune.reports import export_rows
from activities.targets.storeapi import StoreApi, UsesStore
from models.intune import AssignInput, Assignment, AssignmentSet, ring_key

API_ENV = "DURABLE_ROLLOUTS_GRAPH_API"
CREDENTIALS_ENV = "DURABLE_ROLLOUTS_INTUNE_CREDENTIALS"
SCOPE = "https://graph.microsoft.com/.default"
MAX_PAGES = 100

__all__ = ["IntuneActivities", "export_rows", "graph_api", "parse"]


def graph_api() -> StoreApi:
    return StoreApi("Intune", os.environ.get(API_ENV, "https://graph.microsoft.com/"),
                    AzureTokens(SCOPE, "Intune", CREDENTIALS_ENV))


def parse(data, model_type):
    from kiota_serialization_json.json_parse_node import JsonParseNode

    return JsonParseNode(data).get_object_value(model_type)


class IntuneActivities(UsesStore):
    def build_api(self) -> StoreApi:
        return graph_api()

    def _app(self, app_id: str) -> str:
        return app_type(self.api.json("GET", f"v1.0/deviceAppManagement/mobileApps/{app_id}", "the app"))

    def _read(self, app_id: str) -> list[Assignment]:
        """Every assignment of the app, following `@odata.nextLink` (only on the configured Graph host)."""
        page: str | None = f"v1.0/deviceAppManagement/mobileApps/{app_id}/assignments"
        found: list[Assignment] = []
        for _ in range(MAX_PAGES):
            if page is None:
                return found
            answer = self.api.json("GET", page, "assignments")
            found += [from_graph(raw) for raw in answer.get("value") or []]
            page = answer.get("@odata.nextLink")
            if page is not None and urlsplit(self.api.url(page))[:2] != urlsplit(self.api.root)[:2]:
                raise ApplicationError(f"Intune: the assignments' next page is on another host ({page[:100]})",
                                       type="StoreRejected", non_retryable=True)
        raise ApplicationError(f"Intune: more than {MAX_PAGES} pages of assignments", type="StoreRejected",
                               non_retryable=True)

    @activity.defn(name="read_intune_assignments")
    def read_assignments(self, request: AssignInput) -> AssignmentSet:
        """The app's type and assignments; refused when a ring group is excluded or assigned another intent."""
        c = request.channel
        kind = self._app(c.app_id)
        found = self._read(c.app_id)
        problems = conflicts(found, request.groups, c.intent)
        if problems:
            raise ApplicationError(f"Intune: app {c.app_id}: {'; '.join(problems)}", type="StoreRejected",
                                   non_retryable=True)
        return AssignmentSet(assignments=found, app_type=kind)

    @activity.defn(name="assign_intune_app")
    def assign(self, request: AssignInput) -> AssignmentSet:
        c = request.channel
        kind = request.app_type or self._app(c.app_id)
        current = self._read(c.app_id)
        deadline = (datetime.now(UTC) + c.install_deadline).replace(microsecond=0) \
            if c.install_deadline and c.intent == "required" and takes_deadline(kind) else None
        problems = conflicts(current, request.groups, c.intent)  # an administrator may have changed it since
        if problems:
            raise ApplicationError(f"Intune: app {c.app_id}: {'; '.join(problems)} (changed in Intune during the "
                                   "release; nothing was assigned)", type="StoreRejected", non_retryable=True)
        reached = request.assigned if request.assigned is not None else \
            [g for ring in c.rings for g in (ring.groups or ["*"])]
        before, still = {a.key() for a in request.keep}, {ring_key(g) for g in request.groups}
        dropped = {ring_key(g) for g in reached} - before - still
        # the set as Graph holds it now (what anyone changed meanwhile stays, a later ring's group an
        # administrator assigned included), less the ring targets this release assigned and no longer
        # wants; an earlier ring keeps what Graph holds (its deadline as it was)
        wanted = [a for a in current if a.key() not in dropped]
        taken = {a.key() for a in wanted}
        like = settings_like(kind, c.intent, request.keep, current)
        earlier, left_out = {ring_key(g) for g in request.earlier or []}, []
        present = [g for g in request.groups if ring_key(g) in taken]  # what this read shows assigned
        for group in request.groups:
            if ring_key(group) in earlier and ring_key(group) not in taken:
                left_out.append(group)  # an earlier ring's group someone took out in Intune: their call stands
            elif ring_key(group) not in taken:
                wanted.append(new_assignment(kind, group, c, deadline, like))
                taken.add(ring_key(group))
        sent = [dict(a.graph) for a in wanted]
        if sorted(map(canonical, sent)) == sorted(canonical(a.graph) for a in current):
            return AssignmentSet(assignments=current, app_type=kind, left_out=left_out, present=present)
        self.api.call("POST", f"v1.0/deviceAppManagement/mobileApps/{c.app_id}/assign", "assign the app",
                      content=json.dumps({"mobileAppAssignments": sent}).encode(),
                      headers={"Content-Type": "application/json"})
        return AssignmentSet(assignments=wanted, app_type=kind, changed=True, left_out=left_out, present=present)
