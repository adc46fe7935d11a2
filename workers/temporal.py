"""The one place that knows how to reach Temporal: address, namespace and Web UI (from the environment,
defaults for the local dev server), the data converter (pydantic, sealed by the payload codec when a key
is configured), and our search attributes. The CLI, the worker and the tests all connect through here."""

from __future__ import annotations

import os
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.runtime import Runtime

from models import names
from workers.codec import data_converter


@dataclass(frozen=True)
class TemporalSettings:
    address: str
    namespace: str
    ui: str

    @classmethod
    def from_env(cls) -> TemporalSettings:
        return cls(
            address=os.environ.get("TEMPORAL_ADDRESS", names.DEFAULT_ADDRESS),
            namespace=os.environ.get("TEMPORAL_NAMESPACE", names.DEFAULT_NAMESPACE),
            ui=os.environ.get("TEMPORAL_UI", names.DEFAULT_UI).rstrip("/"),
        )


async def connect(settings: TemporalSettings | None = None, runtime: Runtime | None = None) -> Client:
    """A client with the project's data converter (and codec); raises RuntimeError when unreachable."""
    settings = settings or TemporalSettings.from_env()
    return await Client.connect(settings.address, namespace=settings.namespace, data_converter=data_converter(),
                                runtime=runtime)


async def ensure_search_attributes(client, namespace: str) -> list[str]:
    """Register our search attributes on a server that lacks them (test server, a real cluster).

    Returns the names it added. The dev server started by `DevServer` has them from its command line.
    """
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
    from temporalio.service import RPCError, RPCStatusCode

    try:
        existing = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
        present = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as error:  # the time-skipping test server can add but not list
        if error.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        present = set()
    missing = {
        key: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
        for key, kind in names.SEARCH_ATTRIBUTES.items()
        if key not in present
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)
