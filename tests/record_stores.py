"""Recorded scenarios of staged releases through the store and MDM channels, for
tests/record_histories.py: the channel activities faked by name (replay runs only workflow code)."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from models.approvals import AbortRequest, HaltRequest, PromoteRequest, ResumeRequest, RollbackRequest
from models.appstore import AppStoreVersionInput, AppStoreVersionState, PhasedReleaseInput
from models.intune import AssignInput, Assignment, AssignmentSet
from models.mdm import MdmDeployInput, MdmGroupsInput, MdmStatus
from models.msstore import StoreRollout, StoreRolloutInput, StoreSubmission, StoreSubmissionInput
from models.play import PlayBundle, PlayTrackInput, PlayTrackQuery, PlayTrackRelease, PlayTrackState, PlayUploadInput
from tests.record_releases import _reason, _release, _start, halt_resume_promote

UUID = "3f1e2d4c-5b6a-4789-8a0b-1c2d3e4f5a6b"
RINGS = [{"name": "pilot", "groups": ["0a1b2c3d-0000-4000-8000-000000000001"], "share": 5},
         {"name": "everyone", "allDevices": True, "share": 100}]


def store_fakes() -> list:
    reads = {"apple": 0, "ms": 0}

    @activity.defn(name="upload_play_bundle")
    def upload_play_bundle(request: PlayUploadInput) -> PlayBundle:
        return PlayBundle(version_code=101, sha256="c" * 64, uploaded=True)

    @activity.defn(name="read_play_track")
    def read_play_track(request: PlayTrackQuery) -> PlayTrackState:
        return PlayTrackState(releases=[PlayTrackRelease(status="completed", version_codes=[100])])

    @activity.defn(name="set_play_track")
    def set_play_track(request: PlayTrackInput) -> PlayTrackState:
        status = "completed" if request.basis_points >= 10_000 and not request.halted else \
            "halted" if request.halted else "inProgress"
        fraction = None if status == "completed" else request.basis_points / 10_000
        return PlayTrackState(committed=True, releases=[PlayTrackRelease(status=status, version_codes=[101],
                                                                         user_fraction=fraction)])

    def apple_state(state: str, phased: str = "INACTIVE", day: int = 0) -> AppStoreVersionState:
        return AppStoreVersionState(version_id="v1", build_id="b1", state=state, phased_release_id="p1",
                                    phased_state=phased, day=day)

    @activity.defn(name="prepare_app_store_version")
    def prepare_app_store_version(request: AppStoreVersionInput) -> AppStoreVersionState:
        return apple_state("PREPARE_FOR_SUBMISSION")

    @activity.defn(name="submit_app_store_review")
    def submit_app_store_review(request: AppStoreVersionInput) -> AppStoreVersionState:
        return apple_state("WAITING_FOR_REVIEW")

    @activity.defn(name="read_app_store_version")
    def read_app_store_version(request: AppStoreVersionInput) -> AppStoreVersionState:
        reads["apple"] += 1
        return apple_state("IN_REVIEW" if reads["apple"] < 3 else "PENDING_DEVELOPER_RELEASE")

    @activity.defn(name="release_app_store_version")
    def release_app_store_version(request: AppStoreVersionInput) -> AppStoreVersionState:
        return apple_state("READY_FOR_DISTRIBUTION", "ACTIVE", 1)

    @activity.defn(name="set_app_store_phased_release")
    def set_app_store_phased_release(request: PhasedReleaseInput) -> AppStoreVersionState:
        return apple_state("READY_FOR_DISTRIBUTION", request.state, 1)

    @activity.defn(name="create_store_submission")
    def create_store_submission(request: StoreSubmissionInput) -> StoreSubmission:
        return StoreSubmission(id="1152921504606847001", status="CommitStarted", uploaded=True)

    @activity.defn(name="read_store_submission")
    def read_store_submission(request: StoreRolloutInput) -> StoreSubmission:
        reads["ms"] += 1
        return StoreSubmission(id=request.submission_id, status="Certification" if reads["ms"] < 2 else "Published")

    @activity.defn(name="set_store_rollout")
    def set_store_rollout(request: StoreRolloutInput) -> StoreRollout:
        status = {"halt": "PackageRolloutStopped", "finalize": "PackageRolloutComplete"}.get(
            request.action, "PackageRolloutInProgress")
        return StoreRollout(percentage=request.basis_points / 100 or 10.0, status=status, fallback_submission_id="1")

    @activity.defn(name="read_intune_assignments")
    def read_intune_assignments(request: AssignInput) -> AssignmentSet:
        return AssignmentSet(assignments=[Assignment(group_id="helpdesk", intent="available")])

    @activity.defn(name="assign_intune_app")
    def assign_intune_app(request: AssignInput) -> AssignmentSet:
        return AssignmentSet(assignments=[*request.keep, *(Assignment(group_id=g, intent="required")
                                                           for g in request.groups)], changed=True)

    @activity.defn(name="deploy_mdm_policy")
    def deploy_mdm_policy(request: MdmDeployInput) -> MdmStatus:
        return MdmStatus(policy_id="100002", package_id="100001", uploaded=True)

    @activity.defn(name="set_mdm_groups")
    def set_mdm_groups(request: MdmGroupsInput) -> MdmStatus:
        return MdmStatus(policy_id=request.policy_id, state=request.state, groups=request.groups, targeted=5,
                         installed=4, pending=1)

    return [upload_play_bundle, read_play_track, set_play_track, prepare_app_store_version, submit_app_store_review,
            read_app_store_version, release_app_store_version, set_app_store_phased_release, create_store_submission,
            read_store_submission, set_store_rollout, read_intune_assignments, assign_intune_app, deploy_mdm_policy,
            set_mdm_groups]


async def google_play(client: Client, queue: str):
    """A staged rollout halted mid-bake by signal, resumed by update, promoted to completed."""
    release = _release("recorded-play", [{"percent": 5, "bake": "2s"}, {"percent": 20, "bake": "1h"}],
                       channel={"googlePlay": {"packageName": "com.example.shop"}},
                       artifact={"file": "/dist/shop.aab", "version": "2.0.0"})
    return await halt_resume_promote(await _start(client, queue, release), 1)


async def app_store(client: Client, queue: str):
    """Submitted, two looks at App Review, approved, released, completed early."""
    phases = [{"percent": p, "bake": "1d"} for p in (1, 2, 5, 10, 20, 50)]
    release = _release("recorded-ios", phases, channel={"appStore": {"appId": "1459876543", "reviewPoll": "1s"}},
                       artifact={"version": "3.1.0", "build": "4121"})
    handle = await _start(client, queue, release)
    await _reason(handle, "Baking", 0)
    await handle.execute_update("promote", PromoteRequest(by="rm", full=True))
    await handle.result()
    return handle


async def microsoft_store(client: Client, queue: str):
    """Certification looked at twice, the first percentage baking, rolled back (haltpackagerollout)."""
    release = _release("recorded-msstore", [{"percent": 10, "bake": "1h"}],
                       channel={"microsoftStore": {"applicationId": "9NBLGGH4R315", "certificationPoll": "1s"}},
                       artifact={"file": "/dist/Shop_2.0.0.0_x64.msixupload", "version": "2.0.0.0"})
    handle = await _start(client, queue, release)
    await _reason(handle, "Baking", 0)
    await handle.execute_update("rollback", RollbackRequest(by="oncall", reason="crashes"))
    await handle.result()
    return handle


async def intune_rings(client: Client, queue: str):
    release = _release("recorded-intune", [{"percent": 5, "bake": "1s"}],
                       channel={"intune": {"appId": UUID, "rings": RINGS}}, artifact={"version": "2.0.0"})
    handle = await _start(client, queue, release)
    await handle.result()
    return handle


async def mdm_halted_aborted(client: Client, queue: str):
    release = _release("recorded-mdm", [{"percent": 5, "bake": "1h"}],
                       channel={"mdm": {"server": "https://mdm.example", "policy": "shop-2", "packageName": "shop",
                                        "rings": RINGS}},
                       artifact={"file": "/dist/shop.pkg", "version": "2.0.0"})
    handle = await _start(client, queue, release)
    await _reason(handle, "Baking", 0)
    await handle.signal("halt", HaltRequest(by="web-ui"))
    await _reason(handle, "Halted", 0)
    await handle.execute_update("abort", AbortRequest(by="oncall", reason="battery drain"))
    await handle.result()
    return handle


SCENARIOS = [
    ("release-google-play", google_play, store_fakes),
    ("release-app-store", app_store, store_fakes),
    ("release-microsoft-store", microsoft_store, store_fakes),
    ("release-intune-rings", intune_rings, store_fakes),
    ("release-mdm-aborted", mdm_halted_aborted, store_fakes),
    # recorded again after the store channels' hardening (issue 23 §3), their patches taken:
    ("release-google-play-draft-first", google_play, store_fakes),
    ("release-app-store-releasable", app_store, store_fakes),
    ("release-intune-kept-as-read", intune_rings, store_fakes),
]
