"""Named SQL kept in ingester/sql/*.sql, so the Python stays free of business rules."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def query(name: str) -> str:
    return files("ingester").joinpath("sql", f"{name}.sql").read_text()
