"""``waymark risk-calibrate``: fit the risk weights on this deployment's own history.

Prints the held-out figures of the current and the candidate set — AUC (and among
classmates, where there are classes), precision and recall at the threshold, and the lead
time as ``waymark risk-backtest`` measures it at the held-out snapshot — and the AUC gain
with a bootstrap interval (is it more than which students were held out?); stores the
candidate only if it is better there; ``--roll-back`` makes the previous set active again.
Method and figures: docs/risk.md, "Self-calibration".
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import click

from backend.scripts import backtest, runtime
from backend.services.analytics import risk
from backend.services.analytics.risk import calibrate, parameter_sets

#: How often the held-out history is re-scored to find each student's first flag (the
#: lead time, as ``waymark risk-backtest`` measures it with its default step).
LEAD_STEP = timedelta(days=7)


@click.command("risk-calibrate")
@click.option("--outcome", default="course_withdrawn", show_default=True,
              help="Event type that marks the outcome (e.g. course_withdrawn).")
@click.option("--finished", default="course_completed", show_default=True,
              help="Event type that marks a student who completed: left out of every later "
                   "snapshot ('' for none beyond course_withdrawn and course_completed, "
                   "which every score leaves out).")
@click.option("--fit-at", type=click.DateTime(), help="Snapshot of the fit period (UTC).")
@click.option("--validate-at", type=click.DateTime(),
              help="Snapshot of the held-out period (UTC); fit labels end here.")
@click.option("--until", type=click.DateTime(), help="End of the held-out labels (default now).")
@click.option("--threshold", default=0.7, show_default=True, type=float)
@click.option("--dry-run", is_flag=True, help="Print the figures, store nothing.")
@click.option("--roll-back", is_flag=True, help="Retire the active set, reactivate the previous.")
def risk_calibrate_command(outcome: str, finished: str, fit_at: datetime | None,
                           validate_at: datetime | None,
                           until: datetime | None, threshold: float, dry_run: bool,
                           roll_back: bool) -> None:
    """Fit the risk weights on earlier periods, adopt them only if better on the latest."""
    started = time.monotonic()
    now = datetime.now(UTC)
    with runtime.locked_database("risk-calibrate") as db:
        if db is None:
            return
        with db.connection() as conn:
            if roll_back:
                retired, active = parameter_sets.roll_back(conn, now=now)
                runtime.summary("risk-calibrate", rolled_back=retired, active=active)
                return
            if fit_at is None or validate_at is None:
                raise click.UsageError("--fit-at and --validate-at are required")
            settings = runtime.load_settings()
            current_set = parameter_sets.active_set(conn)
            current = current_set.params if current_set else risk.params_from_settings(settings)
            result = calibrate.calibrate(
                conn, current=current, outcome=outcome, fit_at=fit_at.replace(tzinfo=UTC),
                validate_at=validate_at.replace(tzinfo=UTC),
                until=(until.replace(tzinfo=UTC) if until else now), threshold=threshold,
                finished=finished or None, history_days=settings.anonymize_after_days)
            for name, fig, params in (("current", result.current_figures, current),
                                      ("candidate", result.candidate_figures, result.candidate)):
                within = ("" if fig.auc_among_classmates is None else
                          f" among-classmates auc={fig.auc_among_classmates:.4f}")
                click.echo(f"{name}: held-out auc={fig.auc:.4f}{within} precision@{threshold:g}="
                           f"{fig.precision:.4f} recall@{threshold:g}={fig.recall:.4f} "
                           f"students={fig.students} outcomes={fig.positives}")
                lead = backtest.backtest(conn, outcome=outcome, as_of=result.validate_at,
                                         threshold=threshold, step=LEAD_STEP, params=params,
                                         history_days=settings.anonymize_after_days)
                click.echo(f"{name}: held-out {backtest.lead_text(lead)}")
            click.echo(gain_text(result))
            weights = {k: v for k, v in result.candidate.weights().items() if v}
            click.echo("candidate weights: " + ", ".join(f"{k}={v:g}" for k, v in weights.items()))
            adopted = None if dry_run else parameter_sets.adopt(conn, result, now=now)
        runtime.summary("risk-calibrate", better=result.better, adopted=adopted,
                        seconds=f"{time.monotonic() - started:.1f}")


def gain_text(result: calibrate.Calibration) -> str:
    """The held-out AUC gain with its bootstrap interval, and what that interval says."""
    gain = result.candidate_figures.auc - result.current_figures.auc
    if result.gain_interval is None:
        return f"candidate − current: held-out auc {gain:+.4f} (no interval: the held-out " \
               "period lacks an outcome, or the two sets saw different students)"
    low, high = result.gain_interval
    reading = ("more than chance" if low > 0 else "worse beyond chance" if high < 0
               else "within chance: the held-out students alone could make this difference")
    return (f"candidate − current: held-out auc {gain:+.4f}, 95 % interval {low:+.4f} … "
            f"{high:+.4f} over {calibrate.GAIN_DRAWS} draws of the held-out students; {reading}")


COMMANDS: list[click.Command] = [risk_calibrate_command]
