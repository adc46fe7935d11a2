"""Azure AD's part of the Microsoft stand-ins: the tenant's OpenID configuration and its v2.0 token
endpoint for the client-credentials grant, as msal calls them (client id and secret checked, the scope
one of the stand-in's)."""

from __future__ import annotations

from urllib.parse import parse_qs

from localcluster.stores.standin import Reply, Request, StandIn

TENANT = "6f2c0e41-9d1b-4a7e-8c55-3b1f0a9d2e77"


def azure_ad(standin: StandIn, request: Request, clients: dict[str, str], scopes: set[str]) -> Reply | None:
    """The sign-in answer when `request` is one (else None)."""
    base = f"/{TENANT}"
    if request.method == "GET" and request.path == f"{base}/v2.0/.well-known/openid-configuration":
        root = f"{standin.url}{base}"
        return Reply(200, {"issuer": f"{root}/v2.0", "token_endpoint": f"{root}/oauth2/v2.0/token",
                           "authorization_endpoint": f"{root}/oauth2/v2.0/authorize"})
    if request.method == "POST" and request.path == f"{base}/oauth2/v2.0/token":
        form = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return Reply(400, {"error": "unsupported_grant_type", "error_description": "AADSTS70003"})
        if clients.get(form.get("client_id", "")) != form.get("client_secret"):
            return Reply(401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret"})
        if form.get("scope") not in scopes:
            return Reply(400, {"error": "invalid_scope", "error_description": f"AADSTS70011: {form.get('scope')}"})
        return Reply(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": standin.issue_token()})
    return None


def credentials_file(path, client: str = "5d1f8a2b-0c3e-4f6a-9b7d-2e8c1a4f6b3d", secret: str = "s3cr3t~value") -> dict:
    """The credentials file a worker is given; returns {client: secret} for the stand-in."""
    import json

    path.write_text(json.dumps({"tenantId": TENANT, "clientId": client, "clientSecret": secret}))
    path.chmod(0o600)
    return {client: secret}
