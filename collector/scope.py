"""What a cached-figures scope names: a commune (its code) or a province ("p" + its code). Only these two
functions know that encoding; stale_months.scope and month_stats.scope both hold it."""

from __future__ import annotations

from typing import Any, overload

import sqlalchemy as sa

PROVINCE_PREFIX = "p"  # commune codes are digits only, so a scope starting with it is a province


@overload
def province_scope(code: str) -> str: ...
@overload
def province_scope(code: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]: ...
def province_scope(code: Any) -> Any:
    """The scope of a province's own figures, from its code (text, or a column in a query)."""
    return PROVINCE_PREFIX + code  # on a column SQLAlchemy makes it 'p' || code


def province_of_scope(scope: str) -> str | None:
    """The province code of a province's scope; None for a commune's scope."""
    return scope[len(PROVINCE_PREFIX):] if scope.startswith(PROVINCE_PREFIX) else None
