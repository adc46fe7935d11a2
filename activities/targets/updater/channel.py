"""What a channel's release is, in TUF terms: the targets `<channel>/<platform>/current` and `previous`
of the channel's delegated role, their signed `custom` carrying the rollout state the devices obey
(rollout_agent.cohort, the very code the devices run)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rollout_agent.cohort import RolloutState, current_target, previous_target
from tuf.api.metadata import TargetFile
from tuf.repository import AbortEdit

from activities.targets.updater.repository import S3Repository
from models.updater import Artifact, ChannelRelease, Expiry, ReleaseState


def target_file(path: str, artifact: Artifact, state: RolloutState) -> TargetFile:
    return TargetFile(artifact.length, {"sha256": artifact.sha256}, path, unrecognized_fields={"custom": state.to_custom()})


def rollout_state(artifact: Artifact, release: str, state: ReleaseState) -> RolloutState:
    return RolloutState(version=artifact.version, release=release, basis_points=state.basis_points, salt=state.salt,
                        halted=state.halted, critical=state.critical, minimum_version=state.minimum_version,
                        downgrade=state.downgrade, artifact=artifact.name)


def artifact_of(target: TargetFile | None, platform: str) -> tuple[Artifact | None, RolloutState | None]:
    if target is None:
        return None, None
    state = RolloutState.from_custom(target.custom or {})
    return Artifact(name=state.artifact, version=state.version, platform=platform, sha256=target.hashes["sha256"],
                    length=target.length), state


def object_key(path: str, sha256: str) -> tuple[str, str]:
    """Where a consistent-snapshot client fetches `path` (the artifact's hash before its name)."""
    directory, _, name = path.rpartition("/")
    return "targets", f"{directory}/{sha256}.{name}"


def read(repository: S3Repository, channel: str, platform: str) -> ChannelRelease:
    role = repository.targets(channel)
    current, state = artifact_of(role.targets.get(current_target(channel, platform)), platform)
    previous, _ = artifact_of(role.targets.get(previous_target(channel, platform)), platform)
    return ChannelRelease(
        current=current, previous=previous, release=state.release if state else "", versions=repository.versions(),
        state=None if state is None else ReleaseState(
            basis_points=state.basis_points, salt=state.salt, halted=state.halted, critical=state.critical,
            minimum_version=state.minimum_version, downgrade=state.downgrade))


def publish(repository: S3Repository, channel: str, release: str, artifact: Artifact, state: ReleaseState,
            previous: Artifact | None) -> bool:
    """Stage the channel's new release (artifacts first: copied server-side to their content-addressed
    keys). False when the channel already says exactly this (nothing staged)."""
    platform = artifact.platform
    wanted = {current_target(channel, platform): target_file(current_target(channel, platform), artifact,
                                                             rollout_state(artifact, release, state))}
    if previous is not None:
        path = previous_target(channel, platform)
        wanted[path] = target_file(path, previous, rollout_state(previous, "", ReleaseState(basis_points=10_000, salt="")))
    role = repository.targets(channel)
    if all(role.targets.get(path) == target for path, target in wanted.items()):
        return False
    for path, target in wanted.items():
        repository.store.copy(("blobs", target.hashes["sha256"]), target.hashes["sha256"], target.length,
                              *object_key(path, target.hashes["sha256"]), beat=repository.beat)
    with repository.edit_targets(channel) as role:
        changed = False
        for path, target in wanted.items():
            if role.targets.get(path) != target:
                role.targets[path] = target
                changed = True
        if not changed:
            raise AbortEdit("nothing to change")
    repository.do_snapshot()
    repository.do_timestamp()
    return True


OFFLINE_WARNING = timedelta(days=30)


def refresh(repository: S3Repository, expiry: Expiry, within: float) -> tuple[list[str], list[str]]:
    """Re-sign what has used `within` of its validity and the worker holds keys for: the channel roles,
    snapshot, timestamp. Returns (what was re-signed, the offline roles — root, targets — expiring
    within 30 days: a person must re-sign those)."""
    now, keep, resigned = datetime.now(UTC), 1 - within, []
    for role in repository.targets().delegations.roles:
        if repository.targets(role).expires - now < expiry.channel * keep:
            with repository.edit_targets(role):
                pass  # a new version, re-signed, with the same targets
            resigned.append(role)
    if resigned or repository.snapshot().expires - now < expiry.snapshot * keep:
        repository.do_snapshot(force=True)
        resigned.append("snapshot")
    if resigned or repository.timestamp().expires - now < expiry.timestamp * keep:
        repository.do_timestamp(force=True)
        resigned.append("timestamp")
    offline = [role for role, signed in (("root", repository.root()), ("targets", repository.targets()))
               if signed.expires - now < OFFLINE_WARNING]
    return resigned, offline
