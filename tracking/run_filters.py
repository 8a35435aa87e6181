r"""Value filters on runs, one syntax for the runs table and ``GET /api/v1/runs?filter=``.

::

    filter     := condition (" and " condition)*      "and" in any case; no "or"
    condition  := column operator value
    column     := config.<key> | summary.<key> | name | status | tag | group
    operator   := =  !=  <  <=  >  >=  ~              (~: contains, ignoring case)
    value      := number | 'text' | "text" | text     (text: up to the end of the condition)

Examples: ``summary.val/acc > 0.9``, ``config.lr <= 1e-3``, ``config.optimizer = adam``,
``tag = baseline and status != failed``.

What each column reads:

* ``config.<key>``: the run's config at ``key``, else the nested value at the dotted
  path (``config.optimizer.lr`` finds ``{"optimizer": {"lr": ...}}``), as the table
  shows it. A number compares numerically with numbers *and* with numeric text, so
  runs logged through MLflow (whose params are strings) compare as the SDK's do.
* ``summary.<key>``: the run's summary value, else the last value of its metric
  ``key``: the number the table's column shows.
* ``name`` and ``group`` (text), ``status`` (one of the run statuses), ``tag``
  (``tag = x``: the run carries x; ``tag != x``: it does not).

A run without the value never matches a comparison, ``!=`` included. Text compares
exactly (``=``/``!=``) or by containment (``~``); ``<``/``>`` need a number.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import (
    Case,
    Exists,
    Expression,
    F,
    FloatField,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IContains,
    IsNull,
    LessThan,
    LessThanOrEqual,
    Lookup,
)

from kernel.errors import ApplicationError, invalid

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler
from tracking.models import MetricSeries, Run, RunStatus, RunTag

FIELD = "filter"
MAX_FILTER_LENGTH = 1000  # characters of one filter parameter
MAX_CONDITIONS = 10  # over all filter parameters of one request
MAX_COLUMN_LENGTH = 250  # as the table's columns (workspace.pages.parse_columns)
OPERATORS = ("<=", ">=", "!=", "=", "<", ">", "~")
NUMERIC_OPERATORS: dict[str, type[Lookup[Any]]] = {
    "<": LessThan,
    "<=": LessThanOrEqual,
    ">": GreaterThan,
    ">=": GreaterThanOrEqual,
    "=": Exact,
}
TEXT_COLUMNS = ("name", "group")
COLUMNS = ("config.<key>", "summary.<key>", "name", "status", "tag", "group")

# A number as text, small enough for every backend's float (at most 1e129): longer or
# larger text is compared as text. Fixed shape: it matches in linear time.
_NUMBER = r"[-+]?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})([eE][-+]?[0-9]{1,2})?"
_NUMBER_RE = re.compile(_NUMBER)
_CONDITION_RE = re.compile(r"\s*(?P<column>[^\s<>=!~]+)\s*(?P<op><=|>=|!=|=|<|>|~)\s*(?P<value>.*)")
_AND_RE = re.compile(r"\s+and\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Condition:
    column: str  # "config.lr", "summary.val/acc", "name", ...
    operator: str
    value: str | float

    def __str__(self) -> str:
        value = self.value if isinstance(self.value, float) else _quoted(self.value)
        return f"{self.column} {self.operator} {_number_text(value)}"


def _number_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _quoted(text: str) -> str:
    """Text as it reads back: bare when it would parse as the same text."""
    if (
        text
        and text == text.strip()
        and not _NUMBER_RE.fullmatch(text)
        and not _AND_RE.search(text)
    ):
        return text
    return f"'{text}'" if "'" not in text else f'"{text}"'


# --- Parsing ---------------------------------------------------------------------------


def parse(raw_filters: list[str], field: str = FIELD) -> list[Condition]:
    """Every condition of ``raw_filters`` (each may join several with ``and``).

    Raises ``ApplicationError`` naming ``field`` and the condition on anything it can't read.
    """
    conditions: list[Condition] = []
    for raw in raw_filters:
        if len(raw) > MAX_FILTER_LENGTH:
            raise invalid(field, f"A filter is at most {MAX_FILTER_LENGTH} characters.")
        for text in split_conditions(raw):
            conditions.append(parse_condition(text, field))
            if len(conditions) > MAX_CONDITIONS:
                raise invalid(field, f"At most {MAX_CONDITIONS} conditions.")
    return conditions


def split_conditions(raw: str) -> list[str]:
    """``a = 1 and b = 'x and y'`` → the conditions, ``and`` inside quotes kept."""
    parts: list[str] = []
    start = position = 0
    quote = ""
    while position < len(raw):
        char = raw[position]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        else:
            joined = _AND_RE.match(raw, position)
            if joined and position > start:
                parts.append(raw[start:position])
                start = position = joined.end()
                continue
        position += 1
    parts.append(raw[start:])
    return [part.strip() for part in parts if part.strip()]


def parse_condition(text: str, field: str = FIELD) -> Condition:
    match = _CONDITION_RE.fullmatch(text)
    if match is None:
        raise invalid(
            field,
            f"Can't read {text!r}: write a column, an operator and a value,"
            " as in summary.val/acc > 0.9 or config.optimizer = adam.",
        )
    column = _column(match["column"], field)
    operator = match["op"]
    numeric = operator != "~" and column.startswith(("config.", "summary."))
    value = _value(match["value"].strip(), text, field, numeric=numeric)
    _check(column, operator, value, text, field)
    return Condition(column, operator, value)


def _column(column: str, field: str) -> str:
    source, dot, key = column.partition(".")
    if len(column) > MAX_COLUMN_LENGTH:
        raise invalid(field, f"A column name is at most {MAX_COLUMN_LENGTH} characters.")
    if source in ("config", "summary") and dot and key:
        return column
    if column in ("name", "status", "tag", "tags", "group"):
        return "tag" if column == "tags" else column
    raise invalid(field, f"Unknown column {column!r}: use {', '.join(COLUMNS)} (as in config.lr).")


def _value(raw: str, text: str, field: str, *, numeric: bool) -> str | float:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    if not raw:
        raise invalid(field, f"{text!r} has no value to compare with.")
    if numeric and _NUMBER_RE.fullmatch(raw):
        return float(raw)
    return raw


def _check(column: str, operator: str, value: str | float, text: str, field: str) -> None:
    if column in ("status", "tag") and operator not in ("=", "!="):
        raise invalid(field, f"{text!r}: {column} takes = or !=.")
    if column in TEXT_COLUMNS and operator not in ("=", "!=", "~"):
        raise invalid(field, f"{text!r}: {column} is text: use =, != or ~.")
    if operator in ("<", "<=", ">", ">=") and not isinstance(value, float):
        raise invalid(field, f"{text!r}: {operator} compares numbers; {value!r} is not one.")
    if column == "status" and str(value) not in RunStatus.values:
        statuses = ", ".join(RunStatus.values)
        raise invalid(field, f"{text!r}: status is one of {statuses}.")


# --- Querying --------------------------------------------------------------------------


def apply(runs: QuerySet[Run], conditions: list[Condition]) -> QuerySet[Run]:
    """``runs`` that meet every condition."""
    for condition in conditions:
        runs = runs.filter(_q(condition))
    return runs


def _q(condition: Condition) -> Q:
    column, operator, value = condition.column, condition.operator, condition.value
    if column == "status":
        matches = Q(status=value)
        return matches if operator == "=" else ~matches
    if column == "tag":
        tagged = Q(Exists(RunTag.objects.filter(run=OuterRef("pk"), name=str(value))))
        return tagged if operator == "=" else ~tagged
    if column in TEXT_COLUMNS:
        return _text_q(F(column), operator, value)
    source, _, key = column.partition(".")
    if source == "config":
        text = config_text(key)
        if isinstance(value, float):
            return _number_q(NumberOf(text), operator, value)
        return _text_q(text, operator, value)
    if isinstance(value, float):
        return _number_q(summary_number(key), operator, value)
    return _text_q(JSONText("summary", [key]), operator, value)


def _number_q(number: Expression, operator: str, value: float) -> Q:
    if operator == "!=":
        return Q(_present(number)) & ~Q(_compare(number, "=", value))
    return Q(_compare(number, operator, value))


def _compare(number: Expression, operator: str, value: float) -> Lookup[Any]:
    return NUMERIC_OPERATORS[operator](number, Value(value))


def _present(expression: Expression) -> Lookup[Any]:
    return IsNull(expression, False)


def _text_q(text: Expression | F, operator: str, value: str | float) -> Q:
    value = _number_text(value)
    if operator == "~":
        return Q(IContains(text, value))
    if operator == "=":
        return Q(Exact(text, value))
    if operator == "!=":
        return Q(_present_text(text)) & ~Q(Exact(text, value))
    raise ApplicationError("invalid", "unreachable: _check refuses it", field=FIELD)


def _present_text(text: Expression | F) -> Any:
    if isinstance(text, F):
        return Q(**{f"{text.name}__isnull": False})
    return _present(text)


def config_text(key: str) -> Expression:
    """``config[key]`` as text, else the nested value at the dotted path (``a.b``)."""
    texts = [JSONText("config", [key])]
    parts = key.split(".")
    if len(parts) > 1 and all(parts):
        texts.append(JSONText("config", parts))
    return texts[0] if len(texts) == 1 else Coalesce(*texts, output_field=TextField())


class _OneArgument(Func):
    """A function of one argument whose SQL differs by database: ``sql`` writes it."""

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> tuple[str, tuple[Any, ...]]:
        argument, params = compiler.compile(self.source_expressions[0])
        return self.sql(argument, tuple(params), connection.vendor)

    def sql(
        self, argument: str, params: tuple[Any, ...], vendor: str
    ) -> tuple[str, tuple[Any, ...]]:
        raise NotImplementedError


class JSONText(_OneArgument):
    """The value at ``path`` in a JSON column as text, the same on both databases.

    Strings without their quotes, numbers and booleans as JSON writes them
    (``true``, not SQLite's ``1``), objects and lists as JSON; a missing key or a
    JSON null is NULL. Every key of the path is an object key (``"0"`` too).
    """

    output_field = TextField()

    def __init__(self, field: str, path: list[str]) -> None:
        super().__init__(F(field))
        self.path = list(path)

    def sql(
        self, argument: str, params: tuple[Any, ...], vendor: str
    ) -> tuple[str, tuple[Any, ...]]:
        if vendor == "postgresql":
            return f"({argument} #>> %s)", (*params, self.path)
        where = "$" + "".join(f".{json.dumps(part)}" for part in self.path)
        sql = (
            f"CASE json_type({argument}, %s) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'"
            f" WHEN 'null' THEN NULL ELSE CAST(json_extract({argument}, %s) AS TEXT) END"
        )
        return sql, (*params, where, *params, where)


class NumberOf(_OneArgument):
    """Numeric text as a float, anything else as NULL (never a cast error)."""

    output_field = FloatField()

    def __init__(self, text: Expression) -> None:
        super().__init__(text)

    def sql(
        self, argument: str, params: tuple[Any, ...], vendor: str
    ) -> tuple[str, tuple[Any, ...]]:
        pattern = f"^\\s*{_NUMBER}\\s*$"
        if vendor == "postgresql":
            sql = f"CASE WHEN ({argument}) ~ %s THEN ({argument})::double precision END"
        else:  # SQLite: Django registers REGEXP (Python's re) on every connection
            sql = f"CASE WHEN ({argument}) REGEXP %s THEN CAST(({argument}) AS REAL) END"
        return sql, (*params, pattern, *params)


def summary_number(key: str) -> Expression:
    """The run's summary value at ``key`` if numeric, else its metric's last value."""
    latest = MetricSeries.objects.filter(run=OuterRef("pk"), key=key, count__gt=0)
    return Case(
        When(Q(summary__has_key=key), then=NumberOf(JSONText("summary", [key]))),
        default=Subquery(latest.order_by().values("last_value")[:1]),
        output_field=FloatField(),
    )


def describe(conditions: list[Condition]) -> str:
    """The conditions as one filter a person reads (and :func:`parse` reads back)."""
    return " and ".join(str(condition) for condition in conditions)
