"""`rollout-agent check|update|status|crash --config FILE [--json]`.

`crash` is for the application's crash handler: a crash beacon for the installed version, sent to the
telemetry endpoint (kept in the outbox while offline).

Exit codes: 0 done (up to date, or updated), 2 bad config or usage, 3 refused (verification failed:
nothing installed), 4 channel unreachable, 5 the update failed and the previous version runs again
(install or health check), 6 another agent is running.
"""

from __future__ import annotations

import argparse
import json
import sys

from rollout_agent.agent import Agent, AgentConfig, AgentError

EXIT_ROLLED_BACK = 5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rollout-agent", description="check and install a channel's releases")
    parser.add_argument("command", choices=["check", "update", "status", "crash"])
    parser.add_argument("--detail", default="", help="crash: what happened (one line)")
    parser.add_argument("--config", required=True, help="the agent's JSON config")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    quiet = args.json

    def progress(have: int, total: int) -> None:
        if not quiet:
            print(f"\r  downloading {have}/{total} bytes", end="" if have < total else "\n", file=sys.stderr)

    try:
        agent = Agent(AgentConfig.load(args.config), progress)
        with agent.locked():
            if args.command == "status":
                return _print(args, agent.status(), "")
            if args.command == "crash":
                version = agent.installation.installed_version()
                agent.reporter.crash(version, args.detail)
                return _print(args, {"crash": version, "unsentReports": agent.reporter.pending()},
                              f"crash of {version or 'nothing installed'} reported")
            if args.command == "check":
                check = agent.check()
                return _print(args, check.as_dict(), f"{check.decision.action} {check.decision.version}: "
                                                    f"{check.decision.why}")
            check, outcome = agent.update()
    except AgentError as error:
        if args.json:
            print(json.dumps({"error": str(error), "exitCode": error.exit_code}))
        else:
            print(f"rollout-agent: {error}", file=sys.stderr)
        return error.exit_code
    result = check.as_dict()
    if outcome is None:
        return _print(args, result, f"up to date: {check.decision.why}")
    result["outcome"] = {"stage": outcome.stage, "ok": outcome.ok, "message": outcome.message}
    _print(args, result, f"{outcome.stage} {outcome.version}: {outcome.message}")
    return 0 if outcome.ok else EXIT_ROLLED_BACK


def _print(args: argparse.Namespace, result: dict, line: str) -> int:
    print(json.dumps(result) if args.json else line or json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
