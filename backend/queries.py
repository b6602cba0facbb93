"""SQL by name: each package keeps its statements in one ``queries.sql``, loaded once.

A file is a sequence of named statements, each opened by a header line ``-- name --``
(procrastinate's convention) and optionally followed by comment lines saying why it
exists. A statement may include another statement of the same file as ``{{other_name}}``
— how a definition such as "a session" or "who is a student" is written once and used by
every query that needs it. Inclusion happens once, at load time, from our own files:
values are always bound parameters (``%(name)s``), never formatted in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from importlib import resources

_HEADER = re.compile(r"^--\s*([a-z_][a-z0-9_]*)\s*--\s*$", re.MULTILINE)
_INCLUDE = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")


class QueryError(LookupError):
    """A query file names a statement twice, includes an unknown one, or loops."""


class Queries(Mapping[str, str]):
    """The named statements of one ``.sql`` file, includes resolved; ``queries["name"]``."""

    def __init__(self, text: str, source: str = "<sql>") -> None:
        self.source = source
        raw = _parse(text, source)
        self._statements = {name: _resolve(name, raw, source, ()) for name in raw}

    @classmethod
    def load(cls, package: str, filename: str = "queries.sql") -> Queries:
        """Load ``filename`` shipped inside ``package`` (works from a wheel, too)."""
        text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
        return cls(text, f"{package}/{filename}")

    def __getitem__(self, name: str) -> str:
        try:
            return self._statements[name]
        except KeyError:
            raise QueryError(f"{self.source} has no query named {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._statements)

    def __len__(self) -> int:
        return len(self._statements)


def _parse(text: str, source: str) -> dict[str, str]:
    statements: dict[str, str] = {}
    headers = list(_HEADER.finditer(text))
    for index, match in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        name = match.group(1)
        if name in statements:
            raise QueryError(f"{source}: the query {name!r} is defined twice")
        body = "\n".join(line for line in text[match.end():end].splitlines()
                         if not line.lstrip().startswith("--"))
        statements[name] = body.strip().rstrip(";").strip()
    return statements


def _resolve(name: str, raw: Mapping[str, str], source: str, seen: tuple[str, ...]) -> str:
    if name in seen:
        raise QueryError(f"{source}: {' -> '.join((*seen, name))} includes itself")
    if name not in raw:
        raise QueryError(f"{source}: {seen[-1] if seen else '?'} includes unknown {name!r}")
    return _INCLUDE.sub(lambda m: _resolve(m.group(1), raw, source, (*seen, name)), raw[name])


#: the foundations' own statements (backend/queries.sql): role check, job lock, guardian check.
FOUNDATION = Queries.load("backend")
