"""`rollout`: the command line for release engineers and CI.

    rollout validate -f spec.yaml          check a spec; every problem with its field path (exit 2)
    rollout start -f spec.yaml [--wait]    start a rollout; --wait follows it (exit 0 Healthy, 1 Degraded, 3 timeout)
    rollout status ID [--json] [--watch]   what a rollout is doing
    rollout approve ID [--choice C] | reject ID | promote ID [--full] | abort ID --reason TEXT
    rollout pause ID | resume ID | skip-analysis ID | set-weight ID N     (each: --by NAME --comment TEXT)
    rollout history ID [--json]            every decision and step event
    rollout retry ID | undo ID [--to-revision N] | restart ID
    rollout analyze -f FILE --template NAME [--arg NAME=VALUE]
    rollout list [--phase P] [--environment E] [--strategy S] [--awaiting-approval]
    rollout release init|publish|schedule-refresh   a staged release (kind: Release): see starters/release.py
    rollout pipeline start -f FILE [--wait] [--json] | validate -f FILE | summary FILE   (kind: Pipeline)
    rollout halt ID | rollback ID --reason TEXT     a release's own decisions (with resume, promote, abort)
    rollout worker | setup | dev | codec-server | cluster up|down|status | demo | schema
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from temporalio.service import RPCError

from activities.sealing import SealingError
from models import names
from models.spec import STRATEGIES, SpecError, json_schema
from starters import decisions, identity, pipeline, plugins
from starters.exitcodes import ExitCode, UserError
from workers import options as worker_options
from workers.codec import PayloadKeyError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rollout", description="Durable progressive delivery on Temporal.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="validate a rollout or release spec; nothing is started")
    p.add_argument("-f", "--file", required=True)

    p = sub.add_parser("schema", help="print the spec's JSON Schema (for editors)")
    p.add_argument("--kind", choices=["Rollout", "Release"], default="Rollout")

    p = sub.add_parser("start", help="start a rollout from a spec")
    p.add_argument("-f", "--file", required=True)
    p.add_argument("--wait", action="store_true", help="follow until it ends; exit 0 Healthy, 1 Degraded, 3 timeout")
    p.add_argument("--timeout", type=float, default=3600, help="seconds --wait follows before exit 3 (default 3600)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--task-queue", default=os.environ.get("ROLLOUT_TASK_QUEUE", names.TASK_QUEUE))
    p.add_argument("--again", action="store_true", help="start even if this very spec already ended Healthy")
    identity.add_start_token(p)

    p = sub.add_parser("retry", help="run a rollout that ended Degraded again from the start")
    p.add_argument("rollout_id", metavar="ID")
    p.add_argument("--wait", action="store_true")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--json", action="store_true")
    identity.add_start_token(p)

    p = sub.add_parser("undo", help="put the rollout's Deployment back on an earlier revision (no rebuild); "
                                    "a blue-green keeping the previous version warm switches back at once")
    p.add_argument("rollout_id", metavar="ID")
    p.add_argument("--to-revision", type=int, default=0, metavar="N",
                   help="the Deployment revision to go back to (default: the one before the current)")
    p.add_argument("--wait", action="store_true")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("analyze", help="run analysis templates once (the spec's own, or the shipped presets)")
    p.add_argument("-f", "--file", required=True, help="a rollout spec (its analysis templates and target)")
    p.add_argument("--template", action="append", required=True, metavar="NAME", help="template to run (repeatable)")
    p.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE", help="template arg (repeatable)")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--json", action="store_true")
    p.add_argument("--task-queue", default=os.environ.get("ROLLOUT_TASK_QUEUE", names.TASK_QUEUE))

    p = sub.add_parser("restart", help="restart the pods of the rollout's current version (rolling, gated)")
    p.add_argument("rollout_id", metavar="ID")
    p.add_argument("--wait", action="store_true")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("status", help="show a rollout's status")
    p.add_argument("rollout_id", metavar="ID")
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", action="store_true", help="follow until it ends")
    p.add_argument("--timeout", type=float, default=3600)

    p = sub.add_parser("promote", help="continue a paused rollout (--full: skip the remaining steps)")
    p.add_argument("rollout_id", metavar="ID")
    p.add_argument("--full", action="store_true", help="promote now, skipping the remaining steps")
    decisions.add_arguments(p)

    p = sub.add_parser("abort", help="send all traffic back to stable and stop")
    p.add_argument("rollout_id", metavar="ID")
    p.add_argument("--reason", required=True)
    decisions.add_arguments(p)

    p = sub.add_parser("rollback", help="release: go back to the previous release now")
    p.add_argument("rollout_id", metavar="ID")
    p.add_argument("--reason", required=True)
    decisions.add_arguments(p)

    p = sub.add_parser("release", help="staged releases: init an updater repository, publish, keep it fresh")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("init", help="a new TUF repository in S3: keys, root, one role per channel")
    _repository_args(a)
    a.add_argument("--keys", type=Path, required=True, help="directory for the generated keys (mode 0700)")
    a.add_argument("--threshold", action="append", default=[], metavar="CHANNEL=N", help="signatures a channel needs")
    a.add_argument("--public-read", action="store_true", help="a bucket policy letting devices read the prefix")
    a.add_argument("--root-out", type=Path, default=None, help="where to write the root metadata devices embed")
    a = actions.add_parser("publish", help="publish a Release: upload its artifact, then run its phases")
    a.add_argument("-f", "--file", required=True)
    a.add_argument("--wait", action="store_true", help="follow until it ends; exit 0 Healthy, 1 Degraded, 3 timeout")
    a.add_argument("--timeout", type=float, default=3600)
    a.add_argument("--json", action="store_true")
    a.add_argument("--task-queue", default=os.environ.get("ROLLOUT_TASK_QUEUE", names.TASK_QUEUE))
    a.add_argument("--train", default=None, metavar="NAME",
                   help="queue it on a release train (one per channel: nightly builds run in order)")
    identity.add_start_token(a)
    a = actions.add_parser("schedule-refresh", help="a Temporal Schedule re-signing timestamp/snapshot before expiry")
    _repository_args(a)
    a.add_argument("--every", default="6h", help="how often (default 6h; the timestamp is valid --timestamp-expiry)")
    a.add_argument("--timestamp-expiry", default="1d")
    a.add_argument("--snapshot-expiry", default="7d")
    a.add_argument("--task-queue", default=os.environ.get("ROLLOUT_TASK_QUEUE", names.TASK_QUEUE))

    pipeline.add_parser(sub)

    p = sub.add_parser("approve", help="approve the step waiting for approval")
    p.add_argument("rollout_id", metavar="ID")
    p.add_argument("--choice", default="", help="one of the approval's choices (default: the one that promotes)")
    decisions.add_arguments(p)

    for name, text in decisions.COMMANDS.items():
        p = sub.add_parser(name, help=text)
        p.add_argument("rollout_id", metavar="ID")
        if name == "set-weight":
            p.add_argument("weight", type=int, help="percent of traffic to the canary, 0-100")
        decisions.add_arguments(p)

    p = sub.add_parser("report", help="draw what a rollout did over time (PNG; HTML with the tables)")
    p.add_argument("rollout_id", metavar="ID")
    p.add_argument("--png", default=None, metavar="FILE")
    p.add_argument("--html", default=None, metavar="FILE")

    p = sub.add_parser("history", help="every decision (who, when, source, accepted or refused) and step event")
    p.add_argument("rollout_id", metavar="ID")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("list", help="list rollouts (visibility query on search attributes)")
    p.add_argument("--phase", choices=["Progressing", "Paused", "Healthy", "Degraded"])
    p.add_argument("--environment")
    p.add_argument("--strategy", choices=[*STRATEGIES, "staged", "pipeline"], help="staged: releases")
    p.add_argument("--pipeline", default=None, metavar="ID", help="only the target rollouts of this pipeline")
    p.add_argument("--awaiting-approval", action="store_true", help="only rollouts waiting for an approval")
    p.add_argument("--running", action="store_true", help="only rollouts still running")
    p.add_argument("--json", action="store_true")

    sub.add_parser("setup", help="register the rollout search attributes on TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE")

    p = sub.add_parser("worker", help="run the worker (workflows and activities)")
    p.add_argument("--task-queue", default=os.environ.get("ROLLOUT_TASK_QUEUE", names.TASK_QUEUE))
    p.add_argument("--metrics-port", type=int, default=None, help="serve the deployment and SDK metrics for Prometheus")
    worker_options.add_arguments(p)

    p = sub.add_parser("codec-server", help="decode sealed payloads for the Web UI and `temporal --codec-endpoint` "
                                            "(keys from $DURABLE_ROLLOUTS_PAYLOAD_KEY or ..._FILE); seal the ID tokens "
                                            "typed into the Web UI ($DURABLE_ROLLOUTS_TOKEN_PUBLIC_KEY)")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--origin", action="append", default=None,
                   help="a Web UI origin allowed to call it (default http://localhost:8233; repeatable)")

    parser.commands = sub  # the product's; parser_for adds the plugins' (the dev tools: dev, cluster, demo)
    return parser


def _repository_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", default="")
    p.add_argument("--endpoint", default=None, help="S3 endpoint (default: boto3's, e.g. $AWS_ENDPOINT_URL)")


def _load(path: str, takes: tuple[str, ...], command: str):
    """The document at `path` parsed by its kind, if `command` takes it; else one line per problem, exit 2."""
    from models.kinds import load_kind

    try:
        return load_kind(path, takes, command)
    except SpecError as error:
        raise UserError("\n".join(f"{error.source}: {p}" for p in error.problems), ExitCode.INVALID) from None


def _duration(option: str, text: str):
    from pydantic import TypeAdapter, ValidationError

    from models.durations import Duration

    try:
        return TypeAdapter(Duration).validate_python(text)
    except ValidationError as error:
        raise UserError(f"{option}: {error.errors()[0]['msg'].removeprefix('Value error, ')}", ExitCode.INVALID) from None


def _release(args: argparse.Namespace) -> int:
    from models.updater import Expiry
    from starters import release

    if args.action == "publish":
        document = _load(args.file, ("Release",), "rollout release publish -f")
        if args.train:
            return asyncio.run(release.submit_to_train(document, args.train, args.wait, args.timeout, args.task_queue,
                                                       args.json, args.id_token_file))
        return asyncio.run(release.publish(document, args.wait, args.timeout, args.task_queue, args.json,
                                           args.id_token_file))
    repository = release.repository_from(args.bucket, args.prefix, args.endpoint)
    if args.action == "init":
        return release.init(repository, args.keys, args.threshold, args.public_read, args.root_out)
    expiry = Expiry(timestamp=_duration("--timestamp-expiry", args.timestamp_expiry),
                    snapshot=_duration("--snapshot-expiry", args.snapshot_expiry))
    every = _duration("--every", args.every)
    if not every or every >= expiry.timestamp:
        raise UserError(f"--every {args.every}: must be shorter than the timestamp's validity "
                        f"({args.timestamp_expiry})", ExitCode.INVALID)
    return asyncio.run(release.schedule_refresh(repository, every, args.task_queue, expiry))


def run(args: argparse.Namespace) -> int:
    from starters import commands, lifecycle

    if args.command == "validate":
        rollout = _load(args.file, ("Rollout", "Release", "Pipeline"), "rollout validate -f")
        if rollout.kind == "Pipeline":
            from starters.pipeline import describe

            print(f"{args.file}: {describe(rollout)}")
            return ExitCode.OK
        if rollout.kind == "Release":
            print(f"{args.file}: valid release {rollout.rollout_id} of {rollout.version} to {rollout.target_description} "
                  f"({len(rollout.spec.phases)} phases)")
            return ExitCode.OK
        canary = rollout.spec.strategy.canary
        steps = f" ({len(canary.steps)} steps)" if canary else ""
        print(f"{args.file}: valid {rollout.spec.strategy.name} rollout {rollout.rollout_id}{steps}")
        return ExitCode.OK
    if args.command == "schema":
        from models.release import json_schema as release_schema

        print(json.dumps(json_schema() if args.kind == "Rollout" else release_schema(), indent=2))
        return ExitCode.OK
    if args.command == "start":
        rollout = _load(args.file, ("Rollout",), "rollout start -f")
        return asyncio.run(commands.start(rollout, args.wait, args.timeout, args.task_queue, args.json, args.again,
                                              args.id_token_file))
    if args.command == "analyze":
        rollout = _load(args.file, ("Rollout",), "rollout analyze -f")
        return asyncio.run(lifecycle.analyze(rollout, args.template, args.arg, args.task_queue, args.timeout, args.json))
    if args.command == "retry":
        rid = commands.normalise_id(args.rollout_id)
        return asyncio.run(lifecycle.retry(rid, args.wait, args.timeout, args.json, args.id_token_file))
    if args.command in ("undo", "restart"):
        rid = commands.normalise_id(args.rollout_id)
        if getattr(args, "to_revision", 0) < 0:
            raise UserError(f"--to-revision: {args.to_revision} is not a revision number", ExitCode.INVALID)
        return asyncio.run(lifecycle.revision_action(rid, args.command, getattr(args, "to_revision", 0), args.wait,
                                                    args.timeout, args.json))
    if args.command in ("status", "history"):
        from starters import view

        rid = commands.normalise_id(args.rollout_id)
        if args.command == "history":
            return asyncio.run(view.history(rid, args.json))
        return asyncio.run(view.status(rid, args.json, args.watch, args.timeout))
    if args.command == "report":
        from starters import report

        return asyncio.run(report.report(commands.normalise_id(args.rollout_id), args.png, args.html))
    if args.command in ("promote", "abort", "approve", "rollback", *decisions.COMMANDS):
        return decisions.decide(args)
    if args.command == "release":
        return _release(args)
    if args.command == "pipeline":
        return pipeline.run(args)
    if args.command == "list":
        from starters import listing

        return asyncio.run(listing.list_rollouts(args.phase, args.environment, args.running, args.json,
                                                  args.strategy, args.awaiting_approval, args.pipeline))
    if args.command == "setup":
        return asyncio.run(commands.setup())
    if args.command == "worker":
        try:
            options = worker_options.from_arguments(args)
        except ValueError as error:
            raise UserError(str(error), ExitCode.INVALID) from None
        from activities.artifacts import check_roots
        from workers.main import main as worker_main

        if (wrong := check_roots()) is not None:
            raise UserError(wrong, ExitCode.INVALID)

        worker_main(args.task_queue, args.metrics_port, os.environ.get("KUBECONFIG") or plugins.default_kubeconfig(),
                    options=options)
        return ExitCode.OK
    if args.command == "codec-server":
        from workers.codec import CodecServer, server_codec

        configured = server_codec()
        if configured is None:
            raise UserError("no key: set $DURABLE_ROLLOUTS_PAYLOAD_KEY(_FILE) to decode payloads, or "
                            "$DURABLE_ROLLOUTS_TOKEN_PUBLIC_KEY to seal the ID tokens typed into the Web UI")
        server = CodecServer(configured[0], args.port, args.origin or ["http://localhost:8233", "http://127.0.0.1:8233"])
        print(f"codec server on {server.url} ({configured[1]}); "
              f"temporal server start-dev --ui-codec-endpoint {server.url}", flush=True)
        server.serve_forever()
        return ExitCode.OK
    if (plugin := plugins.owner(args.command)) is not None:
        return plugin.run(args, _load)
    raise UserError(f"unknown command {args.command}")


def parser_for(argv: list[str]) -> argparse.ArgumentParser:
    """The parser for this command line: a product command's never loads a plugin."""
    parser = _parser()
    if not (argv and argv[0] in parser.commands.choices):
        plugins.add_parsers(parser.commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    if (absent := plugins.missing(sys.argv[1:] if argv is None else argv)) is not None:
        print(f"rollout: {absent}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(ExitCode.INVALID))
    args = parser_for(sys.argv[1:] if argv is None else argv).parse_args(argv)
    try:
        code = run(args)
    except UserError as error:
        print(f"rollout: {error}", file=sys.stderr)
        code = error.code
    except (PayloadKeyError, SealingError) as error:  # key settings: a user mistake like any other
        print(f"rollout: {error}", file=sys.stderr)
        code = ExitCode.INVALID
    except RPCError as error:  # Temporal answered with an error no command expects (or did not answer in time)
        print(f"rollout: Temporal: {error.status.name if error.status else 'error'}: {error.message}", file=sys.stderr)
        code = ExitCode.UNAVAILABLE
    except KeyboardInterrupt:
        code = 130
    # The Temporal client's Rust threads can crash CPython's finalization in a short-lived process
    # (temporalio/sdk-python#300): flush and leave without interpreter teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))


if __name__ == "__main__":
    main()
