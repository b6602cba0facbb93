"""What an alert says, in words, for the person who reads it.

A teacher or admin gets the score, the factors that weigh most and a link to the student's
page; a parent gets what changed and a few conversation starters, never a raw score.
Waymark knows no names: the host's own page behind the link does.

Why a student is flagged is said with each factor's ``explanation``, the sentence the risk
package makes from the factor's numbers ("missed 3 of 5 quests due in the last 30 days")
and ``waymark score`` stores with it, so the e-mail says what the dashboard says. This
package may not import the analytics one (pyproject.toml, layers): it reads the sentence
from the stored factor. A factor stored before explanations existed has none; the e-mail
then uses :data:`FACTOR_WORDS`, as before.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

#: each factor as a sentence a person reads; ``{...}`` fields come from its detail.
FACTOR_WORDS = {
    "inactivity": "has not been active for a while",
    "low_login_frequency": "signs in on few days a week",
    "low_quest_completion": "starts quests but rarely finishes them",
    "short_sessions": "keeps sessions short",
    "broken_streak": "has broken their activity streak",
    "missed_deadlines": "has missed quest deadlines",
    "late_completions": "finishes quests late",
    "low_quest_scores": "earns low scores on quests",
    "declining_activity": "is less active than in earlier weeks",
    "below_cohort_activity": "is less active than their class",
    "below_cohort_scores": "scores below their class",
    "days_behind_cohort": "is active on fewer days than their class",
    "missed_more_than_cohort": "misses more deadlines than their class",
    "late_more_than_cohort": "hands in work late more often than their class",
}

#: for a parent: what to talk about, keyed by factor.
STARTERS = {
    "inactivity": "“What was the last thing you worked on? What got in the way since?”",
    "low_login_frequency": "“Is there a time in the week that would suit you for learning?”",
    "low_quest_completion": "“Which quest did you start recently? What made it hard to finish?”",
    "short_sessions": "“Would it help to set aside a quiet half hour together?”",
    "broken_streak": "“You had a good run of days earlier. What helped then?”",
    "missed_deadlines": "“Are any deadlines worrying you? Shall we look at them together?”",
    "late_completions": "“How do you plan your week? Could we make a small plan together?”",
    "low_quest_scores": "“Which part felt hardest? Who could you ask about it?”",
    "declining_activity": "“You seem to be doing less than before. How are things going?”",
    "below_cohort_activity": "“When do you usually find time to learn? Could we plan a regular slot?”",
    "below_cohort_scores": "“Which part felt hardest? Who could you ask about it?”",
    "days_behind_cohort": "“When do you usually find time to learn? Could we plan a regular slot?”",
    "missed_more_than_cohort": "“Are any deadlines worrying you? Shall we look at them together?”",
    "late_more_than_cohort": "“How do you plan your week? Could we make a small plan together?”",
}
DEFAULT_STARTER = "“How is learning going at the moment? Is there anything I can help with?”"
TOP_FACTORS = 3


@dataclass(frozen=True)
class Message:
    """One e-mail: subject, plain text and HTML."""

    subject: str
    text: str
    html: str


def _top(factors: list[dict[str, Any]], limit: int = TOP_FACTORS) -> list[dict[str, Any]]:
    weighed = [f for f in factors if float(f.get("contribution") or 0) > 0]
    weighed.sort(key=lambda f: (-float(f["contribution"]), str(f["name"])))
    return weighed[:limit]


def top_factors(factors: list[dict[str, Any]], limit: int = TOP_FACTORS) -> list[str]:
    """The factors that add most to the score, largest first (names)."""
    return [str(f["name"]) for f in _top(factors, limit)]


def factor_words(factors: list[dict[str, Any]]) -> list[str]:
    """The top factors as phrases (``"has not been active for a while"``): the webhook's."""
    return [_phrase(name) for name in top_factors(factors)]


def _phrase(name: str) -> str:
    return FACTOR_WORDS.get(name, name.replace("_", " "))


def reasons(factors: list[dict[str, Any]]) -> list[str]:
    """The top factors for an e-mail: each one's stored ``explanation`` ("missed 3 of 5
    quests due in the last 30 days"); a factor stored without one: "the student" + its
    phrase ("the student has not been active for a while")."""
    return [str(f["explanation"]) if f.get("explanation")
            else f"the student {_phrase(str(f['name']))}" for f in _top(factors)]


def for_recipient(alert: dict[str, Any], role: str, link: str) -> Message:
    """The e-mail for a teacher/admin (score, factors, link) or a parent (starters)."""
    return _for_parent(alert, link) if role == "parent" else _for_staff(alert, link)


def _short(student_id: Any) -> str:
    return str(student_id)[:8]


def _for_staff(alert: dict[str, Any], link: str) -> Message:
    who = f"Student {_short(alert['student_id'])}"
    words = reasons(alert["factors"])
    if alert["direction"] == "entered":
        subject = f"{who} is at risk of disengaging"
        lead = (f"{who}'s dropout-risk score is {alert['risk_score']:.2f} "
                f"(alert threshold {alert['threshold']:.2f}).")
        why = ["Why:", *[f"- {w}" for w in words]] if words else []
    else:
        subject = f"{who} is no longer flagged as at risk"
        lead = (f"{who}'s dropout-risk score fell to {alert['risk_score']:.2f}, "
                f"below the alert threshold {alert['threshold']:.2f}.")
        why = []
    lines = [lead, "", *why, "", f"The student's page: {link}", "",
             "You receive this because you may see this student in Waymark.",
             "Record what you do on the student's page: it helps measure what works."]
    return Message(subject, "\n".join(lines).replace("\n\n\n", "\n\n") + "\n",
                   _html(subject, lead, words if why else [],
                         "Why", link, "Open the student's page"))


def _for_parent(alert: dict[str, Any], link: str) -> Message:
    names = top_factors(alert["factors"])
    if alert["direction"] == "entered":
        subject = "Your child may need some encouragement"
        lead = ("Your child's recent activity suggests they may be losing momentum. "
                "A short, friendly conversation often helps. Some ways to start:")
        starters = [STARTERS.get(n, DEFAULT_STARTER) for n in names] or [DEFAULT_STARTER]
    else:
        subject = "Good news: your child is back on track"
        lead = "Your child's recent activity is back to a healthier pattern. You could ask:"
        starters = ["“What has been going well lately?”"]
    lines = [lead, "", *[f"- {s}" for s in starters], "", f"More detail: {link}", "",
             "You receive this because your child's account is linked to yours."]
    return Message(subject, "\n".join(lines) + "\n",
                   _html(subject, lead, starters, "Conversation starters", link,
                         "See more detail"))


def _html(subject: str, lead: str, items: list[str], heading: str, link: str,
          link_text: str) -> str:
    esc = html.escape
    listing = ("" if not items else f"<h2 style=\"font-size:16px\">{esc(heading)}</h2><ul>"
               + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>")
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(subject)}</title></head>"
            f"<body style=\"font-family:system-ui,sans-serif;max-width:560px;margin:24px auto;"
            f"color:#1f2933;line-height:1.5\"><h1 style=\"font-size:20px\">{esc(subject)}</h1>"
            f"<p>{esc(lead)}</p>{listing}"
            f"<p><a href=\"{esc(link)}\" style=\"color:#0b57d0\">{esc(link_text)}</a></p>"
            f"<p style=\"color:#616e7c;font-size:13px\">Sent by Waymark.</p></body></html>")
