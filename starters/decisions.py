"""The decision commands (`approve`, `reject`, `promote`, `abort`, `pause`, ...): their common
arguments, and one decision sent as the update of the same name."""

from __future__ import annotations

import argparse
import asyncio

from starters.exitcodes import ExitCode, UserError

COMMANDS = {
    "reject": "reject the step waiting for approval: the rollout rolls back",
    "pause": "hold the rollout at the next step boundary until resumed",
    "resume": "release a hold put on by pause",
    "skip-analysis": "end the running analysis as successful (recorded as skipped)",
    "set-weight": "canary: set the canary weight now, while paused",
    "halt": "release: stop new installs now, until resumed",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--by", default=None, help="who decides (default: $ROLLOUT_USER, the CI actor, or your login)")
    p.add_argument("--comment", default="", help="why (kept in the rollout's history)")
    p.add_argument("--step", type=int, default=None, metavar="N",
                   help="the step this decision is meant for: refused if the rollout is elsewhere by then")
    p.add_argument("--id-token-file", default=None, metavar="FILE", help="an OIDC ID token proving who votes ('-': stdin)")
    p.add_argument("--id-token", default=None, metavar="JWT", help="the ID token itself ($ROLLOUT_ID_TOKEN does the same)")


def decide(args: argparse.Namespace) -> int:
    """One decision, sent as the update of the same name (its validator decides whether it is taken)."""
    from models.approvals import DECISIONS
    from starters import commands, identity

    rid = commands.normalise_id(args.rollout_id)
    by = args.by or commands.who()
    kind = {"skip-analysis": "skipAnalysis", "set-weight": "setWeight"}.get(args.command, args.command)
    if args.step is not None and args.step < 1:
        raise UserError(f"--step: {args.step} is not a step number (steps count from 1)", ExitCode.INVALID)
    fields = {"by": by, "comment": args.comment, "step": args.step,
              "id_token": identity.given_token(args.id_token, args.id_token_file)}
    if kind in ("abort", "rollback"):
        if not args.reason.strip():
            raise UserError(f"--reason must say why the {'rollout is aborted' if kind == 'abort' else 'release rolls back'}",
                            ExitCode.INVALID)
        fields["reason"] = args.reason
    elif kind == "promote":
        fields["full"] = args.full
    elif kind == "approve":
        fields["choice"] = args.choice
    elif kind == "setWeight":
        if not 0 <= args.weight <= 100:
            raise UserError(f"weight: {args.weight} is not a percentage (0-100)", ExitCode.INVALID)
        fields["weight"] = args.weight
    return asyncio.run(commands.control(rid, kind, DECISIONS[kind](**fields)))
