"""``?format=csv``: the table of an analytics answer as a CSV download.

Every answer the dashboard shows as a table (pages, quests, campaigns, error groups,
students at risk, students, activity per day) names its list; with ``?format=csv`` the
same query answers that list as CSV instead of JSON, so a person's "Download CSV" and a
script's ``curl`` get the same rows. Nested values are written for people: a factor list
becomes ``inactivity 0.40; short sessions 0.07``, a list of classes their names.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Response, request
from flask.typing import ResponseReturnValue

from backend.routes.errors import private_json
from backend.routes.params import ParamError

FORMATS = ("json", "csv")
#: A text cell starting with one of these is a formula to a spreadsheet (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def wants_csv() -> bool:
    """Whether the request asked for CSV (``?format=csv``); 400 for an unknown format."""
    chosen = request.args.get("format", "json").strip().lower()
    if chosen not in FORMATS:
        raise ParamError(f"format must be one of {', '.join(FORMATS)}, not {chosen[:32]!r}")
    return chosen == "csv"


def answer(body: dict[str, Any], rows_key: str, filename: str) -> ResponseReturnValue:
    """``body`` as JSON, or its ``rows_key`` list as CSV when the request asked for it."""
    if not wants_csv():
        return private_json(body)
    return csv_response(body.get(rows_key) or [], filename)


def csv_response(rows: list[dict[str, Any]], filename: str) -> Response:
    """The rows as a CSV attachment (columns in the rows' own order, UTF-8)."""
    out = io.StringIO()
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: cell(value) for key, value in row.items()})
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


def cell(value: Any) -> str:
    """One value as a person reads it in a spreadsheet."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(_item(item) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {cell(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value  # a page title "=HYPERLINK(…)" stays text in a spreadsheet
    return str(value)


def _item(item: Any) -> str:
    if isinstance(item, dict) and "name" in item and "contribution" in item:
        return f"{str(item['name']).replace('_', ' ')} {float(item['contribution']):.2f}"
    if isinstance(item, dict) and "name" in item:
        return str(item["name"])
    return cell(item)
