"""Explainable dropout risk: a weighted sum of named factors, each 0–1 (docs/risk.md).

The package is the map of how a score is made:

* :mod:`.params` — the weights and horizons (``RiskParams``), the named presets, the
  settings that choose them (``WAYMARK_RISK_*``) and the engagement levels;
* :mod:`.inputs` — one set-based statement fetching every student's raw numbers, and
  ``score_students``, which scores them;
* :mod:`.factors` — the pure factor functions and ``assess`` (no SQL, so a calibration
  can re-assess the same inputs under many parameter sets);
* :mod:`.explain` — each factor in words, from its detail (the answers' ``explanation``);
* :mod:`.storage` — the assessments ``waymark score`` stores and the answers read back.

The names callers use are re-exported here, so ``from backend.services.analytics import
risk`` and ``risk.score_students(...)`` read as before the split.
"""

from __future__ import annotations

from backend.services.analytics.risk.explain import explain, with_explanations
from backend.services.analytics.risk.factors import (
    Cohort,
    Cohorts,
    Factor,
    RiskAssessment,
    assess,
    cohort_of,
    cohorts_of,
    rank,
)
from backend.services.analytics.risk.inputs import (
    fetch_inputs,
    save_cohorts,
    score_students,
    stored_cohorts,
    student_classes,
)
from backend.services.analytics.risk.params import (
    CALIBRATED_PARAMS,
    DEFAULT_PARAMS,
    LEVELS,
    PRESETS,
    RISK_LEVELS,
    RiskParams,
    RiskParamsError,
    level_for,
    params_from_settings,
    preset,
    risk_level_for,
)
from backend.services.analytics.risk.storage import (
    risk_history,
    store_assessments,
    stored_flagged,
    stored_summary,
)
from backend.taxonomy import NON_ACTIVITY_TYPES

__all__ = [
    "CALIBRATED_PARAMS", "Cohort", "Cohorts", "DEFAULT_PARAMS", "cohort_of", "cohorts_of", "LEVELS", "NON_ACTIVITY_TYPES", "PRESETS",
    "RISK_LEVELS", "Factor", "RiskAssessment", "RiskParams", "RiskParamsError", "assess",
    "fetch_inputs", "level_for", "params_from_settings", "preset", "rank", "risk_history",
    "risk_level_for", "save_cohorts", "score_students", "stored_cohorts", "student_classes",
    "store_assessments", "stored_flagged", "stored_summary", "explain", "with_explanations",
]
