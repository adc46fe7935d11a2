"""How the traffic simulator follows each router's live configuration: for one simulated request (its
headers), which Service serves it, and which Service (if any) gets a shadow copy.

- Service: the Service itself (its endpoints decide the version: replica-ratio canaries).
- Istio VirtualService: the first HTTP route whose `match` fits (none: everything), a destination
  picked by `weight` (a `subset` narrows the host's endpoints to its DestinationRule labels),
  `mirror` copied with `mirrorPercentage`.
- Ingress (ingress-nginx): the canary Ingress of the same host decides by `canary-by-header`
  (`-value`), `canary-by-cookie`, then `canary-weight`.
- Gateway API HTTPRoute: rules with header matches before catch-all rules, a backendRef picked by
  `weight`, `RequestMirror` filters copied with `percent`.
"""

from __future__ import annotations

import random
import re
from typing import Any

NGINX = "nginx.ingress.kubernetes.io/"


def annotations(obj: dict[str, Any]) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}


def short(host: str) -> str:
    return host.split(".", 1)[0]


def weighted(rng: random.Random, items: list[tuple[str, float]]) -> str | None:
    total = sum(weight for _, weight in items)
    if not items or total <= 0:
        return None
    point = rng.random() * total
    for name, weight in items:
        point -= weight
        if point < 0:
            return name
    return items[-1][0]


def cookies(headers: dict[str, str]) -> dict[str, str]:
    pairs = (part.strip().split("=", 1) for part in headers.get("cookie", "").split(";") if "=" in part)
    return {name: value for name, value in pairs}


# ---- Istio ----------------------------------------------------------------------------------------


def _istio_header_ok(value: str | None, condition: dict[str, str]) -> bool:
    if value is None:
        return False
    if "exact" in condition:
        return value == condition["exact"]
    if "prefix" in condition:
        return value.startswith(condition["prefix"])
    return re.fullmatch(condition.get("regex", ".*"), value) is not None


def _istio_target(destination: dict[str, Any]) -> str:
    """"service", or "service/subset" for a DestinationRule subset."""
    host = short(destination["host"])
    return f"{host}/{destination['subset']}" if destination.get("subset") else host


def istio(vs: dict[str, Any], headers: dict[str, str], rng: random.Random) -> tuple[str | None, str | None]:
    for route in (vs.get("spec") or {}).get("http") or []:
        matches = route.get("match") or [{}]
        if not any(all(_istio_header_ok(headers.get(k.lower()), c) for k, c in (m.get("headers") or {}).items())
                   for m in matches):
            continue
        destinations = route.get("route") or []
        default = 100 if len(destinations) == 1 else 0
        serve = weighted(rng, [(_istio_target(d["destination"]), d.get("weight", default)) for d in destinations])
        shadow = None
        if route.get("mirror"):
            percent = (route.get("mirrorPercentage") or {}).get("value", 100.0)
            if rng.random() * 100 < percent:
                shadow = _istio_target(route["mirror"])
        return serve, shadow
    return None, None


# ---- Gateway API ----------------------------------------------------------------------------------


def _gateway_header_ok(headers: dict[str, str], condition: dict[str, str]) -> bool:
    value = headers.get(condition["name"].lower())
    if value is None:
        return False
    if condition.get("type", "Exact") == "Exact":
        return value == condition["value"]
    return re.search(condition["value"], value) is not None


def gateway(route: dict[str, Any], headers: dict[str, str], rng: random.Random) -> tuple[str | None, str | None]:
    rules = (route.get("spec") or {}).get("rules") or []
    specific = lambda rule: -max((len(m.get("headers") or []) for m in rule.get("matches") or [{}]), default=0)  # noqa: E731
    for rule in sorted(rules, key=specific):  # stable sort: more header conditions first, then in order
        matches = rule.get("matches") or [{}]
        if not any(all(_gateway_header_ok(headers, c) for c in m.get("headers") or []) for m in matches):
            continue
        serve = weighted(rng, [(b["name"], b.get("weight", 1)) for b in rule.get("backendRefs") or []])
        shadow = None
        for f in rule.get("filters") or []:
            if f.get("type") == "RequestMirror" and rng.random() * 100 < f["requestMirror"].get("percent", 100):
                shadow = f["requestMirror"]["backendRef"]["name"]
        return serve, shadow
    return None, None


# ---- ingress-nginx --------------------------------------------------------------------------------


def _ingress_service(ingress: dict[str, Any]) -> str | None:
    for rule in (ingress.get("spec") or {}).get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            service = (path.get("backend") or {}).get("service")
            if service:
                return service["name"]
    return None


def _hosts(ingress: dict[str, Any]) -> set[str]:
    return {rule.get("host") or "" for rule in (ingress.get("spec") or {}).get("rules") or []}


def nginx(stable: dict[str, Any], ingresses: list[dict[str, Any]], headers: dict[str, str],
          rng: random.Random) -> tuple[str | None, None]:
    """Ingresses as the API's JSON (dicts)."""
    canary = next((i for i in ingresses if i is not stable and annotations(i).get(NGINX + "canary") == "true"
                   and _hosts(i) == _hosts(stable)), None)
    if canary is None:
        return _ingress_service(stable), None
    marks = annotations(canary)
    by_header = marks.get(NGINX + "canary-by-header")
    if by_header and by_header.lower() in headers:
        value = headers[by_header.lower()]
        wanted = marks.get(NGINX + "canary-by-header-value")
        if (wanted and value == wanted) or (not wanted and value == "always"):
            return _ingress_service(canary), None
        if not wanted and value == "never":
            return _ingress_service(stable), None
    by_cookie = marks.get(NGINX + "canary-by-cookie")
    if by_cookie and by_cookie in cookies(headers):
        if cookies(headers)[by_cookie] == "always":
            return _ingress_service(canary), None
        if cookies(headers)[by_cookie] == "never":
            return _ingress_service(stable), None
    weight = float(marks.get(NGINX + "canary-weight", "0") or 0)
    return _ingress_service(canary if rng.random() * 100 < weight else stable), None
