"""Signing in to Microsoft (Partner Center, Microsoft Graph) as an app: Azure AD client credentials
through msal, with the credentials file a worker is given (`{"tenantId", "clientId", "clientSecret"}`)
read here, inside the activity. msal caches the token; a refused one is replaced by a new sign-in."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from temporalio.exceptions import ApplicationError

AUTHORITY_ENV = "DURABLE_ROLLOUTS_AZURE_AUTHORITY"  # default https://login.microsoftonline.com


class AzureTokens:
    """A `TokenSource` for one scope (`https://graph.microsoft.com/.default` …)."""

    def __init__(self, scope: str, store: str, env: str) -> None:
        self.scope, self.store, self.env = scope, store, env
        self._app = None
        self._lock = threading.Lock()

    def _build(self):
        import msal
        import requests

        path = os.environ.get(self.env, "")
        if not path:
            raise ApplicationError(f"{self.store}: no credentials: set ${self.env} on the worker",
                                   type="StoreUnauthorized", non_retryable=True)
        try:
            c = json.loads(Path(path).read_text())
            tenant, client, secret = c["tenantId"], c["clientId"], c["clientSecret"]
        except (OSError, ValueError, KeyError) as error:
            raise ApplicationError(f"{self.store}: the credentials ${self.env} are unusable: {error}",
                                   type="StoreUnauthorized", non_retryable=True) from None
        custom = os.environ.get(AUTHORITY_ENV)
        authority = f"{(custom or 'https://login.microsoftonline.com').rstrip('/')}/{tenant}"
        try:  # another authority (a sovereign cloud, a stand-in) is taken as given: no instance discovery
            return msal.ConfidentialClientApplication(client, client_credential=secret, authority=authority,
                                                      http_client=requests.Session(),
                                                      instance_discovery=False if custom else None)
        except (ValueError, requests.RequestException) as error:
            raise ApplicationError(f"{self.store}: sign-in: {error}", type="StoreUnavailable") from None

    def token(self, fresh: bool = False) -> str:
        import requests

        with self._lock:
            if self._app is None or fresh:
                self._app = self._build()
            try:
                answer = self._app.acquire_token_for_client(scopes=[self.scope])
            except requests.RequestException as error:
                raise ApplicationError(f"{self.store}: sign-in: unreachable ({error})", type="StoreUnavailable") from None
        if "access_token" not in answer:
            raise ApplicationError(f"{self.store}: sign-in refused: {answer.get('error')}: "
                                   f"{answer.get('error_description', '')}".rstrip(": "),
                                   type="StoreUnauthorized", non_retryable=True)
        return answer["access_token"]
