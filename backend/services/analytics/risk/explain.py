"""Each risk factor in words: one sentence, made from the factor's ``detail``.

Written once, here, so every reader says the same thing: the engagement and at-risk
answers carry it as each factor's ``explanation``, the dashboard shows it, ``waymark
score`` stores it with the factors (so alert e-mails, which cannot import this package,
read it from the stored factor). The sentence is the raw fact behind the value, with the
reference it is read against ("missed 3 of 5 quests due in the last 30 days", "active on
2 of the class's median 9 days in the last 30 days"); it has no subject, so it reads after
the factor's name on the dashboard and as a bullet in an e-mail.

Only ``detail`` is read, never the parameters, so a stored assessment's factors can be
put in words when it is read back. An older stored factor may lack a key added since
(``window_days``, ``cohort``): its sentence then leaves that part out rather than guess.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Detail = Mapping[str, Any]


def explain(name: str, detail: Detail) -> str:
    """The sentence for factor ``name`` with this ``detail`` (an unknown name: its words).

    A detail this code made always fits its sentence: a failure here is a bug, and raises.
    """
    words = _SENTENCES.get(name)
    return words(detail) if words else name.replace("_", " ")


def with_explanations(factors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored factor dicts, each with its ``explanation`` (made now where a row lacks one)."""
    return [f if f.get("explanation") else
            {**f, "explanation": _explain_stored(str(f.get("name")), f.get("detail") or {})}
            for f in factors]


def _explain_stored(name: str, detail: Detail) -> str:
    """A stored row's sentence: a row written by an older version may hold a detail of
    another shape, which then reads as the factor's name rather than failing the answer."""
    try:
        return explain(name, detail)
    except (KeyError, TypeError, ValueError):
        return name.replace("_", " ")


def _num(value: float) -> str:
    """A count or a mean as a person writes it: 9, 8.5, 1.3 (at most one decimal)."""
    rounded = round(float(value), 1)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:g}"


def _plural(count: float, noun: str) -> str:
    return f"{_num(count)} {noun}{'' if _num(count) == '1' else 's'}"


def _in_last(detail: Detail, key: str = "window_days") -> str:
    """" in the last 30 days", or nothing when an older detail does not say."""
    days = detail.get(key)
    return f" in the last {_plural(days, 'day')}" if days else ""


def _cohort_name(detail: Detail) -> str:
    """Whom the student is compared with: their class, or every student scored with them."""
    return {"class": "the class", "everyone": "the school"}.get(str(detail.get("cohort")),
                                                                "the cohort")


def _cohort(detail: Detail) -> str:
    return f"{_cohort_name(detail)}'s"


def _full_share(detail: Detail, what: str) -> str:
    """"; missing 50 % of them counts in full" when a preset reads the share so (``what``
    holds ``{}`` for the share)."""
    share = detail.get("full_at_share")
    return f"; {what.format(f'{round(100 * float(share))} %')} counts in full" if share else ""


def _inactivity(d: Detail) -> str:
    days = d["days_since_last_activity"]
    if days is None:
        return "never active: only work assigned so far"
    if days < 1:
        return "active in the last 24 hours"
    return f"no activity for {_plural(int(days), 'day')}"


def _login(d: Detail) -> str:
    active, observed = int(d["active_days"]), _plural(max(1, round(d["observed_days"])), "day")
    expected = d["expected_days_per_week"]
    if not active:
        return f"not active in the last {observed} ({_plural(expected, 'day')} a week expected)"
    return (f"active on {active} of the last {observed}: "
            f"{_num(d['active_days_per_week'])} a week, {_num(expected)} expected")


def _quests(d: Detail) -> str:
    started, completed = int(d["quests_started"]), int(d["quests_completed"])
    if not started:
        return f"no quest started{_in_last(d)}"
    return f"completed {completed} of {_plural(started, 'quest')} started{_in_last(d)}"


def _sessions(d: Detail) -> str:
    sessions = int(d["sessions"])
    if not sessions:
        return f"no session{_in_last(d)}"
    return (f"{_plural(sessions, 'session')}{_in_last(d)}, "
            f"{_num(d['avg_session_minutes'])} min on average "
            f"(target {_num(d['target_minutes'])} min)")


def _streak(d: Detail) -> str:
    current, longest = int(d["current_streak_days"]), int(d["longest_streak_days"])
    if not longest:
        return "no active day, so no streak"
    if not current:
        return f"no current streak (the longest was {_in_a_row(longest)})"
    if current >= longest:
        return f"on their longest streak: {_in_a_row(current)}"
    return f"a streak of {_plural(current, 'day')} now, the longest was {longest}"


def _in_a_row(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days in a row"


def _nothing_due(d: Detail) -> str:
    return f"no quest due{_in_last(d)}"


def _missed_words(d: Detail) -> str:
    return (f"missed {int(d['quests_missed'])} of {_plural(d['quests_due'], 'quest')} "
            f"due{_in_last(d)}")


def _late_words(d: Detail) -> str:
    return (f"handed in {int(d['quests_late'])} of {_plural(d['quests_due'], 'quest')} "
            f"due{_in_last(d)} after the deadline")


def _missed(d: Detail) -> str:
    if not int(d["quests_due"]):
        return _nothing_due(d)
    return _missed_words(d) + _full_share(d, "missing {} of them")


def _late(d: Detail) -> str:
    if not int(d["quests_due"]):
        return _nothing_due(d)
    return _late_words(d) + _full_share(d, "{} of them late")


def _scores(d: Detail) -> str:
    scored, mean = int(d["scored_quests"]), d["mean_xp"]
    if mean is None:
        return f"no scored quest{_in_last(d)}"
    floor = d.get("xp_floor")
    missed = int(d.get("missed_at_floor") or 0)  # quests not handed in, counted at the floor
    reference = f"target {_num(d['xp_target'])}" + (f", floor {_num(floor)}" if floor else "")
    if missed and not scored:
        return (f"{_plural(missed, 'missed quest')} counted as {_num(floor or 0)}, "
                f"nothing else scored{_in_last(d)} ({reference})")
    counted = (f" and {_plural(missed, 'missed quest')} counted as {_num(floor or 0)}"
               if missed else "")
    return (f"mean score {_num(mean)} over {_plural(scored, 'scored quest')}{counted}"
            f"{_in_last(d)} ({reference})")


def _trend(d: Detail) -> str:
    if not int(d["earlier_active_days"]) or float(d["earlier_days"]) < 1:
        return "no earlier active weeks to compare with"
    return (f"active {_plural(d['recent_per_week'], 'day')} a week in the last "
            f"{_plural(d['recent_days'], 'day')}, {_num(d['earlier_per_week'])} before")


def _no_median_of_days(d: Detail) -> str | None:
    """What the two active-day comparisons say without a median above 0, else None."""
    median = d["cohort_median_active_days"]
    if median is None:
        return "no one to compare with"
    if not median:
        return f"no comparison: {_cohort(d)} median is 0 active days{_in_last(d)}"
    return None


def _below_activity(d: Detail) -> str:
    active, median = int(d["active_days"]), d["cohort_median_active_days"]
    if (missing := _no_median_of_days(d)) is not None:
        return missing
    if active >= median:
        return (f"active on {_plural(active, 'day')}{_in_last(d)}, "
                f"at or above {_cohort(d)} median of {_num(median)}")
    return f"active on {active} of {_cohort(d)} median {_plural(median, 'day')}{_in_last(d)}"


def _below_scores(d: Detail) -> str:
    mean, median = d["mean_xp"], d["cohort_median_xp"]
    if mean is None:
        return f"no scored quest of their own to compare with {_cohort_name(d)}"
    if not median:
        return f"no scores in {_cohort_name(d)} to compare with"
    relation = "below" if mean < median else "at or above"
    return (f"mean score {_num(mean)}{_in_last(d)}, {relation} "
            f"{_cohort(d)} median of {_num(median)}")


def _days_behind(d: Detail) -> str:
    active, median = int(d["active_days"]), d["cohort_median_active_days"]
    if (missing := _no_median_of_days(d)) is not None:
        return missing
    if active >= median:
        return (f"not behind: active on {_plural(active, 'day')}{_in_last(d)}, "
                f"{_cohort(d)} median is {_num(median)}")
    full = d.get("full_at_days_behind")
    return (f"{_plural(median - active, 'active day')} behind {_cohort(d)} median of "
            f"{_num(median)}{_in_last(d)}"
            + (f" ({_plural(full, 'day')} behind counts in full)" if full else ""))


def _percent(share: float) -> str:
    return f"{round(100 * float(share))} %"


def _against_cohort(d: Detail, fact: str, share: float) -> str:
    """``fact`` (the student's count, in the words of ``missed_deadlines`` or
    ``late_completions``) read against the cohort's median share of the same."""
    median = d["cohort_median_share"]
    if median is None:
        return f"{fact} ({_percent(share)}); no one in {_cohort_name(d)} had work due to compare with"
    if share <= median:
        return f"{fact} ({_percent(share)}), at or below {_cohort(d)} median of {_percent(median)}"
    return (f"{fact} ({_percent(share)}), {_cohort(d)} median {_percent(median)} "
            f"({round(100 * float(d['full_at_share_above']))} points above it counts in full)")


def _missed_vs_cohort(d: Detail) -> str:
    if not int(d["quests_due"]):
        return _nothing_due(d)
    return _against_cohort(d, _missed_words(d), int(d["quests_missed"]) / int(d["quests_due"]))


def _late_vs_cohort(d: Detail) -> str:
    if not int(d["quests_due"]):
        return _nothing_due(d)
    return _against_cohort(d, _late_words(d), int(d["quests_late"]) / int(d["quests_due"]))


_SENTENCES: dict[str, Callable[[Detail], str]] = {
    "inactivity": _inactivity,
    "low_login_frequency": _login,
    "low_quest_completion": _quests,
    "short_sessions": _sessions,
    "broken_streak": _streak,
    "missed_deadlines": _missed,
    "late_completions": _late,
    "low_quest_scores": _scores,
    "declining_activity": _trend,
    "below_cohort_activity": _below_activity,
    "below_cohort_scores": _below_scores,
    "days_behind_cohort": _days_behind,
    "missed_more_than_cohort": _missed_vs_cohort,
    "late_more_than_cohort": _late_vs_cohort,
}
