"""The named-SQL loader: headers, includes, and the mistakes it refuses."""

from __future__ import annotations

import pytest

from backend.queries import Queries, QueryError

TEXT = """
-- students --
-- who is a student: written once, included below
SELECT user_id FROM t WHERE role = 'student'

-- active_students --
WITH s AS ({{students}}) SELECT count(*) FROM s WHERE active;

-- nested --
SELECT * FROM ({{ active_students }}) AS a
"""


def test_named_statements_with_includes_resolved() -> None:
    queries = Queries(TEXT)
    assert list(queries) == ["students", "active_students", "nested"]
    assert queries["students"] == "SELECT user_id FROM t WHERE role = 'student'"
    assert queries["active_students"] == (
        "WITH s AS (SELECT user_id FROM t WHERE role = 'student') "
        "SELECT count(*) FROM s WHERE active")
    assert "role = 'student'" in queries["nested"] and "{{" not in queries["nested"]


def test_mistakes_are_refused_when_the_file_loads() -> None:
    with pytest.raises(QueryError, match="defined twice"):
        Queries("-- a --\nSELECT 1\n-- a --\nSELECT 2")
    with pytest.raises(QueryError, match="unknown 'b'"):
        Queries("-- a --\nSELECT {{b}}")
    with pytest.raises(QueryError, match="includes itself"):
        Queries("-- a --\nSELECT {{b}}\n-- b --\nSELECT {{a}}")
    with pytest.raises(QueryError, match="no query named 'c'"):
        Queries("-- a --\nSELECT 1")["c"]
