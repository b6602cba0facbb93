"""The OpenAPI 3.1 description of ``/api/analytics`` (served by ``routes/openapi.py``).

Paths, parameters, answers and the bearer scheme live in ``openapi.json`` next to this
module; the ingestion request bodies are generated here from the pydantic models that
validate them, and the enumerations from the constants the routes check, so the
description cannot drift from what the server accepts. ``tests/test_openapi.py`` checks
that every Flask rule under ``/api/analytics/`` is described and every described path
exists; ``tests/test_fuzz_api.py`` fuzzes every operation from it.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from backend.services.alerts.interventions import ACTIONS, NOTE_MAX_CHARS
from backend.services.analytics.risk import RISK_LEVELS
from backend.services.ingest.validation import (
    Batch,
    Collect,
    ErrorReport,
    Measure,
    SessionPing,
    TrackEvent,
)
from backend.services.roster.manage import MEMBER_ROLES, NAME_LENGTH

#: The models whose JSON Schema is a request body (by the model's name).
BODY_MODELS: tuple[type[BaseModel], ...] = (TrackEvent, Batch, ErrorReport, SessionPing,
                                            Collect, Measure)
REF_TEMPLATE = "#/components/schemas/{model}"


@functools.cache
def _document() -> dict[str, Any]:
    """Built once per process: the data file plus the generated schemas."""
    text = resources.files("backend.routes").joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    schemas = document["components"]["schemas"]
    schemas.update(body_schemas())
    _fill_enumerations(document["components"])
    return document


def document() -> dict[str, Any]:
    """A copy of the description (callers may not change the cached one)."""
    return copy.deepcopy(_document())


def body_schemas() -> dict[str, Any]:
    """The ingestion bodies' JSON Schemas, as pydantic validates them."""
    _, top = models_json_schema([(model, "validation") for model in BODY_MODELS],
                                ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = top.get("$defs", {})
    # A batch's envelope takes any list (each event is validated on its own and refused by
    # index); describe the events a client should send.
    schemas["Batch"]["properties"]["events"]["items"] = {"$ref": REF_TEMPLATE.format(
        model="TrackEvent")}
    return schemas


def _fill_enumerations(components: dict[str, Any]) -> None:
    """The closed lists the routes check, from the constants they check against."""
    components["parameters"]["Level"]["schema"]["enum"] = list(RISK_LEVELS)
    components["parameters"]["MemberRoleQuery"]["schema"]["enum"] = list(MEMBER_ROLES)
    schemas = components["schemas"]
    schemas["MemberRole"]["properties"]["member_role"]["enum"] = list(MEMBER_ROLES)
    schemas["ClassName"]["properties"]["name"].update(minLength=NAME_LENGTH[0],
                                                      maxLength=NAME_LENGTH[1])
    intervention = schemas["Intervention"]["properties"]
    intervention["action"]["enum"] = list(ACTIONS)
    intervention["note"]["maxLength"] = NOTE_MAX_CHARS
