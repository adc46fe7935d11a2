"""Verified approver identity: an approval policy may require each vote to carry an OIDC ID token (the
company's identity provider for people, a CI provider's OIDC token for bots), and counts the vote only
under the name the token proves.

    approval:
      approvers: [group:release-managers, ci-bot@example.com]
      identity:
        issuer: https://login.example.com          # OIDC discovery: <issuer>/.well-known/openid-configuration
        audience: "durable-rollouts:{rollout}"      # {rollout}: the rollout ID, so a token votes on one rollout
        claim: email                                # the verified name: email or sub
        groupsClaim: groups                         # optional: group:NAME also matches the token's groups

The issuer's signing keys (public, a JWKS) are fetched by an activity when the approval opens and every
hour while it waits; the token is checked in the decision's validator, deterministically (PyJWT: the
signature against those keys, `iss`, `aud`; expiry, not-before and age against the workflow's clock), so
a refused token leaves no history event for updates. A token whose audience does not name the rollout
must also be younger than `maxTokenAge`, and every token must be issued after the approval opened (a
token minted for an earlier approval, or for an earlier run of the same rollout ID, is refused). Every
token counts once per rollout, keyed on what its signature covers — its `header.payload` text — not on
the whole text (a signature segment re-padded, or an ECDSA signature turned into its twin (r, n−s),
verifies too and reads differently); that key and the token's SHA-256 are kept with the vote until the
token expires, across continued runs, the token itself nowhere.
The claims are held to their types (`exp`/`iat`/`nbf` numbers, `iat` not in the future, `aud` this
audience alone, `email_verified` the boolean true when the name is the email).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

import jwt
from pydantic import Field, field_validator

from models.durations import Duration
from models.specbase import Message, SpecModel

ROLLOUT = "{rollout}"
LEEWAY = timedelta(seconds=30)  # clock skew between the issuer and the workflow's clock
ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def https_or_loopback(url: str, field: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in LOOPBACK:
        return url  # a local issuer (tests, the demo)
    raise ValueError(f"{field}: {url!r} must be an https:// URL")


class IdentityPolicy(SpecModel):
    """Which OIDC tokens prove an approver's identity."""

    issuer: str = Field(description="the token's `iss`, exactly; its keys come from OIDC discovery under it")
    audience: str = Field(min_length=1, max_length=200,
                          description="the token's `aud`; `{rollout}` stands for the rollout ID (binds a token to it)")
    claim: Literal["email", "sub"] = Field("email", description="the claim whose value is the approver's name")
    groups_claim: str = Field("", max_length=100, description="a claim listing the person's groups (matches group:NAME)")
    jwks_uri: str = Field("", description="the issuer's JWKS, when it does not publish OIDC discovery")
    max_token_age: Duration = Field(timedelta(minutes=10),
                                    description="a token not bound to the rollout by its audience must be this young")

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return https_or_loopback(value, "issuer")

    @field_validator("jwks_uri")
    @classmethod
    def _jwks(cls, value: str) -> str:
        return https_or_loopback(value, "jwksUri") if value else value

    @property
    def bound(self) -> bool:
        return ROLLOUT in self.audience

    def audience_for(self, rollout_id: str) -> str:
        return self.audience.replace(ROLLOUT, rollout_id)


class KeysRequest(Message):
    issuer: str
    jwks_uri: str = ""


class SigningKeys(Message):
    """An issuer's public keys (a JWKS document), as an activity fetched them."""

    issuer: str
    jwks_uri: str
    keys: list[dict] = Field(default_factory=list)
    fetched_at: datetime
    seal_key: str = Field("", description="the workers' public key votes seal their token to (activities/sealing.py)")


class IdentityRequirement(Message):
    """What a vote on the open approval must prove, for the CLI and the Web UI to say (and to ask a CI
    provider for a token with this audience)."""

    issuer: str
    audience: str
    claim: str
    keys_fetched_at: datetime | None = None
    seal_key: str = Field("", description="seal the token to this public key (`id:base64`, X25519) before sending")


class VerifiedIdentity(Message):
    name: str
    issuer: str
    subject: str
    groups: list[str] = Field(default_factory=list)
    token_sha256: str
    expires_at: datetime
    token_key: str = Field("", description="what makes the token single-use: SHA-256 of its signed header.payload")


USED = "this ID token has already been used on this rollout (a token counts once)"


class VoteToVerify(Message):
    """A vote's token for the `verify_vote` local activity (a signal's: signals have no validator); the
    history keeps only the answer."""

    token: str
    policy: IdentityPolicy
    rollout_id: str
    keys: SigningKeys | None = None
    now: datetime
    used: list[str] = Field(default_factory=list, description="used tokens' SHA-256s and keys")
    opened_at: datetime | None = Field(None, description="when the approval opened: older tokens are refused")
    start: bool = Field(False, description="the starter's token (workflows/starter.py): held to maxTokenAge whatever "
                                           "its audience")
    bound: str = Field("", description="a start's: what its sealed token must be bound to (models/starter.start_purpose)")


class VoteProof(Message):
    identity: VerifiedIdentity | None = None
    problem: str = ""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


def token_key(signed: str) -> str:
    """One token's identity whatever the spelling of its signature: the SHA-256 of `header.payload`, the
    exact text the signature covers (no other text of it verifies)."""
    return hashlib.sha256(b"key:" + signed.encode()).hexdigest()


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


SEALED = "sealed:v2:"  # activities/sealing.py: sealed:v2:<key id>:<sha256>:<header.payload>:<sealed token>
SEALED_V1 = "sealed:v1:"  # the whole token sealed: nothing readable without the key


class SealedToken(NamedTuple):
    """A token as the CLI seals it: what anyone may read — the key it is sealed to, its SHA-256, its
    header and claims (`header.payload`: no signature, so no credential) — and the sealed token."""

    key_id: str
    digest: str
    claims: str
    blob: str


def sealed_parts(value: str) -> SealedToken | None:
    if not value.startswith(SEALED):
        return None
    parts = value.removeprefix(SEALED).rsplit(":", 3)
    return SealedToken(*parts) if len(parts) == 4 else None


def verify_token(token: str, policy: IdentityPolicy, rollout_id: str, keys: SigningKeys | None, now: datetime,
                 used: set[str], legacy: bool = False, opened_at: datetime | None = None,
                 start: bool = False) -> VerifiedIdentity | str:
    """The verified identity, or why the token does not prove one (one line, never the token). `legacy`:
    the checks of runs recorded before the claims were held to their types (a signal's vote in a run that
    verified inline, replayed: workflows/decisions.py). `opened_at`: when the approval opened."""
    token = token.strip()
    if token.startswith((SEALED, SEALED_V1)):  # the workers' data converter opens what it holds the key to
        return "the ID token is sealed to a key this worker does not hold (or was altered after sealing)"
    digest = token_hash(token)
    if keys is None:
        return f"the keys of {policy.issuer} are not fetched yet; try again in a moment"
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        return f"the ID token is not a JWT ({error})"
    kid, algorithm = header.get("kid"), header.get("alg")
    if algorithm not in ALGORITHMS:
        return f"the ID token's algorithm {algorithm!r} is not accepted (accepted: {', '.join(ALGORITHMS)})"
    found = [k for k in keys.keys if k.get("kid") == kid] if kid else keys.keys[:1] if len(keys.keys) == 1 else []
    if not found:
        return (f"the ID token's signing key kid={kid!r} is not among {policy.issuer}'s keys fetched at "
                f"{keys.fetched_at:%H:%M:%S} (they are fetched again every hour while the approval waits)")
    audience = policy.audience_for(rollout_id)
    try:
        key = jwt.PyJWK.from_json(json.dumps(found[0]), algorithm=algorithm)
        # The times are checked below against the workflow's clock, not the machine's (determinism).
        claims = jwt.decode(token, key, algorithms=[algorithm], audience=audience, issuer=policy.issuer,
                            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                                     "require": ["iss", "aud", "exp", "iat"]})
    except jwt.InvalidAudienceError:
        return f"the ID token is not for this rollout (its audience must be {audience!r})"
    except jwt.InvalidIssuerError:
        return f"the ID token was not issued by {policy.issuer}"
    except jwt.InvalidSignatureError:
        return f"the ID token's signature does not verify with {policy.issuer}'s key {kid}"
    except jwt.PyJWTError as error:
        return f"the ID token does not verify: {error}"
    if not legacy and isinstance(claims["aud"], list) and claims["aud"] != [audience]:
        return f"the ID token names other audiences besides {audience!r}: it is meant for more than this rollout"
    times = {c: claims[c] for c in ("exp", "iat", "nbf") if c in claims}
    if not legacy and not all(_number(v) for v in times.values()):
        return "the ID token's exp, iat or nbf is not a number of seconds"
    try:
        expires, issued, not_before = (datetime.fromtimestamp(float(times.get(c, times["iat"])), now.tzinfo)
                                       for c in ("exp", "iat", "nbf"))
    except (TypeError, ValueError, OverflowError, OSError):
        return "the ID token's exp, iat or nbf is not a time"
    if now - LEEWAY > expires:
        return f"the ID token expired at {expires:%Y-%m-%d %H:%M:%S} UTC"
    if now + LEEWAY < not_before:
        return f"the ID token is not valid before {not_before:%Y-%m-%d %H:%M:%S} UTC"
    if not legacy and now + LEEWAY < issued:
        return f"the ID token says it was issued at {issued:%Y-%m-%d %H:%M:%S} UTC, in the future"
    if (start or not policy.bound) and now - issued > policy.max_token_age + LEEWAY:
        return f"the ID token was issued at {issued:%H:%M:%S}, longer ago than maxTokenAge allows"
    signed = token.rpartition(".")[0]
    if digest in used or token_key(signed) in used:
        return USED
    if not legacy and opened_at is not None and issued < opened_at - LEEWAY:
        return (f"the ID token was issued at {issued:%Y-%m-%d %H:%M:%S} UTC, before this approval opened "
                f"({opened_at:%H:%M:%S}): ask for a new one")
    verified = claims.get("email_verified")
    if policy.claim == "email" and (verified is False if legacy else verified is not True):
        return (f"the ID token's email {claims.get('email')} is not marked verified by {policy.issuer} "
                "(email_verified must be true; an issuer that does not verify emails: claim: sub)")
    return _identity(claims, policy, digest, expires, signed)


def _identity(claims: dict, policy: IdentityPolicy, digest: str, expires: datetime,
              signed: str) -> VerifiedIdentity | str:
    name = claims.get(policy.claim)
    if not isinstance(name, str) or not name.strip():
        return f"the ID token has no {policy.claim} claim"
    groups = claims.get(policy.groups_claim, []) if policy.groups_claim else []
    return VerifiedIdentity(name=name, issuer=policy.issuer, subject=str(claims.get("sub", "")),
                            groups=[str(g) for g in groups] if isinstance(groups, list) else [],
                            token_sha256=digest, expires_at=expires, token_key=token_key(signed))


def claims_of(token: str, policy: IdentityPolicy) -> VerifiedIdentity | str:
    """The identity an already verified token claims, read without checking it again (an accepted
    update's handler: deterministic on replay whatever the clock, the keys fetched, and whether this
    worker holds the sealing key — a sealed token's claims and hash are readable without it)."""
    token = token.strip()
    sealed = sealed_parts(token)
    readable, digest = (sealed.claims + ".", sealed.digest) if sealed else (token, token_hash(token))
    signed = sealed.claims if sealed else token.rpartition(".")[0]
    try:
        claims = jwt.decode(readable, options={"verify_signature": False})
        expires = datetime.fromtimestamp(float(claims["exp"]), UTC)
    except (jwt.PyJWTError, KeyError, TypeError, ValueError, OverflowError) as error:
        return f"the ID token cannot be read ({type(error).__name__})"
    return _identity(claims, policy, digest, expires, signed)
