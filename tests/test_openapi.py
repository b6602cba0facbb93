"""The OpenAPI description: served, valid, and describing exactly the routes that exist."""

from __future__ import annotations

import re
from typing import Any

import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from schemathesis.core.result import Ok

from backend.routes.openapi_doc import document
from backend.services.ingest.validation import TrackEvent

API_PREFIX = "/api/analytics/"
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def flask_operations(app: Flask) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every Flask rule under /api/analytics/."""
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX):
            continue
        path = re.sub(r"<(?:[a-z_]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) & METHODS:
            found.add((method, path))
    return found


def described_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items()
            for method in item if method.upper() in METHODS}


def test_every_route_is_described_and_every_description_is_a_route(app: Flask) -> None:
    routes, described = flask_operations(app), described_operations(document())
    assert routes - described == set(), "routes missing from backend/routes/openapi.json"
    assert described - routes == set(), "described paths that no route serves"
    assert len(routes) >= 35  # 34 operations and this description


def test_served_at_openapi_json_without_a_token(client: FlaskClient) -> None:
    response = client.get("/api/analytics/openapi.json")
    assert response.status_code == 200
    assert response.is_json
    assert response.json is not None and response.json["openapi"] == "3.1.0"
    assert response.json == document()


def test_ingestion_bodies_come_from_the_pydantic_models() -> None:
    schemas = document()["components"]["schemas"]
    generated = TrackEvent.model_json_schema(ref_template="#/components/schemas/{model}")
    assert schemas["TrackEvent"]["properties"] == generated["properties"]
    assert schemas["Batch"]["properties"]["events"]["maxItems"] == 100


def test_schemathesis_loads_every_operation_without_error() -> None:
    schema = schemathesis.openapi.from_dict(document())
    results = list(schema.get_all_operations())
    errors = [result.err() for result in results if not isinstance(result, Ok)]
    assert errors == []
    assert len(results) == len(described_operations(document()))


def test_document_is_not_changed_by_a_caller() -> None:
    first = document()
    first["paths"].clear()
    assert document()["paths"]
