"""The Microsoft Store channel's activities (Partner Center submission API): create the submission
with the package, `targetPublishMode: Immediate` and a gradual package rollout, upload the package zip
to the submission's blob in blocks (`blob.py`), commit; read certification's progress; raise, halt or
finalize the package rollout. A retry finds its own work: the pending submission that holds this
package is reused (another one is refused, naming it), the blob is looked at (HEAD, Content-MD5) before
a byte is sent, a rollout is read before it is changed. The submission's other packages are kept (a
multi-architecture app keeps its other architectures' packages); only the packages of the architectures
the document names in `replaceArchitectures` are marked `PendingDelete`."""

from __future__ import annotations

import os
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.artifacts import artifact_file
from activities.targets.azuread import AzureTokens
from activities.targets.msstore.blob import package_zip, upload
from activities.targets.storeapi import StoreApi, UsesStore
from models.msstore import StoreRollout, StoreRolloutInput, StoreSubmission, StoreSubmissionInput

API_ENV = "DURABLE_ROLLOUTS_MSSTORE_API"
CREDENTIALS_ENV = "DURABLE_ROLLOUTS_MSSTORE_CREDENTIALS"
SCOPE = "https://manage.devcenter.microsoft.com/.default"
FAILED = ("CommitFailed", "PreProcessingFailed", "CertificationFailed", "ReleaseFailed", "PublishFailed", "Canceled")
# certified, but held for someone to publish it in Partner Center (the reference does not say when; a Manual
# targetPublishMode, set there after the channel's Immediate, is the case it describes)
HELD = ("PendingPublication",)
HELD_HINT = "certified and held: publish it in Partner Center (its publish mode was changed to Manual there)"


class MicrosoftStoreActivities(UsesStore):
    def build_api(self) -> StoreApi:
        return StoreApi("Microsoft Store", os.environ.get(API_ENV, "https://manage.devcenter.microsoft.com/"),
                        AzureTokens(SCOPE, "Microsoft Store", CREDENTIALS_ENV))

    @staticmethod
    def _packages_key(request: StoreSubmissionInput | StoreRolloutInput) -> str:
        return "flightPackages" if request.channel.flight_id else "applicationPackages"

    def _pending(self, request: StoreSubmissionInput) -> dict[str, Any] | None:
        c = request.channel
        resource = self.api.json("GET", c.base, "the app" if not c.flight_id else "the flight")
        pending = resource.get("pendingFlightSubmission" if c.flight_id else "pendingApplicationSubmission")
        if not pending:
            return None
        return self.api.json("GET", f"{c.base}/submissions/{pending['id']}", "the pending submission")

    @activity.defn(name="create_store_submission")
    def create_submission(self, request: StoreSubmissionInput) -> StoreSubmission:
        c, api, path = request.channel, self.api, artifact_file(request.path)
        key = self._packages_key(request)
        submission = self._pending(request)
        if submission is not None and not any(p.get("fileName") == path.name for p in submission.get(key, [])):
            raise ApplicationError(f"Microsoft Store: submission {submission['id']} is already pending in Partner "
                                   "Center: finish or delete it first", type="StoreRejected", non_retryable=True)
        if submission is None:
            submission = api.json("POST", f"{c.base}/submissions", "create a submission")
        activity.heartbeat(submission["id"])
        if submission.get("status") != "PendingCommit":  # committed by an earlier attempt
            return self.read(request, submission["id"])
        wanted = dict(submission)
        replaced = {a.lower() for a in c.replace_architectures}
        wanted[key] = [{**p, "fileStatus": "PendingDelete"} if str(p.get("architecture", "")).lower() in replaced
                       and p.get("fileStatus") != "PendingDelete" else p
                       for p in submission.get(key, []) if p.get("fileName") != path.name]
        wanted[key] += [p for p in submission.get(key, []) if p.get("fileName") == path.name] or [
            {"fileName": path.name, "fileStatus": "PendingUpload", "minimumDirectXVersion": "None",
             "minimumSystemRam": "None"}]
        wanted["targetPublishMode"] = "Immediate"  # stated: the published submission's mode may be Manual
        wanted.pop("targetPublishDate", None)
        options = dict(submission.get("packageDeliveryOptions") or {})
        options["packageRollout"] = {"isPackageRollout": True, "packageRolloutPercentage": request.basis_points / 100,
                                     "packageRolloutStatus": "PackageRolloutNotStarted", "fallbackSubmissionId": "0"}
        options["isMandatoryUpdate"] = c.mandatory_update
        wanted["packageDeliveryOptions"] = options
        if wanted != submission:
            api.json("PUT", f"{c.base}/submissions/{submission['id']}", "update the submission", json=wanted)
        with package_zip(path) as content:
            uploaded = upload(api, submission["fileUploadUrl"], content)
        activity.heartbeat(submission["id"], "uploaded")
        api.json("POST", f"{c.base}/submissions/{submission['id']}/commit", "commit the submission")
        result = self.read(request, submission["id"])
        return result.model_copy(update={"uploaded": uploaded})

    def read(self, request: StoreSubmissionInput | StoreRolloutInput, submission_id: str) -> StoreSubmission:
        status = self.api.json("GET", f"{request.channel.base}/submissions/{submission_id}/status", "submission status")
        details = status.get("statusDetails") or {}
        errors = [f"{e.get('code')}: {e.get('details')}" for e in details.get("errors") or []]
        return StoreSubmission(id=submission_id, status=status.get("status", ""), errors=errors)

    @activity.defn(name="read_store_submission")
    def read_submission(self, request: StoreRolloutInput) -> StoreSubmission:
        return self.read(request, request.submission_id)

    @activity.defn(name="set_store_rollout")
    def set_rollout(self, request: StoreRolloutInput) -> StoreRollout:
        """The package rollout read, then changed only if it differs: raised (never lowered), halted
        (final), finalized (everyone)."""
        base = f"{request.channel.base}/submissions/{request.submission_id}"
        rollout = self.api.json("GET", f"{base}/packagerollout", "package rollout")
        status, percent = rollout.get("packageRolloutStatus"), float(rollout.get("packageRolloutPercentage") or 0)
        live = status == "PackageRolloutInProgress"
        if request.action == "finalize" and live:
            self.api.call("POST", f"{base}/finalizepackagerollout", "finalize the package rollout")
        elif request.action == "halt" and live:
            self.api.call("POST", f"{base}/haltpackagerollout", "halt the package rollout")
        elif request.action == "raise" and live and request.basis_points / 100 > percent:
            self.api.call("POST", f"{base}/updatepackagerolloutpercentage", "raise the package rollout",
                          params={"percentage": f"{request.basis_points / 100:g}"})
        else:
            return StoreRollout(percentage=percent, status=status or "PackageRolloutNotStarted",
                                fallback_submission_id=str(rollout.get("fallbackSubmissionId") or ""))
        after = self.api.json("GET", f"{base}/packagerollout", "package rollout")
        return StoreRollout(percentage=float(after.get("packageRolloutPercentage") or 0),
                            status=after.get("packageRolloutStatus", "PackageRolloutNotStarted"),
                            fallback_submission_id=str(after.get("fallbackSubmissionId") or ""))
