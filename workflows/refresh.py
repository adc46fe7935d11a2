"""Freeze protection: re-sign an updater repository's timestamp (and snapshot) well before they expire.

A Temporal Schedule (`rollout release schedule-refresh`) runs this workflow every few hours; each run
is one idempotent activity that re-signs only what has used up `withinFraction` of its validity (channel roles, snapshot,
timestamp) and warns when the offline roles (root, targets) expire within 30 days. A
device that stops seeing fresh timestamps (a frozen mirror, an attacker replaying old metadata)
refuses to update within one timestamp lifetime; this schedule makes sure an honest repository never
looks like that.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.targets.updater import UpdaterActivities
    from models.updater import RefreshInput, RefreshResult
    from workflows import options


@workflow.defn(name="RefreshMetadata")
class RefreshMetadata:
    @workflow.run
    async def run(self, request: RefreshInput) -> RefreshResult:
        workflow.set_current_details(f"re-signing timestamp/snapshot of {request.repository.describe()}")
        result = await workflow.execute_activity_method(
            UpdaterActivities.refresh_timestamp, request, summary=f"refresh {request.repository.describe()}",
            **options.CHANNEL)
        if result.offline_expiring:
            workflow.logger.warning("%s: %s expire within 30 days: re-sign them with the offline keys",
                                    request.repository.describe(), ", ".join(result.offline_expiring))
        return result
