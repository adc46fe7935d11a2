"""An OIDC issuer's signing keys, for the approvals that require verified identity (models/identity.py).

OIDC discovery (`<issuer>/.well-known/openid-configuration`, whose `issuer` must be the issuer itself)
names the JWKS (https, or http on loopback only), unless the policy gives `jwksUri`; only the public
members of each key are kept. An issuer that answers 4xx or a document that is not a JWKS is a permanent
fault; a network error or a 5xx is retried."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.sealing import SealingError, private_keys, public_key, unseal
from models.identity import (
    SEALED,
    SEALED_V1,
    KeysRequest,
    SigningKeys,
    VoteProof,
    VoteToVerify,
    https_or_loopback,
    verify_token,
)

PUBLIC_MEMBERS = ("kty", "kid", "use", "alg", "n", "e", "crv", "x", "y")
TIMEOUT = httpx.Timeout(10.0)


class IdentityActivities:
    def __init__(self, http: httpx.Client):
        self.http = http

    def _json(self, url: str, what: str) -> dict:
        try:
            response = self.http.get(url, timeout=TIMEOUT, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise ApplicationError(f"{what} {url}: {type(error).__name__}", type="Unreachable") from None
        if response.status_code >= 500:
            raise ApplicationError(f"{what} {url}: HTTP {response.status_code}", type="Unreachable")
        if response.status_code != 200:
            raise ApplicationError(f"{what} {url}: HTTP {response.status_code}", type="Invalid", non_retryable=True)
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise ApplicationError(f"{what} {url}: not a JSON object", type="Invalid", non_retryable=True)
        return document

    @activity.defn(name="fetch_signing_keys")
    def fetch_signing_keys(self, request: KeysRequest) -> SigningKeys:
        jwks_uri = request.jwks_uri
        if not jwks_uri:
            discovery = self._json(request.issuer.rstrip("/") + "/.well-known/openid-configuration", "OIDC discovery")
            if discovery.get("issuer") != request.issuer:
                raise ApplicationError(f"OIDC discovery of {request.issuer} names another issuer "
                                       f"({discovery.get('issuer')!r})", type="Invalid", non_retryable=True)
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise ApplicationError(f"OIDC discovery of {request.issuer} has no jwks_uri", type="Invalid",
                                       non_retryable=True)
            try:  # the keys every vote is checked with: over https, like the discovery itself
                https_or_loopback(jwks_uri, "jwks_uri")
            except ValueError as error:
                raise ApplicationError(f"OIDC discovery of {request.issuer}: {error}", type="Invalid",
                                       non_retryable=True) from None
        document = self._json(jwks_uri, "JWKS")
        keys = document.get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
            raise ApplicationError(f"JWKS {jwks_uri}: no keys list", type="Invalid", non_retryable=True)
        public = [{m: k[m] for m in PUBLIC_MEMBERS if m in k} for k in keys if k.get("use", "sig") == "sig"]
        return SigningKeys(issuer=request.issuer, jwks_uri=jwks_uri, keys=public, fetched_at=datetime.now(UTC),
                           seal_key=public_key(private_keys()))

    @activity.defn(name="verify_vote")
    def verify_vote(self, vote: VoteToVerify) -> VoteProof:
        """A signal's vote checked as a validator checks an update's, run as a local activity: its answer
        (claims and hash, or why not) is what the history keeps, so a replay needs neither the token's
        key nor the cryptography. A start's token (`vote.start`) arrives sealed and is opened here, for the
        document it is bound to; one in clear is refused, whether or not this worker holds a key (it could
        be a vote, or a start, read from a history)."""
        token = vote.token.strip()
        if vote.start:
            if not token.startswith((SEALED, SEALED_V1)):
                return VoteProof(problem="the starter's ID token came in clear: a start's token must be sealed to "
                                         "the workers' key ($DURABLE_ROLLOUTS_TOKEN_KEY_FILE on the workers; "
                                         "`rollout start` seals it)")
            try:
                token = unseal(token, private_keys(), vote.bound)
            except SealingError:
                return VoteProof(problem="the starter's ID token is not sealed for this very document to a key "
                                         "this worker holds (a token read from another start or a vote opens for "
                                         "no other; a CLI of another version than the workers' seals another form)")
        proof = verify_token(token, vote.policy, vote.rollout_id, vote.keys, vote.now, set(vote.used),
                             opened_at=vote.opened_at, start=vote.start)
        return VoteProof(problem=proof) if isinstance(proof, str) else VoteProof(identity=proof)
