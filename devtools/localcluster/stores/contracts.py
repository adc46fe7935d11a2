"""Checking requests (and the stand-ins' own answers) against the stores' official descriptions in
`../shared/specs/`: Google's discovery documents (method, path template, query parameters, body against
the request schema, strict field names) with `jsonschema`, and Apple's OpenAPI document with
`openapi-core`. A `ContractError` names the rule broken ("TrackRelease.status: 'paused' is not one of
…"); the stand-ins answer it with a 400 and keep it in their `violations`, which the tests assert empty.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jsonschema

from localcluster import SHARED

SPECS = SHARED / "specs"


class ContractError(ValueError):
    pass


def specs_dir() -> Path:
    if not SPECS.is_dir():
        raise FileNotFoundError(f"{SPECS}: the official API descriptions (../shared/specs beside the repository)")
    return SPECS


def _regex(template: str) -> re.Pattern[str]:
    """A discovery path template as a regex: `{x}` one segment (up to a `:` verb), `{+x}` anything."""
    out, pos = "", 0
    for match in re.finditer(r"\{(\+?)([^}]+)\}", template):
        out += re.escape(template[pos:match.start()])
        out += f"(?P<{re.sub(r'[^A-Za-z0-9_]', '_', match.group(2))}>{'.+?' if match.group(1) else '[^/:]+'})"
        pos = match.end()
    return re.compile("^" + out + re.escape(template[pos:]) + "$")


class DiscoveryContract:
    """One Google discovery document: `check_request` finds the method a request calls and checks it."""

    def __init__(self, path: Path) -> None:
        self.doc = json.loads(path.read_text())
        self.service = self.doc["servicePath"]
        self.methods: list[tuple[str, re.Pattern[str], dict, str]] = []  # (http method, path regex, method, kind)
        self._collect(self.doc.get("resources", {}), self.doc["name"])

    def _collect(self, resources: dict, prefix: str) -> None:
        for name, resource in resources.items():
            for method_name, method in resource.get("methods", {}).items():
                method = {**method, "id": method.get("id", f"{prefix}.{name}.{method_name}")}
                self.methods.append((method["httpMethod"], _regex("/" + self.service + method["path"]), method, "json"))
                for protocol in method.get("mediaUpload", {}).get("protocols", {}).values():
                    self.methods.append((method["httpMethod"], _regex(protocol["path"]), method, "media"))
            self._collect(resource.get("resources", {}), f"{prefix}.{name}")

    @cached_property
    def _defs(self) -> dict[str, Any]:
        return {name: _json_schema(schema) for name, schema in self.doc["schemas"].items()}

    def schema(self, name: str) -> dict[str, Any]:
        return {"$ref": f"#/$defs/{name}", "$defs": self._defs}

    def find(self, http_method: str, path: str) -> tuple[dict, dict[str, str], str]:
        """The method whose path template (and the patterns of its path parameters) the request matches."""
        for verb, regex, method, kind in self.methods:
            match = regex.match(path)
            if not match or verb != http_method:
                continue
            params = method.get("parameters", {})
            if all(re.fullmatch(params.get(k, {}).get("pattern", ".*"), v) for k, v in match.groupdict().items()):
                return method, match.groupdict(), kind
        raise ContractError(f"{http_method} {path}: no method of {self.doc['name']} {self.doc['version']} has this path")

    def check_request(self, http_method: str, path: str, query: str, body: bytes, content_type: str) -> str:
        """The method's id, once the request is found valid; else ContractError."""
        method, path_params, kind = self.find(http_method, path)
        known = {**self.doc.get("parameters", {}), **method.get("parameters", {})}
        given = {k: v for k, v in parse_qs(query, keep_blank_values=True).items()}
        for name, values in given.items():
            param = known.get(name)
            if param is None or param.get("location") != "query":
                raise ContractError(f"{method['id']}: unknown query parameter {name!r}")
            for value in values:
                _check_value(method["id"], name, param, value)
        for name, param in method.get("parameters", {}).items():
            if param.get("required") and param.get("location") == "query" and name not in given:
                raise ContractError(f"{method['id']}: query parameter {name!r} is required")
        for name, value in path_params.items():
            if name in known:
                _check_value(method["id"], name, known[name], value)
        if kind == "media":
            accept = method["mediaUpload"].get("accept", ["*/*"])
            upload_type = given.get("uploadType", [""])[0]
            if upload_type not in ("media", "resumable", "multipart"):
                raise ContractError(f"{method['id']}: an upload needs uploadType media, multipart or resumable")
            if upload_type == "media" and not any(_media_matches(a, content_type) for a in accept):
                raise ContractError(f"{method['id']}: content type {content_type!r} is not one of {accept}")
            return method["id"]
        request = method.get("request")
        if request is None:
            if body.strip():
                raise ContractError(f"{method['id']}: takes no request body")
            return method["id"]
        try:
            document = json.loads(body or b"null")
        except ValueError as error:
            raise ContractError(f"{method['id']}: the body is not JSON ({error})") from None
        self.check_schema(request["$ref"], document, method["id"])
        return method["id"]

    def check_schema(self, name: str, document: Any, what: str = "") -> None:
        errors = sorted(jsonschema.Draft202012Validator(self.schema(name)).iter_errors(document),
                        key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            where = ".".join(str(p) for p in first.absolute_path) or "(body)"
            raise ContractError(f"{what or name}: {name}.{where}: {first.message}")


def _media_matches(accept: str, content_type: str) -> bool:
    return accept == "*/*" or content_type.split(";")[0].strip() == accept


def _check_value(method: str, name: str, param: dict, value: str) -> None:
    if "enum" in param and value not in param["enum"]:
        raise ContractError(f"{method}: {name}={value!r} is not one of {param['enum']}")
    if param.get("type") == "integer" and not re.fullmatch(r"-?\d+", value):
        raise ContractError(f"{method}: {name}={value!r} is not an integer")
    if param.get("type") == "boolean" and value not in ("true", "false"):
        raise ContractError(f"{method}: {name}={value!r} is not true or false")
    if "pattern" in param and not re.fullmatch(param["pattern"], value):
        raise ContractError(f"{method}: {name}={value!r} does not match {param['pattern']}")


def _json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A discovery schema as JSON Schema: `$ref` to `$defs`, int64 strings kept strings, and objects that
    list their properties closed to others (a misspelt field name is an error, as the API would ignore it)."""
    if "$ref" in schema:
        return {"$ref": f"#/$defs/{schema['$ref']}"}
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if kind == "any":
        return {}
    if kind:
        out["type"] = kind
    if "enum" in schema:
        out["enum"] = schema["enum"]
    if "properties" in schema:
        out["properties"] = {k: _json_schema(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema:
            out["additionalProperties"] = False
    if "additionalProperties" in schema:
        out["additionalProperties"] = _json_schema(schema["additionalProperties"])
    if "items" in schema:
        out["items"] = _json_schema(schema["items"])
    return out


def _closed(schema: Any) -> Any:
    """Every object schema that lists its properties and says nothing of others refuses others (OpenAPI's
    default allows them; the stand-in is stricter than the store, never looser)."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items()}
    if isinstance(schema.get("properties"), dict) and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    return out


class OpenApiContract:
    """An OpenAPI document, checked with openapi-core (path, method, parameters, body, enums, the bearer
    token's presence). `closed`: objects refuse properties they do not list, and a request refuses query
    parameters its operation does not list (Apple's document: its objects are closed)."""

    def __init__(self, path: Path, closed: bool = False) -> None:
        import yaml
        from openapi_core import Config, OpenAPI

        self.spec = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
        if closed:
            self.spec = {**self.spec, "components": _closed(self.spec.get("components", {})),
                         "paths": _closed(self.spec["paths"])}
        self.closed = closed
        self.api = OpenAPI.from_dict(self.spec, config=Config(spec_validator_cls=None))
        self.host = self.spec["servers"][0]["url"].rstrip("/")
        self.templates = [(re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(t)) + "$"), t)
                          for t in self.spec["paths"]]

    def query_names(self, http_method: str, path: str) -> set[str] | None:
        """The query parameters the operation lists (None: no such operation)."""
        for pattern, template in self.templates:
            operation = self.spec["paths"][template].get(http_method.lower()) if pattern.match(path) else None
            if operation is not None:
                params = [*self.spec["paths"][template].get("parameters", []), *operation.get("parameters", [])]
                resolved = [self._ref(p) for p in params]
                return {p["name"] for p in resolved if p.get("in") == "query"}
        return None

    def _ref(self, item: dict) -> dict:
        while "$ref" in item:
            node: Any = self.spec
            for part in item["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            item = node
        return item

    def check_request(self, http_method: str, path: str, query: str, body: bytes, content_type: str,
                      headers: dict[str, str]) -> str:
        from openapi_core.testing import MockRequest

        if self.closed and (names := self.query_names(http_method, path)) is not None:
            unknown = sorted(set(parse_qs(query, keep_blank_values=True)) - names)
            if unknown:
                raise ContractError(f"{http_method} {path}: unknown query parameter {', '.join(unknown)}")

        request = MockRequest(self.host, http_method.lower(), path, args=_flat(query), headers=headers,
                              data=body.decode() if body else None, content_type=content_type or "application/json")
        try:
            self.api.validate_request(request)
        except Exception as error:  # openapi-core's errors: the cause names the schema rule
            raise ContractError(_openapi_message(http_method, path, error)) from None
        return f"{http_method} {path}"

    def check_response(self, http_method: str, path: str, query: str, status: int, body: bytes) -> None:
        from openapi_core.testing import MockRequest, MockResponse

        request = MockRequest(self.host, http_method.lower(), path, args=_flat(query),
                              headers={"Authorization": "Bearer -"})
        try:
            self.api.validate_response(request, MockResponse(body, status_code=status,
                                                             content_type="application/json"))
        except Exception as error:
            raise ContractError("the stand-in's answer: " + _openapi_message(http_method, path, error)) from None


def _flat(query: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}


def _openapi_message(method: str, path: str, error: Exception) -> str:
    cause = error.__cause__ or error
    details = [getattr(e, "message", str(e)) for e in getattr(cause, "schema_errors", ())]
    return f"{method} {path}: {type(error).__name__}: {details[0] if details else cause}"
