"""One check or update of a device against its channel.

Each check builds a new `tuf.ngclient.Updater` from the embedded root (`bootstrap=`), refreshes the
top-level metadata (root, timestamp, snapshot, targets: signatures, thresholds, expiry, versions), reads
the channel's delegated role for `<channel>/<platform>/current` and `previous`, and decides from the
signed rollout state (`cohort.decide`). An update downloads through `ResumableFetcher`, lets python-tuf
verify length and hashes, then installs (`install.Installation`) and reports (`report.Reporter`). One
agent runs at a time per state directory (an exclusive lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from tuf.api import exceptions
from tuf.api.metadata import TargetFile
from tuf.ngclient import Updater

from rollout_agent.cohort import Decision, RolloutState, current_target, decide, previous_target
from rollout_agent.config import AgentConfig, AgentError, Check, ConfigError
from rollout_agent.fetch import Progress, ResumableFetcher
from rollout_agent.install import Installation, Limits, Outcome, write_durably
from rollout_agent.report import Reporter


class Refused(AgentError):
    """Verification failed: tampered, expired, replayed or wrongly signed metadata or artifact."""

    exit_code = 3


class Unreachable(AgentError):
    exit_code = 4


class Locked(AgentError):
    exit_code = 6


class Agent:
    def __init__(self, config: AgentConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.state_dir = Path(config.state_dir)
        self.installation = Installation(config.install_dir, Limits(config.max_members, config.max_unpacked_bytes))
        self.fetcher = ResumableFetcher(str(self.state_dir / "partial"), progress, max_seconds=config.max_download_seconds)
        self.reporter = Reporter(config, self.state_dir)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "agent.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Locked(f"another rollout-agent is running on {self.state_dir}") from None
            yield

    def _updater(self) -> Updater:
        try:
            bootstrap = Path(self.config.root).read_bytes()
        except OSError as error:
            raise ConfigError(f"root metadata {self.config.root}: {error}") from None
        metadata = self.state_dir / "metadata"
        metadata.mkdir(parents=True, exist_ok=True)
        return Updater(str(metadata), self.config.metadata_url, str(self.state_dir / "downloads"),
                       self.config.targets_url, fetcher=self.fetcher, bootstrap=bootstrap)

    @contextlib.contextmanager
    def _verifying(self) -> Iterator[None]:
        try:
            yield
        except (exceptions.RepositoryError, exceptions.DownloadLengthMismatchError) as error:
            raise Refused(f"refused: {type(error).__name__}: {error}") from None
        except exceptions.DownloadError as error:
            raise Unreachable(f"could not download: {error}") from None
        except OSError as error:
            raise Unreachable(f"could not reach the channel: {error}") from None

    def _targets(self, updater: Updater) -> tuple[TargetFile | None, TargetFile | None]:
        c = self.config
        with self._verifying():
            updater.refresh()
            return (updater.get_targetinfo(current_target(c.channel, c.platform)),
                    updater.get_targetinfo(previous_target(c.channel, c.platform)))

    def check(self) -> Check:
        return self._check(self._updater())[0]

    def _check(self, updater: Updater) -> tuple[Check, TargetFile | None, TargetFile | None]:
        current, previous = self._targets(updater)
        installed = self.installation.installed_version()
        if current is None:
            return Check(installed, Decision("stay", installed, "the channel has no release for this platform"),
                         None), None, None
        try:
            state = RolloutState.from_custom(current.custom)
        except (ValueError, TypeError) as error:
            raise Refused(f"refused: the signed rollout state is unreadable: {error}") from None
        try:  # the previous release: only its version matters here, and a bad one just means none
            prior = RolloutState.from_custom(previous.custom) if previous is not None else None
        except (ValueError, TypeError):
            prior = None
        decision = decide(self.config.device_id, installed, state, prior.version if prior else "")
        return Check(installed, decision, state, prior.version if prior else ""), current, previous

    def recover(self) -> Outcome | None:
        """An install interrupted during its health check (pending.json): the previous version back, the
        new one recorded as failed (not tried again) and reported."""
        outcome = self.installation.recover(self._record_failed)
        if outcome is None:
            return None
        installed = self.installation.installed_version()
        self.reporter.outcome(Check(installed, Decision("install", outcome.version, "interrupted"), None), outcome)
        return outcome

    def update(self) -> tuple[Check, Outcome | None]:
        self.recover()
        updater = self._updater()
        check, current, previous = self._check(updater)
        self._remember(check)
        if not check.decision.installs:
            self.reporter.flush()
            return check, None
        target = previous if check.decision.action == "previous" else current
        assert target is not None
        failed = self._failed()
        if failed.get(check.decision.version) == target.hashes.get("sha256"):
            check.decision = Decision("stay", check.installed, f"{check.decision.version} already failed on this "
                                                               "device: not tried again")
            return check, None
        name = RolloutState.from_custom(target.custom).local_name
        url = self._target_url(updater, target)
        with self._verifying():
            try:
                path = updater.download_target(target, str(self.state_dir / "downloads" / name))
            except (exceptions.RepositoryError, exceptions.DownloadLengthMismatchError):
                self.fetcher.discard(url)  # what arrived does not match its signed hashes: never resume it
                raise
        self.fetcher.discard(url)
        outcome = self.installation.install(Path(path), check.decision.version, name, self.config.health or None,
                                            self.config.health_timeout, target.hashes.get("sha256", ""))
        os.remove(path)
        if not outcome.ok:
            self._record_failed(outcome.version, target.hashes.get("sha256", ""))
        self.reporter.outcome(check, outcome)
        return check, outcome

    def _target_url(self, updater: Updater, target: TargetFile) -> str:
        directory, _, base = target.path.rpartition("/")
        digest = next(iter(target.hashes.values()))
        return f"{self.config.targets_url.rstrip('/')}/{directory}/{digest}.{base}"

    def _failed(self) -> dict[str, str]:
        path = self.state_dir / "failed.json"
        try:
            found = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            found = None
        if not isinstance(found, dict):
            raise AgentError(f"{path} is unreadable: remove it to try every release again")
        return found

    def _record_failed(self, version: str, digest: str) -> None:
        """A version that failed here, recorded durably (written beside, fsynced, renamed)."""
        failed = self._failed() | {version: digest}
        self.state_dir.mkdir(parents=True, exist_ok=True)
        write_durably(self.state_dir / "failed.json", failed)

    def _remember(self, check: Check) -> None:
        (self.state_dir / "last-check.json").write_text(json.dumps(check.as_dict()))

    def status(self) -> dict:
        last = self.state_dir / "last-check.json"
        return {"installed": self.installation.installed_version(), "channel": self.config.channel,
                "platform": self.config.platform, "device": self.config.device_id,
                "lastCheck": json.loads(last.read_text()) if last.exists() else None,
                "unsentReports": self.reporter.pending()}
