"""Sealed ID tokens: a vote's `idToken` crosses Temporal sealed to the workers' key, so the history the
server keeps holds ciphertext only the workers can open — and the status, the audit trail and every
other payload hold only the verified claims and the token's SHA-256 (workflows/decisions.py).

The workers hold X25519 private keys, `$DURABLE_ROLLOUTS_TOKEN_KEY_FILE` (`id:base64` of the 32 raw
bytes, comma- or newline-separated; the first seals, all open). The approval's status advertises the
first key's public half (fetched with the issuer's keys by an activity), the CLI seals the token to it
(an ephemeral X25519 agreement, HKDF-SHA256, AES-256-GCM), and the workers' data converter opens it
before the workflow's validator sees it. Without a key file the token travels as it was given.

    sealed:v2:<key id>:<sha256 of the token>:<header.payload>:<base64 of the sealed token>

The token's SHA-256 and its `header.payload` (its claims, without the signature that makes it a
credential) stay readable and are bound to the ciphertext as associated data: a worker without the key
still replays an accepted vote (models/identity.claims_of reads them), and a sealed token whose readable
parts were altered does not open. `sealed:v1:` (the whole token sealed) still opens."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from models.identity import SEALED, SEALED_V1, sealed_parts, token_hash

KEY_FILE_ENV = "DURABLE_ROLLOUTS_TOKEN_KEY_FILE"
INFO = b"durable-rollouts id-token v1"
# The workers' data converter opens a decision's `idToken` (a vote) only. A start's token (`starterToken`,
# models/starter.py) stays sealed in the workflow's input: the activity that checks it opens it, for
# `start|<the document's SHA-256>` bound as associated data — so a vote, or another document's start, copied
# from a history does not open as this start's.


class SealingError(ValueError):
    """A key file that cannot be used, or a sealed token no key here opens (a user mistake: the CLI
    prints it as one line and exits 2)."""


def private_keys() -> dict[str, X25519PrivateKey]:
    """The workers' keys from `$DURABLE_ROLLOUTS_TOKEN_KEY_FILE` ({} when unset)."""
    path = os.environ.get(KEY_FILE_ENV)
    if not path:
        return {}
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise SealingError(f"${KEY_FILE_ENV}: cannot read {path}: {error.strerror}") from None
    keys = {}
    for item in (i.strip() for i in text.replace("\n", ",").split(",")):
        if not item:
            continue
        key_id, _, encoded = item.rpartition(":")
        try:
            raw = base64.b64decode(encoded, validate=True)
            keys[key_id] = X25519PrivateKey.from_private_bytes(raw)
        except (binascii.Error, ValueError):
            raise SealingError(f"${KEY_FILE_ENV} {path}: key {key_id!r} is not 32 base64 bytes") from None
    return keys


def public_key(keys: dict[str, X25519PrivateKey]) -> str:
    """`id:base64` of the sealing key's public half ("" without keys)."""
    if not keys:
        return ""
    key_id, key = next(iter(keys.items()))
    return f"{key_id}:{base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()}"


def _key(shared: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(shared)


def _encrypt(plain: bytes, public: str, associated: bytes) -> str:
    recipient = X25519PublicKey.from_public_bytes(base64.b64decode(public))
    ephemeral = X25519PrivateKey.generate()
    nonce = os.urandom(12)
    sealed = AESGCM(_key(ephemeral.exchange(recipient))).encrypt(nonce, plain, associated)
    return base64.b64encode(ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) + nonce + sealed).decode()


def _decrypt(encoded: str, key_id: str, keys: dict[str, X25519PrivateKey], associated: bytes) -> str:
    key = keys.get(key_id)
    if key is None:
        raise SealingError(f"an ID token was sealed to key {key_id!r}, which this worker does not hold")
    try:
        blob = base64.b64decode(encoded)
        shared = key.exchange(X25519PublicKey.from_public_bytes(blob[:32]))
        return AESGCM(_key(shared)).decrypt(blob[32:44], blob[44:], associated).decode()
    except (InvalidTag, ValueError):
        raise SealingError(f"a sealed ID token does not open with key {key_id!r}") from None


def _bound(readable: str, purpose: str) -> bytes:
    return readable.encode() + (f"|{purpose}".encode() if purpose else b"")


def seal(token: str, public: str, purpose: str = "") -> str:
    """`token` sealed to the workers' public key (`id:base64`), its hash and claims left readable, for
    `purpose` ("": a vote; `start|<document SHA-256>`: a start, models/starter.start_purpose)."""
    key_id, _, encoded = public.rpartition(":")
    token = token.strip()
    digest, claims = token_hash(token), token.rpartition(".")[0]
    readable = f"{key_id}:{digest}:{claims}"
    try:
        return f"{SEALED}{readable}:{_encrypt(token.encode(), encoded, _bound(readable, purpose))}"
    except (binascii.Error, ValueError):
        raise SealingError(f"the workers' public key {public[:60]!r} is not `id:base64` of 32 bytes") from None


def unseal(value: str, keys: dict[str, X25519PrivateKey], purpose: str = "") -> str:
    """The token inside a sealed value; SealingError when no key here opens it, it was sealed for another
    purpose, or its readable parts do not describe the token sealed with them."""
    if value.startswith(SEALED_V1):
        if purpose:
            raise SealingError("a sealed:v1 ID token is a vote's")
        key_id, _, encoded = value.removeprefix(SEALED_V1).rpartition(":")
        return _decrypt(encoded, key_id, keys, key_id.encode())
    parts = sealed_parts(value)
    if parts is None:
        raise SealingError("a sealed ID token is not in the sealed:v2 form")
    token = _decrypt(parts.blob, parts.key_id, keys, _bound(f"{parts.key_id}:{parts.digest}:{parts.claims}", purpose))
    if token_hash(token) != parts.digest or token.rpartition(".")[0] != parts.claims:
        raise SealingError("a sealed ID token's readable hash or claims do not match the token")
    return token


def _with_token(payload: Payload, change) -> Payload:
    """`payload` with its JSON document's `idToken` (a vote's) replaced by `change(token)` (None: unchanged)."""
    if payload.metadata.get("encoding") != b"json/plain" or b"idToken" not in payload.data:
        return payload
    document = json.loads(payload.data)
    token = document.get("idToken") if isinstance(document, dict) else None
    changed = change(token.strip()) if isinstance(token, str) and token.strip() else None
    if changed is None:
        return payload
    document["idToken"] = changed
    result = Payload()
    result.CopyFrom(payload)
    result.data = json.dumps(document).encode()
    return result


class TokenOpeningCodec(PayloadCodec):
    """The workers' side: a decision payload's sealed `idToken` opened before the workflow reads it."""

    def __init__(self, keys: dict[str, X25519PrivateKey]):
        self.keys = keys

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [_with_token(p, self._open) for p in payloads]

    def _open(self, token: str) -> str | None:
        if not token.startswith((SEALED, SEALED_V1)):
            return None
        try:
            return unseal(token, self.keys)
        except SealingError:  # left sealed: the validator refuses it, a replay reads its claims
            return None


class TokenSealingCodec(PayloadCodec):
    """The Web UI's side, in `rollout codec-server`: an `idToken` typed into a signal is sealed to the
    workers' public key on `/encode`, so it reaches the server as the CLI's do; `/decode` shows it sealed."""

    def __init__(self, public: str):
        self.public = public

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [_with_token(p, lambda t: None if t.startswith((SEALED, SEALED_V1)) else seal(t, self.public))
                for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)


class ChainCodec(PayloadCodec):
    """Codecs in order on the way out (the innermost first), in reverse on the way in."""

    def __init__(self, codecs: Sequence[PayloadCodec]):
        self.codecs = list(codecs)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        for codec in self.codecs:
            payloads = await codec.encode(payloads)
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        for codec in reversed(self.codecs):
            payloads = await codec.decode(payloads)
        return list(payloads)
