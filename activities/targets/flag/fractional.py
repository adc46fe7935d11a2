"""A flag's `fractional` targeting as flagd evaluates it, and the one change the channel makes to it.

flagd-core 2.x (`targeting/custom_ops.py`, the evaluator the project pins): `{"fractional": args}`,
where `args[0]` is the bucketing expression when it is not a list (default: the flag key and the
`targetingKey`), and every other argument is `[variant]` or `[variant, weight]` — a missing weight
is 1, a weight is an integer. A user's bucket is `mmh3(cbor(bucketing value)) * total >> 32`; the user
gets the first variant whose running sum of weights exceeds it. Two consequences the channel relies on:
moving weight from the baseline to the released variant *next to it* moves only the boundary between
the two (everyone who had the variant keeps it; every other variant keeps all its users), and
multiplying every weight by the same integer moves nobody. Anything else — rules around the
`fractional`, the bucketing expression, other variants — is left exactly as it was.

A share is in basis points of all users who reach the `fractional` (its weight over the total weight).
"""

from __future__ import annotations

import copy
import math
from typing import Any

TOTAL = 10_000
MAX_TOTAL = 2_147_483_647  # flagd refuses a larger total weight (MaxInt32)


class Unrampable(ValueError):
    """The flag's targeting is not one the channel can ramp without moving other users; says why."""


def _fractionals(node: Any) -> list[list]:
    """Every `fractional` operation's argument list in a JSON Logic tree."""
    found: list[list] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "fractional" and isinstance(value, list):
                found.append(value)
            found.extend(_fractionals(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_fractionals(item))
    return found


def _the_fractional(targeting: Any) -> list | None:
    found = _fractionals(targeting)
    if len(found) > 1:
        raise Unrampable(f"its targeting has {len(found)} fractional operations; the channel ramps exactly one")
    return found[0] if found else None


def _buckets(args: list) -> tuple[int, list[list]]:
    """(where the variant entries start, the entries), each entry checked to be one flagd reads as is."""
    start = 0 if args and isinstance(args[0], list) else 1
    entries = args[start:]
    for entry in entries:
        if not (isinstance(entry, list) and 1 <= len(entry) <= 2 and isinstance(entry[0], str)
                and (len(entry) == 1 or (isinstance(entry[1], int) and not isinstance(entry[1], bool)))):
            raise Unrampable(f"fractional entry {entry!r} is not [variant, integer weight] (a computed variant or "
                             "weight the channel cannot move)")
    return start, entries


def _weight(entry: list) -> int:
    return max(0, entry[1]) if len(entry) == 2 else 1


def _total(entries: list[list]) -> int:
    """The fractional's total weight, one flagd evaluates (more than 0, at most MaxInt32)."""
    total = sum(_weight(e) for e in entries)
    if not 0 < total <= MAX_TOTAL:
        raise Unrampable(f"its fractional's weights add up to {total}, which flagd does not evaluate "
                         f"(more than 0, at most {MAX_TOTAL})")
    return total


def share(flag: dict, variant: str) -> int:
    """The variant's share (basis points) of the users the flag's `fractional` decides; with no
    targeting, everyone gets the default variant; a disabled flag serves nobody a variant."""
    if flag.get("state") == "DISABLED":
        return 0
    targeting = flag.get("targeting") or {}
    args = _the_fractional(targeting)
    if args is None:
        return TOTAL if not targeting and flag.get("defaultVariant") == variant else 0
    _, entries = _buckets(args)
    total = _total(entries)
    mine = sum(_weight(e) for e in entries if e[0] == variant)
    return (2 * mine * TOTAL + total) // (2 * total)


def entries(flag: dict) -> list[list] | None:
    """A copy of the flag's fractional entries as written (None: no fractional)."""
    args = _the_fractional(flag.get("targeting") or {})
    return None if args is None else copy.deepcopy(_buckets(args)[1])


def restored(flag: dict, original: list[list], variant: str, baseline: str) -> dict | None:
    """The flag with its fractional's entries put back to `original` exactly, when what is there now is
    only the channel's ramps of them: the same variants in the same order (the released one perhaps
    added at weight 0), every other weight the original's times one integer. None otherwise (someone
    else changed the split: the caller ramps to the share instead)."""
    args = _the_fractional(flag.get("targeting") or {})
    if args is None:
        return None
    start, now = _buckets(args)
    had = {entry[0] for entry in original}
    now = [entry for entry in now if entry[0] in had or entry[0] != variant]
    if [entry[0] for entry in now] != [entry[0] for entry in original]:
        return None
    total, was = _total(now), sum(_weight(e) for e in original)
    scale = total // was if was and total % was == 0 else 0
    if not scale or any(_weight(n) != scale * _weight(o) for n, o in zip(now, original, strict=True)
                        if n[0] not in (variant, baseline)):
        return None
    flag = copy.deepcopy(flag)
    args = _the_fractional(flag["targeting"])
    args[start:] = copy.deepcopy(original)
    return flag


def ramp(flag: dict, variant: str, baseline: str, basis_points: int) -> dict:
    """The flag with `variant` at `basis_points` of the `fractional`'s users, the weight taken from (or
    given back to) `baseline`; raises Unrampable when that cannot be done without moving anyone else."""
    for name in (variant, baseline):
        if name not in (flag.get("variants") or {}):
            raise Unrampable(f"it has no variant {name!r}")
    if flag.get("state") == "DISABLED" and basis_points > share(flag, variant):
        raise Unrampable("it is DISABLED (nobody gets a variant): enable it before releasing")
    flag = copy.deepcopy(flag)
    targeting = flag.get("targeting") or {}
    if not targeting:  # everyone gets defaultVariant: a two-way split moves only the baseline's users
        default = flag.get("defaultVariant")
        if default != baseline:
            raise Unrampable(f"it has no targeting and serves everyone its defaultVariant {default!r}, not the "
                             f"baseline {baseline!r}: a split would move them; give it a fractional (or name "
                             "that baseline)")
        flag["targeting"] = {"fractional": [[variant, basis_points], [baseline, TOTAL - basis_points]]}
        return flag
    args = _the_fractional(targeting)
    if args is None:
        raise Unrampable("its targeting has rules but no fractional operation to give the variant a share in")
    start, entries = _buckets(args)
    names = [e[0] for e in entries]
    if baseline not in names:
        raise Unrampable(f"its fractional has no {baseline!r} (the baseline) to take the share from")
    if variant not in names:  # a weight-0 entry just before the baseline moves nobody
        args.insert(start + names.index(baseline), [variant, 0])
        start, entries = _buckets(args)
        names = [e[0] for e in entries]
    if names.count(variant) > 1 or names.count(baseline) > 1:
        raise Unrampable(f"{variant!r} or {baseline!r} appears twice in its fractional")
    v, b = names.index(variant), names.index(baseline)
    if abs(v - b) != 1:
        between = names[min(v, b) + 1:max(v, b)]
        raise Unrampable(f"{between} sit between {variant!r} and {baseline!r} in its fractional: moving weight "
                         "between the two would move those variants' users")
    total = _total(entries)
    scale = TOTAL // math.gcd(basis_points * total, TOTAL)  # the share in whole weights, nobody moved
    if total * scale > MAX_TOTAL:
        raise Unrampable(f"its total weight {total} cannot express {basis_points / 100:g}% within flagd's maximum")
    weights = [_weight(e) * scale for e in entries]
    wanted = basis_points * total * scale // TOTAL
    given = weights[b] + weights[v] - wanted
    if given < 0:
        others = sorted(set(names) - {variant, baseline})
        raise Unrampable(f"{variant!r} and {baseline!r} hold {share(flag, variant) + share(flag, baseline)} basis "
                         f"points together, not {basis_points}; the rest is {others}'s and is not taken")
    weights[v], weights[b] = wanted, given
    for index, (entry, weight) in enumerate(zip(entries, weights, strict=True)):
        if scale != 1 or index in (v, b):  # the others keep their entries as written
            entry[1:] = [weight]
    return flag
