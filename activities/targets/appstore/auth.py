"""App Store Connect API tokens: an ES256 JWT signed with the team's API key (PyJWT with
`cryptography`): header `kid`, claims `iss` (the issuer ID), `iat`, `exp`, `aud: appstoreconnect-v1`.
Apple refuses a token that expires more than 20 minutes into the future by its own clock, so a token
lives 15 minutes: a worker clock up to 5 minutes ahead of Apple's still signs valid tokens. The key is
read here, inside the activity, from the files and variables the worker was given; a token is reused
until two minutes before it expires."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import jwt
from temporalio.exceptions import ApplicationError

KEY_FILE_ENV = "DURABLE_ROLLOUTS_APPSTORE_KEY_FILE"  # the AuthKey_XXXX.p8 App Store Connect gave
KEY_ID_ENV = "DURABLE_ROLLOUTS_APPSTORE_KEY_ID"
ISSUER_ENV = "DURABLE_ROLLOUTS_APPSTORE_ISSUER_ID"
LIFETIME = 15 * 60  # Apple's limit is 20 minutes by its clock: 5 minutes left for clock skew
REUSE_MARGIN = 120


class AppleTokens:
    def __init__(self, store: str = "App Store Connect") -> None:
        self.store = store
        self._token, self._expires, self._issued = "", 0.0, 0
        self._lock = threading.Lock()

    def _sign(self) -> str:
        missing = [name for name in (KEY_FILE_ENV, KEY_ID_ENV, ISSUER_ENV) if not os.environ.get(name)]
        if missing:
            raise ApplicationError(f"{self.store}: no API key: set ${', $'.join(missing)} on the worker",
                                   type="StoreUnauthorized", non_retryable=True)
        try:
            key = Path(os.environ[KEY_FILE_ENV]).read_text()
        except OSError as error:
            raise ApplicationError(f"{self.store}: the API key ${KEY_FILE_ENV} is unreadable: {error}",
                                   type="StoreUnauthorized", non_retryable=True) from None
        now = int(time.time())
        if now <= self._issued:  # a fresh token must differ from the one refused
            time.sleep(self._issued + 1 - time.time())
            now = self._issued + 1
        claims = {"iss": os.environ[ISSUER_ENV], "iat": now, "exp": now + LIFETIME, "aud": "appstoreconnect-v1"}
        try:
            token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": os.environ[KEY_ID_ENV], "typ": "JWT"})
        except (ValueError, TypeError, jwt.PyJWTError) as error:
            raise ApplicationError(f"{self.store}: the API key cannot sign (ES256): {error}",
                                   type="StoreUnauthorized", non_retryable=True) from None
        self._issued, self._expires = now, now + LIFETIME
        return token

    def token(self, fresh: bool = False) -> str:
        with self._lock:
            if fresh or not self._token or time.time() > self._expires - REUSE_MARGIN:
                self._token = self._sign()
            return self._token
