"""Helpers shared by the ingestion tests (issue 3): user agents, flushing, counting rows."""

from __future__ import annotations

from typing import Any

import psycopg
from flask import Flask

from backend.services.ingest.writer import EventWriter
from backend.state import get_state

CHROME_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/120.0.0.0 Safari/537.36")
IPHONE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
             "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")
GOOGLEBOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BROWSER = {"User-Agent": CHROME_UA}


def writer_of(app: Flask) -> EventWriter:
    writer: EventWriter = get_state(app).writer
    return writer


def flush(app: Flask, timeout: float = 10.0) -> None:
    """Write everything queued; fail the test if the writer could not."""
    left = writer_of(app).flush(timeout)
    assert left == 0, f"{left} events still queued"


def count(conn: psycopg.Connection[Any], table: str, where: str = "true",
          params: Any = None) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])
