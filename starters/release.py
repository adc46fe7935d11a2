"""`rollout release ...`: set up an updater repository, publish a staged Release, keep the repository's
timestamp fresh.

    rollout release init --bucket B [--prefix P] [--endpoint URL] --keys DIR [--threshold stable=2] [--public-read]
    rollout release publish -f release.yaml [--wait] [--timeout S] [--json] [--train NAME]
    rollout release schedule-refresh --bucket B [--prefix P] [--every 6h]

Decisions on a running release are the common ones: `rollout halt|resume|promote [--full]|rollback|abort ID`.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
    ScheduleUpdate,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from models import names
from models.documents import DOCUMENT
from models.release import Release, ReleaseInput
from models.status import RolloutStatus
from models.train import SubmitRelease, SubmitResult, TrainInput, train_id
from models.updater import Expiry, RefreshInput, Repository
from starters.commands import _started, connect, follow, status_or_none, who
from starters.exitcodes import ExitCode, UserError
from workflows.refresh import RefreshMetadata
from workflows.release import StagedRelease
from workflows.train import ReleaseTrain


def repository_from(bucket: str, prefix: str, endpoint: str | None) -> Repository:
    from pydantic import ValidationError

    try:
        return Repository.model_validate({"bucket": bucket, "prefix": prefix, "endpoint": endpoint}, context=DOCUMENT)
    except ValidationError as error:
        first = error.errors()[0]
        raise UserError(f"--{first['loc'][0]}: {first['msg'].removeprefix('Value error, ')}", ExitCode.INVALID) from None


def init(repository: Repository, keys: Path, thresholds: list[str], public_read: bool, root_out: Path | None) -> int:
    """A new TUF repository: keys in `keys`, version 1 of every role in S3, the root for devices."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from activities.targets.updater.bootstrap import CHANNELS, initialize

    wanted: dict[str, int] = {}
    for item in thresholds:
        channel, _, number = item.partition("=")
        if channel not in CHANNELS or not number.isdigit() or not 1 <= int(number) <= 9:
            raise UserError(f"--threshold {item!r}: not like stable=2 (channels: {', '.join(CHANNELS)})", ExitCode.INVALID)
        wanted[channel] = int(number)
    try:
        made = initialize(boto3.client("s3", endpoint_url=repository.endpoint), repository, keys, wanted,
                          public_read=public_read, endpoint=repository.endpoint)
    except LookupError as error:
        raise UserError(str(error), ExitCode.NOT_FOUND) from None
    except ValueError as error:
        raise UserError(str(error), ExitCode.CONFLICT) from None
    except (BotoCoreError, ClientError, ApplicationError) as error:  # ApplicationError: another publish's lease
        raise UserError(f"S3 {repository.describe()}: {error}", ExitCode.UNAVAILABLE) from None
    root = root_out or keys / "root.json"
    root.write_bytes(made["root"])
    print(f"initialised {repository.describe()}: channels {', '.join(CHANNELS)}")
    print(f"root metadata for devices (embed it): {root}")
    print(f"worker signers (channel, snapshot, timestamp keys): export DURABLE_ROLLOUTS_TUF_SIGNERS={made['signers']}")
    print(f"worker trust (the root it verifies the bucket from): export DURABLE_ROLLOUTS_TUF_TRUST={made['trust']}")
    print(f"offline keys (root, targets): {made['offline']} — move them off this machine; never give them to a worker")
    if made["policy_error"]:
        print(f"rollout: the bucket policy for devices was refused ({made['policy_error']}): the repository works; "
              "let devices read the prefix another way (a CDN, or the policy by hand)", file=sys.stderr)
    return ExitCode.OK


async def publish(release: Release, wait: bool, timeout: float, task_queue: str, as_json: bool,
                  id_token_file: str | None = None) -> int:
    """Start the staged release (the worker uploads the artifact first). A retried publish of the very
    same document follows the running release."""
    from starters.identity import starter_token

    token = starter_token(release, id_token_file)  # before anything is asked or started
    client = await connect()
    rid = release.rollout_id
    try:
        handle = await client.start_workflow(
            StagedRelease.run, ReleaseInput(release=release, requested_by=who(), starter_token=token),
            **names.start_options(release), task_queue=names.task_queue_for(task_queue, release.spec.channel.family),
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=f"release {release.version} → {release.target_description}",
            static_details="\n".join([f"**{release.metadata.name}** · {release.version} → `{release.target_description}`",
                                      *(f"{i + 1}. {d}" for i, d in enumerate(release.spec.step_descriptions())),
                                      "\nDecide with the signals `halt`, `resume`, `promote`, `rollback`, `abort`."]))
    except WorkflowAlreadyStartedError:
        current = await status_or_none(client.get_workflow_handle(rid))
        if current is None or current.spec_digest != release.digest():
            raise UserError(f"release {rid} is already running: wait for it, or `rollout abort {rid} --reason ...`",
                            ExitCode.CONFLICT) from None
        if not as_json:
            print(f"{rid} is already publishing this very release: following it")
        handle = client.get_workflow_handle(rid, result_type=RolloutStatus)
    return await _started(handle, wait, timeout, as_json)


async def submit_to_train(release: Release, train: str, wait: bool, timeout: float, task_queue: str,
                          as_json: bool, id_token_file: str | None = None) -> int:
    """Queue the release on the channel's release train (started if it is not running); the submitter proven
    by an ID token where the release's approvals ask for that (the train's update checks it)."""
    from starters.identity import starter_token

    token = starter_token(release, id_token_file)  # before anything is asked or started
    client = await connect()
    env = release.metadata.environment
    handle = await client.start_workflow(
        ReleaseTrain.run, TrainInput(name=train, environment=env), id=train_id(env, train),
        task_queue=names.task_queue_for(task_queue, release.spec.channel.family),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING, static_summary=f"release train {env}/{train}")
    try:
        queued: SubmitResult = await handle.execute_update(
            "submit", SubmitRelease(release=release, by=who(), starter_token=token), result_type=SubmitResult)
    except WorkflowUpdateFailedError as error:
        full = getattr(error.cause, "type", "") == "TrainFull"  # maxQueued releases wait: later, not never
        raise UserError(f"submit refused by {handle.id}: {getattr(error.cause, 'message', error)}",
                        ExitCode.CONFLICT if full else ExitCode.INVALID) from None
    if as_json:
        print(queued.model_dump_json(by_alias=True))
    else:
        print(f"queued on {handle.id}: {queued.position} release(s) ahead; it runs as {queued.workflow_id}")
    if not wait:
        return ExitCode.OK
    deadline = asyncio.get_running_loop().time() + timeout
    child = client.get_workflow_handle(queued.workflow_id, result_type=RolloutStatus)
    while await status_or_none(child) is None:
        if asyncio.get_running_loop().time() > deadline:
            return ExitCode.TIMEOUT
        await asyncio.sleep(1)
    return await follow(child, max(deadline - asyncio.get_running_loop().time(), 1), quiet=as_json)


async def schedule_refresh(repository: Repository, every: timedelta, task_queue: str, expiry: Expiry) -> int:
    """A Temporal Schedule that re-signs the repository's timestamp and snapshot before they expire."""
    client = await connect()
    schedule_id = f"refresh/{repository.describe().removeprefix('s3://')}"
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            RefreshMetadata.run, RefreshInput(repository=repository, expiry=expiry), id=f"{schedule_id}/run",
            task_queue=names.task_queue_for(task_queue, "updater")),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]))
    try:
        await client.create_schedule(schedule_id, schedule)
        print(f"schedule {schedule_id}: every {every}; timestamp valid {expiry.timestamp}, snapshot {expiry.snapshot}")
    except ScheduleAlreadyRunningError:
        await client.get_schedule_handle(schedule_id).update(lambda _: ScheduleUpdate(schedule=schedule))
        print(f"schedule {schedule_id}: updated (every {every})")
    return ExitCode.OK
