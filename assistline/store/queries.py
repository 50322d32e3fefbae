"""Named SQL queries loaded from ``.sql`` files beside the code.

A file holds blocks that each start with ``-- name: <name>``; the block's
text up to the next name is the query. Keeping SQL in SQL files lets it be
read, linted and run by hand; code refers to queries by name.
"""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    """Split a ``.sql`` file's text into ``{name: query}``; names must be unique."""
    queries: dict[str, str] = {}
    matches = list(_NAME.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        name = match.group(1)
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        body = text[match.end() : end].strip()
        if not body:
            raise ValueError(f"query {name!r} is empty")
        queries[name] = body
    return queries


def load_queries(package: str, filename: str) -> dict[str, str]:
    """Load the named queries of ``filename`` shipped inside ``package``."""
    return parse_queries(resources.files(package).joinpath(filename).read_text(encoding="utf-8"))


QUERIES = load_queries("assistline.store", "queries.sql")
