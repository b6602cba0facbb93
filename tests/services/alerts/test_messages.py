"""What an alert e-mail says about the factors, without a database: the stored sentence, or
the phrase of old for a factor stored before sentences existed."""

from __future__ import annotations

from typing import Any

from backend.services.alerts import messages
from backend.services.analytics.risk import RiskParams

ALERT: dict[str, Any] = {"student_id": "0123456789abcdef", "direction": "entered",
                         "risk_score": 0.82, "threshold": 0.7}


def test_the_email_says_the_stored_explanation_of_each_top_factor() -> None:
    factors = [
        {"name": "days_behind_cohort", "contribution": 0.09,
         "explanation": "7 active days behind the class's median of 9 in the last 30 days"},
        {"name": "below_cohort_scores", "contribution": 0.31,
         "explanation": "mean score 52 in the last 84 days, below the class's median of 74"},
        {"name": "broken_streak", "contribution": 0.0, "explanation": "not shown: adds nothing"},
    ]
    message = messages.for_recipient({**ALERT, "factors": factors}, "teacher", "https://x/1")
    assert ("Why:\n- mean score 52 in the last 84 days, below the class's median of 74\n"
            "- 7 active days behind the class's median of 9 in the last 30 days\n") in message.text
    assert "not shown" not in message.text
    assert "<li>7 active days behind the class&#x27;s median of 9" in message.html


def test_a_factor_stored_without_an_explanation_keeps_the_phrase_of_old() -> None:
    factors = [{"name": "inactivity", "contribution": 0.4},
               {"name": "days_behind_cohort", "contribution": 0.1}]
    message = messages.for_recipient({**ALERT, "factors": factors}, "teacher", "https://x/1")
    assert ("- the student has not been active for a while\n"
            "- the student is active on fewer days than their class\n") in message.text
    # the webhook's phrases are unchanged, and every factor has one
    assert messages.factor_words(factors) == ["has not been active for a while",
                                              "is active on fewer days than their class"]


def test_every_factor_has_a_phrase_and_a_conversation_starter() -> None:
    names = set(RiskParams().weights())  # every factor of the score, weight 0 or not
    assert set(messages.FACTOR_WORDS) == set(messages.STARTERS) == names
