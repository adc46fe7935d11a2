"""Where the CLI finds the ID token that proves who votes (an approval with `identity`, models/identity.py):

1. `--id-token-file FILE` (`-`: standard input) or `--id-token TOKEN`;
2. `$ROLLOUT_ID_TOKEN` (the token) or `$ROLLOUT_ID_TOKEN_FILE` (a file holding it);
3. in a CI job, the CI provider's OIDC token requested for the approval's audience — GitHub Actions
   (`permissions: id-token: write`): `$ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with
   `$ACTIONS_ID_TOKEN_REQUEST_TOKEN` as Bearer.

The token goes into the vote's `idToken` and nowhere else (not printed, not logged), sealed to the
workers' public key when the approval advertises one (activities/sealing.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from models.identity import IdentityRequirement
from starters.exitcodes import ExitCode, UserError

GITHUB_URL, GITHUB_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"


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


def sealed(token: str, requirement: IdentityRequirement) -> str:
    """The token sealed to the workers' key the approval advertises (as given when it advertises none)."""
    from activities.sealing import seal

    return seal(token, requirement.seal_key) if requirement.seal_key else token


def ci_token(requirement: IdentityRequirement) -> str:
    """The CI provider's OIDC token for the approval's audience; a clear error when there is none."""
    url, bearer = os.environ.get(GITHUB_URL, ""), os.environ.get(GITHUB_TOKEN, "")
    if not (url and bearer):
        raise UserError(f"this approval counts only votes proven by an ID token from {requirement.issuer} "
                        f"(audience {requirement.audience}): give --id-token-file, $ROLLOUT_ID_TOKEN, or run in a "
                        f"CI job that may request OIDC tokens (${GITHUB_URL})", ExitCode.INVALID)
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
