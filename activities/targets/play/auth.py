"""Signing in to Google as a service account: the key file (`$DURABLE_ROLLOUTS_PLAY_CREDENTIALS`, read
here, inside the activity) signs a JWT-bearer assertion with google-auth, exchanged at the key's
`token_uri` for an OAuth token with the API's scope; the token is cached until it nears expiry."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from temporalio.exceptions import ApplicationError

CREDENTIALS_ENV = "DURABLE_ROLLOUTS_PLAY_CREDENTIALS"
PUBLISHER_SCOPE = "https://www.googleapis.com/auth/androidpublisher"
REPORTING_SCOPE = "https://www.googleapis.com/auth/playdeveloperreporting"


class GoogleTokens:
    """A `TokenSource` for one scope; `store` names the API in errors."""

    def __init__(self, scope: str, store: str = "Google Play", env: str = CREDENTIALS_ENV) -> None:
        self.scope, self.store, self.env = scope, store, env
        self._credentials = None
        self._lock = threading.Lock()

    def _load(self):
        from google.oauth2 import service_account

        path = os.environ.get(self.env, "")
        if not path:
            raise ApplicationError(f"{self.store}: no service-account key: set ${self.env} on the worker",
                                   type="StoreUnauthorized", non_retryable=True)
        try:
            info = json.loads(Path(path).read_text())
            return service_account.Credentials.from_service_account_info(info, scopes=[self.scope])
        except (OSError, ValueError, KeyError) as error:
            raise ApplicationError(f"{self.store}: the service-account key ${self.env} is unusable: {error}",
                                   type="StoreUnauthorized", non_retryable=True) from None

    def token(self, fresh: bool = False) -> str:
        import google.auth.exceptions
        import google.auth.transport.requests

        with self._lock:
            if self._credentials is None or fresh:
                self._credentials = self._load()
            credentials = self._credentials
            if not credentials.valid:
                try:
                    credentials.refresh(google.auth.transport.requests.Request())
                except google.auth.exceptions.RefreshError as error:
                    raise ApplicationError(f"{self.store}: sign-in refused: {error.args[0] if error.args else error}",
                                           type="StoreUnauthorized", non_retryable=True) from None
                except google.auth.exceptions.TransportError as error:
                    raise ApplicationError(f"{self.store}: sign-in: unreachable ({error})",
                                           type="StoreUnavailable") from None
            return credentials.token
