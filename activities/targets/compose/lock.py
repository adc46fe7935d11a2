"""Who is delivering to a Compose service: a container that is never started, named
`<project>.<service>.rollout-lock` (a project name has no dot, so no two services share it, where
`<project>-<service>` would: `shop-web` + `x` and `shop` + `web-x`) and labelled with the rollout's ID. The engine makes container names
unique, so creating it is a compare-and-set: a second rollout of the same service (another document, or
two pipeline targets that name one service) finds it and is refused before it changes anything. It has no
Compose labels, so `docker compose ps` does not list it. A rollout whose workflow ended without releasing
it (terminated, or its undo failed) leaves it: `docker rm <project>.<service>.rollout-lock` frees the
service, as the refusal says."""

from __future__ import annotations

from typing import Any

from activities.docker import invalid
from activities.targets.compose.containers import ensure_image, where
from models.compose import ComposeHostTarget

HOLDER = "dev.durable-rollouts.holder"


def name(t: ComposeHostTarget) -> str:
    return f"{t.project}.{t.service}.rollout-lock"


def hold(client: Any, t: ComposeHostTarget, rollout_id: str, image: str) -> None:
    """Take the service for `rollout_id` (again, on a retry), or refuse naming who holds it."""
    try:
        holder = (client.api.inspect_container(name(t))["Config"].get("Labels") or {}).get(HOLDER, "?")
    except Exception as error:  # noqa: BLE001 - not held: take it
        if getattr(error, "status_code", None) != 404:
            raise
        ensure_image(client, image)
        try:
            client.api.create_container(image, name=name(t), command=["true"], labels={HOLDER: rollout_id})
            return
        except Exception as raced:  # noqa: BLE001 - someone took it between the two calls
            if getattr(raced, "status_code", None) != 409:
                raise
        holder = (client.api.inspect_container(name(t))["Config"].get("Labels") or {}).get(HOLDER, "?")
    if holder != rollout_id:
        raise invalid(f"{where(t)}: rollout {holder} is delivering to it (finish or abort it; if it is gone, "
                      f"`docker rm {name(t)}` on the host frees the service)")


def release(client: Any, t: ComposeHostTarget, rollout_id: str) -> None:
    """Free the service if `rollout_id` holds it (a retry finds it free)."""
    try:
        holder = (client.api.inspect_container(name(t))["Config"].get("Labels") or {}).get(HOLDER)
        if holder == rollout_id:
            client.api.remove_container(name(t), force=True)
    except Exception as error:  # noqa: BLE001 - free already
        if getattr(error, "status_code", None) != 404:
            raise
