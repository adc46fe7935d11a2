"""Where the CLI finds the ID token that proves who votes (an approval with `identity`, models/identity.py):

1. `--id-token-file FILE` (`-`: standard input) or `--id-token TOKEN`;
2. `$ROLLOUT_ID_TOKEN` (the token) or `$ROLLOUT_ID_TOKEN_FILE` (a file holding it);
3. in a CI job, the CI provider's OIDC token requested for the approval's audience — GitHub Actions
   (`permissions: id-token: write`): `$ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with
   `$ACTIONS_ID_TOKEN_REQUEST_TOKEN` as Bearer.

A start whose approvals forbid self-approval under identity is proven the same way (`starter_token`).
The token goes into the vote's (the start's) `idToken` and nowhere else (not printed, not logged), sealed to the
workers' public key when the approval advertises one (activities/sealing.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from models.identity import IdentityRequirement
from starters.exitcodes import ExitCode, UserError

GITHUB_URL, GITHUB_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"


def add_start_token(parser) -> None:  # noqa: ANN001 - an argparse parser
    """`--id-token-file` of the commands that start something (models/starter.py)."""
    parser.add_argument("--id-token-file", default=None, metavar="FILE",
                        help="an OIDC ID token proving who starts, where an approval forbids self-approval under "
                             "identity ('-': stdin; else $ROLLOUT_ID_TOKEN(_FILE) or the CI job's OIDC token)")


def given_token(flag: str | None, file: str | None) -> str:
    """The token the caller gave (flag, file, environment), or ""."""
    if file:
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text()
        except OSError as error:
            raise UserError(f"--id-token-file {file}: {error.strerror or error}", ExitCode.INVALID) from None
        return _one_token(text, f"--id-token-file {file}")
    if flag:
        return _one_token(flag, "--id-token")
    if os.environ.get("ROLLOUT_ID_TOKEN", "").strip():
        return _one_token(os.environ["ROLLOUT_ID_TOKEN"], "$ROLLOUT_ID_TOKEN")
    if os.environ.get("ROLLOUT_ID_TOKEN_FILE"):
        return given_token(None, os.environ["ROLLOUT_ID_TOKEN_FILE"])
    return ""


def _one_token(text: str, where: str) -> str:
    token = text.strip()
    if token.count(".") != 2 or any(c.isspace() for c in token):
        raise UserError(f"{where}: not an ID token (a JWT: three dot-separated parts)", ExitCode.INVALID)
    return token


def sealed(token: str, requirement: IdentityRequirement, purpose: str = "") -> str:
    """The token sealed to the workers' key the approval advertises (as given when it advertises none), for
    a vote ("") or a start (models/starter.start_purpose)."""
    from activities.sealing import seal

    return seal(token, requirement.seal_key, purpose) if requirement.seal_key else token


def starter_token(document: Any, file: str | None = None) -> str:
    """The ID token proving who starts `document`, sealed to the workers' key, when one of its approvals
    forbids self-approval under identity (models/starter.py); "" when none does. The workers' public key:
    `$DURABLE_ROLLOUTS_TOKEN_PUBLIC_KEY` (`rollout status --json` shows it under approval.identity.sealKey),
    or the key file itself; without either the start is refused, not sent with the token in clear."""
    from activities.sealing import private_keys, public_key
    from models.starter import start_purpose, starter_identity
    from workers.codec import TOKEN_PUBLIC_KEY_ENV

    try:
        wanted = starter_identity(document)  # checked when a file is loaded; not a retried run's spec
    except ValueError as error:
        raise UserError(str(error), ExitCode.INVALID) from None
    if wanted is None:
        return ""
    path, identity = wanted
    public = os.environ.get(TOKEN_PUBLIC_KEY_ENV, "").strip() or public_key(private_keys())
    requirement = IdentityRequirement(issuer=identity.issuer, claim=identity.claim, seal_key=public,
                                      audience=identity.audience_for(document.rollout_id))
    if not public:
        raise UserError(f"{path} forbids self-approval under identity, so the start is proven by an ID token, "
                        f"sealed to the workers' key: set ${TOKEN_PUBLIC_KEY_ENV} (the workers' token key's public "
                        "half)", ExitCode.INVALID)
    token = given_token(None, file) or ci_token(requirement, f"{path} forbids self-approval under identity: the "
                                                             "start must be proven by an ID token")
    issued_by = _claims(token).get("iss")
    if issued_by != identity.issuer:  # a CI job's token where people's IdP is asked: refused here, not at the worker
        raise UserError(f"{path} asks for an ID token from {identity.issuer}; this one is from {issued_by!r} (a CI "
                        "job starts such a rollout only when the approvals' issuer is the CI's)", ExitCode.INVALID)
    return sealed(token, requirement, start_purpose(document))


def _claims(token: str) -> dict:
    """The token's claims, read without checking them (the worker checks the token)."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def ci_token(requirement: IdentityRequirement, why: str = "this approval counts only votes proven by an ID token") -> str:
    """The CI provider's OIDC token for the approval's audience; a clear error when there is none."""
    import httpx  # here: the commands that only add the flag do not import it

    url, bearer = os.environ.get(GITHUB_URL, ""), os.environ.get(GITHUB_TOKEN, "")
    if not (url and bearer):
        raise UserError(f"{why} from {requirement.issuer} (audience {requirement.audience}): give --id-token-file, "
                        f"$ROLLOUT_ID_TOKEN, or run in a CI job that may request OIDC tokens (${GITHUB_URL})",
                        ExitCode.INVALID)
    host = urlsplit(url).hostname
    try:
        response = httpx.get(url, params={"audience": requirement.audience}, timeout=30,
                             headers={"Authorization": f"Bearer {bearer}", "Accept": "application/json"})
    except httpx.HTTPError as error:
        raise UserError(f"${GITHUB_URL} ({host}): {type(error).__name__}", ExitCode.UNAVAILABLE) from None
    if response.status_code != 200:
        raise UserError(f"${GITHUB_URL} ({host}) refused the token request: HTTP {response.status_code}",
                        ExitCode.INVALID)
    try:
        value = response.json().get("value", "")
    except (ValueError, AttributeError):
        value = ""
    return _one_token(value if isinstance(value, str) else "", f"${GITHUB_URL} ({host})")
