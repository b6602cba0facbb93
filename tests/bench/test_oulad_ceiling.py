"""The stdlib ceiling study: factors from the raw CSVs, hand-computed; the logistic fit."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import oulad_ceiling
from tests.bench.test_risk_oulad import write_directory


def test_factors_at_week_four_by_hand(tmp_path: Path) -> None:
    rows, labels, groups = oulad_ceiling.factor_rows(write_directory(tmp_path / "o"), 4)

    # Day 28; only TMA 101 (due day 10) is due. Students 3 and 5 left before day 28.
    # 1: active days 0–27, TMA 101 on day 9 with 70 → idle 1 day, 14 recent days,
    #    same rate before and after, 30 % short of full marks.
    # 2: active days 0–5, submitted nothing → idle 23 days, no recent day, missed 1/1,
    #    6 earlier days in 14 and none recent: fully declining.
    # 4: never active → inactive, no login, missed 1/1, no earlier days to decline from.
    assert rows == [
        [pytest.approx(1 / 14), 0.0, 0.0, pytest.approx(0.3), 0.0, 0.0],
        [1.0, 1.0, 1.0, 0.0, 0.0, 1.0],
        [1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
    ]
    assert labels == [False, True, False]
    assert groups == [1, 2, 4]


def test_late_submission_counts_as_late_not_missed(tmp_path: Path) -> None:
    root = write_directory(tmp_path / "o")
    rows, _, _ = oulad_ceiling.factor_rows(root, 10)
    # Day 70: TMA 101 (due 10) is due; TMA 102 (due 100) is not. Student 1 submitted 101
    # on day 9 (on time) and 102 on day 60 (early, without a score): late 0, missed 0.
    assert rows[0][oulad_ceiling.FACTORS.index("late")] == 0.0
    assert rows[0][oulad_ceiling.FACTORS.index("missed")] == 0.0
    assert rows[0][oulad_ceiling.FACTORS.index("low_scores")] == pytest.approx(0.3)


def test_solve_a_small_system() -> None:
    # 2x + y = 5, x + 3y = 10 → x = 1, y = 3 (the first pivot swap is exercised too).
    assert oulad_ceiling._solve([[1.0, 3.0], [2.0, 1.0]], [10.0, 5.0]) == pytest.approx(
        [1.0, 3.0])


def test_logistic_fit_satisfies_its_score_equations() -> None:
    # At the maximum likelihood, Σ (y − p)·x = 0 for the intercept and each factor
    # (up to the tiny ridge), and a factor that raises the outcome gets a positive weight.
    rows = [[0.0], [0.2], [0.4], [0.5], [0.6], [0.8], [1.0], [0.3], [0.7], [0.9]]
    labels = [False, False, False, True, False, True, True, True, False, True]
    beta = oulad_ceiling.fit_logistic(rows, labels)
    p = [1 / (1 + math.exp(-(beta[0] + beta[1] * r[0]))) for r in rows]
    assert sum(float(y) - q for y, q in zip(labels, p, strict=True)) == pytest.approx(0, abs=1e-3)
    assert sum((float(y) - q) * r[0] for y, q, r in zip(labels, p, rows, strict=True)) == \
        pytest.approx(0, abs=1e-3)
    assert beta[1] > 0


def test_command_line_prints_the_figures(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    oulad_ceiling.main(["--data", str(write_directory(tmp_path / "o")), "--week", "4"])
    out = capsys.readouterr().out
    assert "-- week 4" in out and "3 (1)" in out
    assert out.count("alone: AUC") == len(oulad_ceiling.FACTORS)
    # Student 2 (the withdrawal) has the highest "declining": AUC 1.0 alone.
    declining = next(line for line in out.splitlines() if "declining alone" in line)
    assert declining.split()[-1] == "1.000"
