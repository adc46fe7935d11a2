"""Who takes a release (rollout_agent.cohort, the code devices and the fleet simulator run): stable
buckets, the cohort grows as a superset, and the rules for critical releases, minimum versions,
downgrades and the previous release."""

from __future__ import annotations

from rollout_agent.cohort import RolloutState, bucket, decide, in_cohort

DEVICES = [f"device-{n}" for n in range(20_000)]


def state(**fields) -> RolloutState:
    return RolloutState(**{"version": "2.0.0", "salt": "s", "basis_points": 1000, **fields})


def test_buckets_are_stable_uniform_and_differ_per_release():
    assert bucket("device-1", "s") == bucket("device-1", "s")
    share = sum(in_cohort(d, state()) for d in DEVICES) / len(DEVICES)
    assert abs(share - 0.10) < 0.01
    same = sum(in_cohort(d, state()) == in_cohort(d, state(salt="other")) for d in DEVICES) / len(DEVICES)
    assert same < 0.85  # another release's salt draws another 10 %: most agreement is among the 90 % outside


def test_a_larger_share_is_a_superset_and_a_halt_keeps_everyone_where_they_are():
    small = {d for d in DEVICES if in_cohort(d, state(basis_points=500))}
    large = {d for d in DEVICES if in_cohort(d, state(basis_points=2500))}
    assert small < large
    assert all(decide(d, "1.0.0", state(halted=True, basis_points=10_000)).action == "stay" for d in DEVICES[:200])


def test_critical_minimum_downgrade_and_previous():
    outside = next(d for d in DEVICES if not in_cohort(d, state()))
    assert decide(outside, "1.0.0", state()).action == "stay"
    assert decide(outside, "1.0.0", state(critical=True)).why == "a critical release: phasing is bypassed"
    required = decide(outside, "1.0.0", state(minimum_version="1.5.0"))
    assert (required.action, required.why) == ("required", "1.0.0 is below the minimum 1.5.0")
    assert decide(outside, "", state(minimum_version="1.5.0")).action == "required"
    assert decide(outside, "3.0.0", state()).action == "stay"  # newer, no downgrade sanctioned
    assert decide(outside, "3.0.0", state(downgrade=True)).action == "rollback"
    assert decide(outside, "3.0.0", state(downgrade=True, halted=True)).action == "stay"
    previous = decide(outside, "0.9.0", state(), previous="1.0.0")
    assert (previous.action, previous.version) == ("previous", "1.0.0")
    assert decide(outside, "1.0.0", state(), previous="1.0.0").action == "stay"
    assert decide(outside, "2.0.0", state()).action == "stay"  # already on it
    assert decide(outside, "1.0.0", state(version="not a version")).action == "stay"


def test_the_signed_state_round_trips_through_the_custom_field():
    s = state(critical=True, minimum_version="1.2.3", artifact="app.tar.gz", release="rollout/prod/app")
    custom = s.to_custom()
    assert custom["rollout"]["basisPoints"] == 1000 and custom["rollout"]["minimumVersion"] == "1.2.3"
    assert RolloutState.from_custom(custom) == s
