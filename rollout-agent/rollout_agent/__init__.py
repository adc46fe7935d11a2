"""rollout-agent: the device side of a durable-rollouts updater channel.

What a device acts on is verified against the channel's signed TUF metadata (python-tuf's `ngclient`):
whether it takes the release (`cohort.decide`, from the release's signed rollout state), the artifact's
length and hashes, signatures, expiry and versions. Then it backs up, installs atomically, runs the
health command and rolls back on failure (`install`), and reports what happened (`report`).
"""
