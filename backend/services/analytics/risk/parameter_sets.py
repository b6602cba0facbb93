"""Versioned risk parameter sets (``risk_parameter_sets``, migration 0140).

``waymark risk-calibrate`` stores a set only when it beat the current one on the held-out
period; the newest adopted set is active and ``waymark score`` scores with it; a roll
back retires it and makes the one before active again (none left: ``WAYMARK_RISK_*``).
``waymark demo`` stores one more kind: a set it chose for its made-up school, which has
no outcome to fit or validate on; its ``validation`` says so (``source``, no AUC), and
the answers name it by that source, so nobody takes it for a fitted set.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg

from backend.db import Row, fetch_all, fetch_one
from backend.services.analytics import QUERIES
from backend.services.analytics.risk.calibrate import Calibration
from backend.services.analytics.risk.params import RiskParams

#: Who made a set, as answers name it, when its ``validation`` does not say otherwise.
CALIBRATED = "risk-calibrate"

#: The label of scores made with ``WAYMARK_RISK_*`` (no stored set).
SETTINGS_LABEL: dict[str, Any] = {"id": None, "source": "settings", "fitted_at": None,
                                  "validation_auc": None,
                                  "validation_auc_among_classmates": None}


@dataclass(frozen=True)
class ParameterSet:
    """An active set: its id, parameters, when it was fitted, its held-out AUC (None: never
    validated, e.g. the demo's) and who made it."""

    id: int
    params: RiskParams
    fitted_at: datetime
    validation_auc: float | None
    source: str = CALIBRATED
    #: the held-out AUC among classmates (None: no classes, or not validated)
    validation_auc_among_classmates: float | None = None

    def label(self) -> dict[str, Any]:
        """What answers show so a teacher can judge how far to trust a score."""
        return {"id": self.id, "fitted_at": self.fitted_at.isoformat(),
                "validation_auc": self.validation_auc,
                "validation_auc_among_classmates": self.validation_auc_among_classmates,
                "source": self.source}


def active_set(conn: psycopg.Connection[Any]) -> ParameterSet | None:
    """The active parameter set, or None (score with the settings' parameters)."""
    row = fetch_one(conn, QUERIES["risk_set_active"])
    return _parameter_set(row) if row is not None else None


def _parameter_set(row: Row) -> ParameterSet:
    validation = row["validation"]
    held_out, within = validation.get("auc"), validation.get("auc_among_classmates")
    return ParameterSet(id=int(row["id"]), params=RiskParams.from_mapping(row["params"]),
                        fitted_at=row["fitted_at"],
                        validation_auc=float(held_out) if held_out is not None else None,
                        source=str(validation.get("source") or CALIBRATED),
                        validation_auc_among_classmates=float(within)
                        if within is not None else None)


def label_of_scores(conn: psycopg.Connection[Any],
                    made_with: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The label of the set that made most of these stored scores (``made_with``: the
    parameters each was stored with); None when there is none.

    Not the active set: stored scores keep the set that made them until the next
    ``waymark score``, so after a roll back or a new calibration they are still named by
    what really produced them. Parameters no stored set holds are the settings'. Among
    sets holding the same parameters, the active one, else the newest.
    """
    counts = Counter(RiskParams.from_mapping(p) for p in made_with)
    if not counts:
        return None
    params = max(counts, key=lambda p: counts[p])
    for row in fetch_all(conn, QUERIES["risk_sets"]):  # active, then newest; a handful
        stored = _parameter_set(row)
        if stored.params == params:
            return stored.label()
    return dict(SETTINGS_LABEL)


def adopt(conn: psycopg.Connection[Any], result: Calibration, *, now: datetime) -> int | None:
    """Store and activate the candidate if it is better on the held-out period; its id."""
    if not result.better:
        return None
    return activate(conn, result.candidate, now=now, outcome=result.outcome,
                    fit_at=result.fit_at, validate_at=result.validate_at,
                    validated_until=result.until, validation=result.validation())


def activate(conn: psycopg.Connection[Any], params: RiskParams, *, now: datetime, outcome: str,
             fit_at: datetime, validate_at: datetime, validated_until: datetime,
             validation: dict[str, Any]) -> int:
    """Store ``params`` as the active set, retiring the active one (a roll back returns to
    it); its id. ``validation`` holds the held-out figures (``auc``), or ``source`` and no
    ``auc`` for a set that was not fitted (the demo's)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(QUERIES["risk_set_retire_active"], {"now": now})
        cur.execute(QUERIES["risk_set_insert"], {
            "params": json.dumps(params.as_dict()), "now": now, "outcome": outcome,
            "fit_at": fit_at, "validate_at": validate_at, "validated_until": validated_until,
            "validation": json.dumps(validation)})
        row = cur.fetchone()
        assert row is not None
        return int(row[0])


def roll_back(conn: psycopg.Connection[Any], *, now: datetime) -> tuple[int | None, int | None]:
    """Retire the active set and reactivate the one before it: (retired id, active id)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(QUERIES["risk_set_retire_active"], {"now": now})
        retired = cur.fetchone()
        if retired is None:
            return None, None
        cur.execute(QUERIES["risk_set_activate_before"], {"id": retired[0]})
        active = cur.fetchone()
        return int(retired[0]), int(active[0]) if active else None


def effective(conn: psycopg.Connection[Any], fallback: RiskParams, *,
              days: int | None = None) -> tuple[RiskParams, dict[str, Any]]:
    """The parameters answers score with, and the label they name them by.

    The active set wins over the settings (``waymark score`` stores with it too, so the
    stored assessments are found); none active → ``fallback`` (``WAYMARK_RISK_*``).
    ``days``: the window a caller asked for, which replaces the parameters' own; without
    it the window is the set's (or the settings'), the one ``waymark score`` stored with —
    a calibration may have chosen it.
    """
    active = active_set(conn)
    params, label = (active.params, active.label()) if active else (fallback,
                                                                      dict(SETTINGS_LABEL))
    return (replace(params, window_days=days) if days is not None else params), label
