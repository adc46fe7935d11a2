"""A local OIDC issuer on loopback, for the verified-approver tests and the demo: OIDC discovery and a
JWKS over HTTP, ID tokens signed by its own RSA key (PyJWT), key rotation, and a GitHub-Actions-style
token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`: `GET ...&audience=X` with the request token as Bearer
answers `{"value": <ID token>}`) so the CLI's CI path runs as it does in a workflow job."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


class LocalIssuer:
    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="oidc-issuer")
        self._keys: list[tuple[str, rsa.RSAPrivateKey]] = []
        self.rotate()
        self.request_token = secrets.token_urlsafe(24)  # what a CI job's runner hands its steps
        self.ci_claims: dict = {"sub": "repo:example/checkout:ref:refs/heads/main", "email": "ci-bot@example.com"}
        self.jwks_requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LocalIssuer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def rotate(self) -> str:
        """A new signing key, published beside the old ones; tokens are signed with it from now on."""
        kid = f"key-{len(self._keys) + 1}"
        self._keys.append((kid, rsa.generate_private_key(public_exponent=65537, key_size=2048)))
        return kid

    def jwks(self) -> dict:
        keys = []
        for kid, key in self._keys:
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**public, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def mint(self, audience: str, email: str = "", sub: str = "", groups: list[str] | None = None,
             lifetime: float = 300, issued_ago: float = 0, issuer: str | None = None, at: float | None = None,
             email_checked: bool = True, **claims) -> str:
        """An ID token as the identity provider signs it (`issuer`: pretend to be another one; `at`: the
        issuer's clock, when it is not this machine's — a time-skipping test server's; `email_checked`
        False: an issuer that does not say whether it verified the email — no `email_verified`)."""
        now = (time.time() if at is None else at) - issued_ago
        payload = {"iss": issuer or self.url, "aud": audience, "iat": int(now), "exp": int(now + lifetime),
                   "sub": sub or email, **({"email": email} if email else {}),
                   **({"email_verified": True} if email and email_checked else {}),
                   **({"groups": groups} if groups is not None else {}), **claims}
        kid, key = self._keys[-1]
        return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})

    @staticmethod
    def forge(token: str, **claims) -> str:
        """What an attacker can make of a captured token: its payload changed, its signature kept."""
        header, payload, signature = token.split(".")
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        forged = base64.urlsafe_b64encode(json.dumps({**data, **claims}).encode()).rstrip(b"=").decode()
        return f"{header}.{forged}.{signature}"

    def github_env(self) -> dict[str, str]:
        """What a GitHub Actions job with `permissions: id-token: write` has in its environment."""
        return {"ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.url}/github/token?api-version=2.0",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token}


def _handler(issuer: LocalIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/.well-known/openid-configuration":
                return self._send(200, {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks",
                                        "id_token_signing_alg_values_supported": ["RS256"]})
            if parts.path == "/jwks":
                issuer.jwks_requests += 1
                return self._send(200, issuer.jwks())
            if parts.path == "/github/token":
                if self.headers.get("Authorization") != f"Bearer {issuer.request_token}":
                    return self._send(401, {"message": "bad request token"})
                audience = parse_qs(parts.query).get("audience", [""])[0]
                return self._send(200, {"value": issuer.mint(audience or "https://github.com/example", **issuer.ci_claims)})
            return self._send(404, {"message": "not found"})

    return Handler
