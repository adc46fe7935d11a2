"""Optional payload encryption: every payload (spec, status, decisions, activity inputs and results) is
sealed with AES-256-GCM (`cryptography`) before it leaves the process, so the Temporal server, its
database and anyone reading histories see ciphertext. Workers, the CLI and the codec server read the
keys from the environment or a file — never from a workflow input:

    DURABLE_ROLLOUTS_PAYLOAD_KEY="2026-11:<base64 of 32 bytes>[,older-id:<base64>...]"
    DURABLE_ROLLOUTS_PAYLOAD_KEY_FILE=/run/secrets/payload-keys   (the same text)

The first key seals; every listed key opens (rotate by putting the new key first and keeping the old
ones until no history needs them). `rollout codec-server` serves the Temporal codec protocol
(`POST /decode`, `POST /encode`, also under `/{namespace}/`) so the Web UI (`--ui-codec-endpoint`)
and `temporal workflow show --codec-endpoint` show the decoded payloads.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import os
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
KEY_ENV = "DURABLE_ROLLOUTS_PAYLOAD_KEY"
KEY_FILE_ENV = "DURABLE_ROLLOUTS_PAYLOAD_KEY_FILE"


class PayloadKeyError(ValueError):
    """The configured keys are unusable, or a payload was sealed with a key this process lacks
    (a user mistake: the CLI prints it as one line and exits 2)."""


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: dict[str, bytes]):
        if not keys:
            raise PayloadKeyError("no payload key given")
        self.current, self.keys = next(iter(keys)), list(keys)
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self.current]
        sealed = []
        for payload in payloads:
            nonce = os.urandom(12)
            data = nonce + cipher.encrypt(nonce, payload.SerializeToString(), None)
            sealed.append(Payload(metadata={"encoding": ENCODING, KEY_ID: self.current.encode()}, data=data))
        return sealed

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        opened = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                opened.append(payload)  # written before encryption was turned on
                continue
            key_id = payload.metadata.get(KEY_ID, b"").decode()
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise PayloadKeyError(f"a payload was sealed with key {key_id!r}, which is not among "
                                      f"${KEY_ENV} ({', '.join(self._ciphers)})")
            try:
                opened.append(Payload.FromString(cipher.decrypt(payload.data[:12], payload.data[12:], None)))
            except InvalidTag:
                raise PayloadKeyError(f"a payload sealed with key {key_id!r} does not open with that key "
                                      "(wrong key material or damaged data)") from None
        return opened


def parse_keys(text: str, source: str) -> dict[str, bytes]:
    """`id:base64,id:base64` (newlines also separate); each key 32 bytes. Errors name the source."""
    keys: dict[str, bytes] = {}
    for item in text.replace("\n", ",").split(","):
        item = item.strip()
        if not item:
            continue
        key_id, _, encoded = item.rpartition(":")
        if not key_id:
            raise PayloadKeyError(f"{source}: each key is written id:base64 (e.g. 2026-11:...)")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise PayloadKeyError(f"{source}: key {key_id!r} is not base64") from None
        if len(key) != 32:
            raise PayloadKeyError(f"{source}: key {key_id!r} has {len(key)} bytes; AES-256 needs 32")
        keys[key_id] = key
    return keys


def codec_from_env() -> EncryptionCodec | None:
    """The codec the environment configures, or None (payloads stay plain JSON)."""
    if os.environ.get(KEY_FILE_ENV):
        path = Path(os.environ[KEY_FILE_ENV])
        try:
            text = path.read_text()
        except OSError as error:
            raise PayloadKeyError(f"${KEY_FILE_ENV}: cannot read {path}: {error.strerror}") from None
        return EncryptionCodec(parse_keys(text, str(path)))
    if os.environ.get(KEY_ENV):
        return EncryptionCodec(parse_keys(os.environ[KEY_ENV], f"${KEY_ENV}"))
    return None


def data_converter() -> DataConverter:
    """Pydantic models as JSON, sealed when a payload key is configured; on a worker holding the ID-token
    keys (activities/sealing.py), a vote's sealed token opened before the workflow reads it."""
    from activities.sealing import ChainCodec, TokenOpeningCodec, private_keys

    token_keys = private_keys()
    codecs = [c for c in (TokenOpeningCodec(token_keys) if token_keys else None, codec_from_env()) if c is not None]
    if not codecs:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=codecs[0] if len(codecs) == 1 else ChainCodec(codecs))


TOKEN_PUBLIC_KEY_ENV = "DURABLE_ROLLOUTS_TOKEN_PUBLIC_KEY"


def server_codec() -> tuple[PayloadCodec, str] | None:
    """What `rollout codec-server` does, and a line saying so: payload encryption when a payload key is
    configured; ID tokens typed into the Web UI sealed to the workers' token key when its public half
    (`$DURABLE_ROLLOUTS_TOKEN_PUBLIC_KEY`, `id:base64`, as `rollout status --json` shows it under
    approval.identity.sealKey) or the key file itself is configured. None: neither."""
    from activities.sealing import ChainCodec, TokenSealingCodec, private_keys, public_key

    public = os.environ.get(TOKEN_PUBLIC_KEY_ENV, "").strip() or public_key(private_keys())
    encryption = codec_from_env()
    codecs = [c for c in (TokenSealingCodec(public) if public else None, encryption) if c is not None]
    if not codecs:
        return None
    said = [f"payload keys {', '.join(encryption.keys)}"] if encryption else []
    said += [f"ID tokens sealed to {public.rpartition(':')[0]}"] if public else []
    return (codecs[0] if len(codecs) == 1 else ChainCodec(codecs)), "; ".join(said)


class CodecServer:
    """The Temporal codec protocol over HTTP, for the Web UI and the CLI; CORS for the UI's origins."""

    def __init__(self, codec: PayloadCodec, port: int = 0, origins: Sequence[str] = ("http://localhost:8233",)):
        self.codec, self.origins = codec, set(origins)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> CodecServer:
        threading.Thread(target=self._server.serve_forever, daemon=True, name="codec-server").start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def convert(self, action: str, body: bytes) -> bytes:
        payloads = json_format.Parse(body, Payloads()).payloads
        converted = asyncio.run(self.codec.encode(payloads) if action == "encode" else self.codec.decode(payloads))
        return json_format.MessageToJson(Payloads(payloads=converted)).encode()


def _handler(server: CodecServer) -> type[BaseHTTPRequestHandler]:
    from activities.sealing import SealingError

    class Handler(BaseHTTPRequestHandler):
        def _cors(self) -> None:
            origin = self.headers.get("Origin")
            if origin and origin in server.origins:
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Access-Control-Allow-Credentials", "true")
                self.send_header("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
                self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self._cors()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_OPTIONS(self) -> None:  # noqa: N802 - the browser's preflight
            self.send_response(204)
            self._cors()
            self.end_headers()

        def do_POST(self) -> None:  # noqa: N802
            action = urlsplit(self.path).path.rstrip("/").rsplit("/", 1)[-1]  # the Web UI adds ?preserveStorageRefs=
            if action not in ("encode", "decode"):
                return self._reply(404, json.dumps({"message": f"no such endpoint: {self.path}"}).encode())
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                self._reply(200, server.convert(action, body))
            except (PayloadKeyError, SealingError) as error:
                self._reply(400, json.dumps({"message": str(error)}).encode())
            except json_format.ParseError as error:
                self._reply(400, json.dumps({"message": f"not a payloads document: {error}"}).encode())

        def log_message(self, *args) -> None:
            pass

    return Handler
