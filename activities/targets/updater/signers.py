"""The publisher's signing keys, read inside the activity, never through a workflow.

`$DURABLE_ROLLOUTS_TUF_SIGNERS` names a JSON file mapping key IDs to securesystemslib signer URIs:
`{"<keyid>": "file2:/keys/stable-1.pem", "<keyid>": "awskms:..."}`. A role is signed by every key of
it that the file lists; a role whose keys are not there (in production: root and targets, kept
offline) cannot be changed by the worker, and says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from securesystemslib.signer import Key, Signer
from temporalio.exceptions import ApplicationError

SIGNERS_VARIABLE = "DURABLE_ROLLOUTS_TUF_SIGNERS"


class Signers:
    def __init__(self, uris: dict[str, str]) -> None:
        self.uris = uris
        self._loaded: dict[str, Signer] = {}

    @classmethod
    def from_env(cls) -> Signers:
        path = os.environ.get(SIGNERS_VARIABLE)
        if not path:
            return cls({})
        try:
            uris = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise ApplicationError(f"${SIGNERS_VARIABLE} {path}: {type(error).__name__}", type="Invalid",
                                   non_retryable=True) from None
        if not isinstance(uris, dict):
            raise ApplicationError(f"${SIGNERS_VARIABLE} {path}: must map key IDs to signer URIs", type="Invalid",
                                   non_retryable=True)
        return cls({str(k): str(v) for k, v in uris.items()})

    def for_keys(self, role: str, keys: list[Key], threshold: int) -> list[Signer]:
        """The signers of `role`'s keys that this worker has; fewer than `threshold` is a permanent fault."""
        found = []
        for key in keys:
            uri = self.uris.get(key.keyid)
            if uri is None:
                continue
            if key.keyid not in self._loaded:
                try:
                    self._loaded[key.keyid] = Signer.from_priv_key_uri(uri, key)
                except (OSError, ValueError) as error:
                    raise ApplicationError(f"signer for {role} key {key.keyid[:12]}: {type(error).__name__}",
                                           type="Invalid", non_retryable=True) from None
            found.append(self._loaded[key.keyid])
        if len(found) < threshold:
            raise ApplicationError(f"{role}: this worker holds {len(found)} of the {threshold} keys needed "
                                   f"(${SIGNERS_VARIABLE})", type="MissingKeys", non_retryable=True)
        return found
