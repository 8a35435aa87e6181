"""MLflow's ``filter`` and ``order_by`` (``runs/search``) as one queryset over ``Run``.

The grammar is MLflow's (``mlflow.utils.search_utils.SearchUtils``), read by a
small tokenizer of our own instead of sqlparse::

    filter     := clause (AND clause)*        AND in any case; OR is refused, as MLflow does
    clause     := identifier comparator operand
    identifier := [prefix "."] key            no prefix: an attribute (status, start_time, ...)
    prefix     := metric(s) | param(s) | parameter(s) | tag(s) | attribute(s) | attr | run
    key        := word | `back ticked` | "double quoted" | 'single quoted'
    operand    := 'string' | "string" | number | ('s1', 's2', ...) | nothing (IS [NOT] NULL)
    order_by   := identifier [ASC | DESC]     one item per list entry; ASC by default

Strings have no escapes: a string ends at the next quote of its kind (quote
with the other kind to include one).

What each identifier reads, and the comparators it takes (as MLflow allows):

===============  ==============================================  ==============================
identifier       Labbook                                         comparators
===============  ==============================================  ==============================
metrics.k        ``MetricSeries(run, key=k).last_value``         > >= = != < <=  (a number)
params.k         ``config[k]``, else ``config[a][b]`` for a.b    = != LIKE ILIKE (a string),
                                                                 IS NULL, IS NOT NULL
tags.k           ``metadata["mlflow_tags"][k]``                  as params
start_time       ``created_at`` in ms since the epoch            > >= = != < <=  (a number)
end_time         ``ended_at`` in ms                              as start_time
run_name         ``name``                                        = != LIKE ILIKE (a string)
user_id          ``created_by.username`` ("" without a user)     as run_name
status           ``status`` as MLflow names it                   as run_name
run_id           ``str(pk)``                                     as run_name, and IN, NOT IN
===============  ==============================================  ==============================

``created``/``Created`` mean start_time and ``run name``/``Run name``/``Run Name``
run_name. ``artifact_uri`` and ``lifecycle_stage`` are refused.

Choices, where Labbook's storage differs from MLflow's:

* A run without the value never matches, ``!=`` included (MLflow's SQL store
  joins on it); only IS NULL finds it. A NaN metric (stored as NULL) matches
  ``!=`` only: NaN differs from every number.
* Times compare as whole milliseconds rounded down, the ``start_time`` that
  ``runs/get`` reports.
* Status: FAILED is Labbook's failed and crashed; SCHEDULED matches no run.
* Params compare as the database's text of the JSON value: strings as they are,
  numbers as JSON numerals (``3``, ``0.1``), booleans as ``true``/``false``. A
  JSON null, like the string ``"null"``, counts as missing. A key Django's JSON
  lookups would read as a list index (``0``) can't be searched and is refused.
* LIKE and ILIKE take ``%``, ``_`` and backslash escapes; LIKE is
  case-sensitive on SQLite too (it becomes a regular expression).
* order_by puts runs missing the value (and NaN metrics) last in both
  directions, then orders by start_time DESC and then, as MLflow breaks ties by
  run_id ascending, by the run's id ascending (Labbook's ids are numbers), so
  pages are stable.
* user_id is what runs/create was sent (MLflow's rule), else the author's username.

Invalid input raises ``MlflowError`` (``INVALID_PARAMETER_VALUE``): in MLflow's words
(``mlflow/utils/search_utils.py``) where MLflow refuses it too, else in Labbook's,
naming the argument (``filter: ...``, ``order_by: ...``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import (
    Case,
    Exists,
    Expression,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, Coalesce, NullIf
from django.db.models.lookups import Exact, IsNull

from tracking import patterns
from tracking.mlflow import http
from tracking.mlflow.convert import TAGS, TO_MLFLOW_STATUS, USER_ID
from tracking.mlflow.http import MlflowError
from tracking.models import MetricSeries, Run

FILTER = "filter"
ORDER_BY = "order_by"
MAX_LENGTH = 10_000  # also keeps LIKE patterns within what PostgreSQL's regex compiler takes
MAX_CLAUSES = 100  # SQLite nests AND chains: its expression depth limit is 1000
MAX_ORDER_BY = 20

_NUMBER = (">", ">=", "=", "!=", "<", "<=")
_COMPARATORS = {  # by the type of what an identifier reads
    "number": _NUMBER,
    "text": ("=", "!=", "LIKE", "ILIKE"),
    "run_id": ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"),
    "json": ("=", "!=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL"),
}
_PREFIXES = {
    **dict.fromkeys(("metric", "metrics"), "metric"),
    **dict.fromkeys(("param", "params", "parameter", "parameters"), "param"),
    **dict.fromkeys(("tag", "tags"), "tag"),
    **dict.fromkeys(("attribute", "attributes", "attr", "run"), "attribute"),
}
_ATTRIBUTES = ("run_id", "run_name", "user_id", "status", "start_time", "end_time")
_ATTRIBUTE_ALIASES = {
    **dict.fromkeys(("created", "Created"), "start_time"),
    **dict.fromkeys(("run name", "Run name", "Run Name"), "run_name"),
}
_REFUSED_ATTRIBUTES = {
    "artifact_uri": "Labbook does not search or sort by artifact_uri: it follows from "
    "the run id, so use run_id.",
}
# What MLflow's messages list (SearchUtils); it prints sets, so their order varies there.
_ENTITY_TYPES = ["metric", "parameter", "tag", "attribute", "dataset"]
_ENTITY_NAMES = {"metric": "metric", "param": "parameter", "tag": "tag", "attribute": "attribute"}
_MLFLOW_ATTRIBUTES = {
    ORDER_BY: ("status", "user_id", "created", "run_name", "start_time", "run_id", "Created",
               "end_time", "artifact_uri"),
    FILTER: ("status", "user_id", "Run name", "run name", "created", "run_name", "Run Name",
             "start_time", "run_id", "Created", "end_time", "artifact_uri"),
}  # fmt: skip
_QUOTES = {"'": "single", '"': "double", "`": "backtick"}
_TOKEN_RE = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<name>(?: (?P<head>[^\W\d]\w*) | `(?P<quoted_head>[^`]*)` )
        (?P<dot>\.(?: `(?P<key_bt>[^`]*)` | "(?P<key_dq>[^"]*)" | '(?P<key_sq>[^']*)'
                     | (?P<key>[\w./:-]*) ))?)
    | (?P<string>'(?P<single>[^']*)'|"(?P<double>[^"]*)")
    | (?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<op>>=|<=|!=|==|<>|=|<|>)
    | (?P<punct>[(),])
    """,
    re.VERBOSE,
)


def invalid(field: str, message: str) -> MlflowError:
    """A refusal of Labbook's own, naming the argument."""
    return http.invalid(f"{field}: {message}")


def _set(items: Sequence[str]) -> str:
    """A Python set as MLflow's messages print one."""
    return "{" + ", ".join(repr(item) for item in items) + "}"


# --- Tokens -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # "name", "string", "number", "op" or "punct"
    text: str  # as written
    position: int
    value: Any = None  # a string's text, a number's float, a name's (prefix or None, key)
    bare: bool = False  # a name written as one plain word: maybe a keyword (AND, LIKE, ...)


def _tokenize(text: str, field: str) -> list[_Token]:
    _check_text(text, field)
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if match is None:
            raise invalid(field, f"Unexpected {text[position]!r} at position {position}.")
        if match["space"] is None:
            tokens.append(_token(match))
        position = match.end()
    return tokens


def _check_text(text: Any, field: str) -> None:
    if not isinstance(text, str):
        raise invalid(field, "Must be a string.")
    if len(text) > MAX_LENGTH:
        raise invalid(field, f"At most {MAX_LENGTH} characters.")
    if "\x00" in text:
        raise invalid(field, "May not contain NUL characters.")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise invalid(field, "Must be valid Unicode (it holds a lone surrogate).") from None
    _check_quotes(text, field)


def _check_quotes(text: str, field: str) -> None:
    """Quotes have no escapes, so a quote is open until the next one of its kind."""
    opened_at = None
    for position, char in enumerate(text):
        if opened_at is None and char in _QUOTES:
            opened_at = position
        elif opened_at is not None and char == text[opened_at]:
            opened_at = None
    if opened_at is not None:
        quote = text[opened_at]
        raise invalid(
            field, f"Unterminated {_QUOTES[quote]} quote ({quote}) at position {opened_at}."
        )


def _token(match: re.Match[str]) -> _Token:
    text, position = match.group(), match.start()
    if match["name"] is not None:
        return _name_token(match)
    if match["string"] is not None:
        value = match["single"] if match["single"] is not None else match["double"]
        return _Token("string", text, position, value)
    if match["number"] is not None:
        return _Token("number", text, position, float(text))
    return _Token("op" if match["op"] is not None else "punct", text, position)


def _name_token(match: re.Match[str]) -> _Token:
    head = match["head"] if match["head"] is not None else match["quoted_head"]
    if match["dot"] is None:
        bare = match["head"] is not None
        return _Token("name", match.group(), match.start(), (None, head), bare=bare)
    keys = (match["key_bt"], match["key_dq"], match["key_sq"], match["key"])
    key = next(key for key in keys if key is not None)
    return _Token("name", match.group(), match.start(), (head, key))


def _keyword(token: _Token | None) -> str | None:
    return token.text.upper() if token is not None and token.bare else None


def _is_punct(token: _Token, text: str) -> bool:
    return token.kind == "punct" and token.text == text


class _Cursor:
    """The tokens of a filter or an order_by item, read left to right."""

    def __init__(self, text: str, field: str) -> None:
        self.tokens = _tokenize(text, field)
        self.field = field
        self.index = 0

    def at_end(self) -> bool:
        return self.index >= len(self.tokens)

    def peek(self) -> _Token | None:
        return None if self.at_end() else self.tokens[self.index]

    def take(self, expected: str) -> _Token:
        if self.at_end():
            raise self.error(f"Expected {expected}, but the {self.field} ends there.")
        self.index += 1
        return self.tokens[self.index - 1]

    def error(self, message: str) -> MlflowError:
        return invalid(self.field, message)


# --- Parsing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Identifier:
    kind: str  # "metric", "param", "tag" or "attribute"
    key: str  # an attribute's canonical name
    text: str  # as written

    @property
    def type(self) -> str:
        """What the identifier reads, which decides its comparators: see _COMPARATORS."""
        if self.kind == "metric" or self.key in ("start_time", "end_time"):
            return "number"
        if self.kind in ("param", "tag"):
            return "json"
        return "run_id" if self.key == "run_id" else "text"


@dataclass(frozen=True)
class _Clause:
    identifier: _Identifier
    comparator: str  # upper case: "=", "LIKE", "NOT IN", "IS NULL", ...
    operand: str | float | tuple[str, ...] | None
    operand_text: str = ""  # as written


def _parse_filter(text: str) -> list[_Clause]:
    cursor = _Cursor(text, FILTER)
    clauses = [_parse_clause(cursor)]
    while not cursor.at_end():
        token = cursor.take("AND")
        if _keyword(token) == "OR":  # MLflow joins clauses with AND only
            raise http.invalid(f"Invalid clause(s) in filter string: '{token.text}'")
        if _keyword(token) != "AND":
            raise cursor.error(
                f"Expected AND between clauses at position {token.position}, found {token.text!r}."
            )
        clauses.append(_parse_clause(cursor))
    if len(clauses) > MAX_CLAUSES:
        raise cursor.error(f"At most {MAX_CLAUSES} clauses.")
    return clauses


def _parse_clause(cursor: _Cursor) -> _Clause:
    token = cursor.take("a clause such as metrics.acc > 0.9")
    if token.kind != "name":
        hint = " MLflow's filter has no parentheses." if _is_punct(token, "(") else ""
        raise cursor.error(
            f"Expected an identifier such as metrics.acc or params.lr at position "
            f"{token.position}, found {token.text!r}.{hint}"
        )
    start = cursor.index - 1
    if cursor.index + 1 >= len(cursor.tokens):  # no comparator or no value: MLflow's words
        written = ", ".join(f"'{token.text}'" for token in cursor.tokens[start:])
        raise http.invalid(f"Invalid clause(s) in filter string: {written}")
    identifier = _identifier(token, FILTER)
    comparator = _parse_comparator(cursor)
    operand_text = "" if cursor.at_end() else cursor.tokens[cursor.index].text
    operand = _parse_operand(cursor, comparator)
    clause = _Clause(identifier, comparator, operand, operand_text)
    _check_clause(clause)
    return clause


def _identifier(token: _Token, field: str) -> _Identifier:
    prefix, key = token.value
    kind = "attribute" if prefix is None else _PREFIXES.get(prefix)
    if kind is None and prefix in ("dataset", "datasets"):
        raise invalid(field, f"Labbook does not search datasets ({token.text!r}).")
    if kind is None:
        raise http.invalid(f"Invalid entity type '{prefix}'. Valid values are {_ENTITY_TYPES}")
    if not key:
        raise invalid(field, f"{token.text!r} names no key.")
    if kind == "attribute":
        key = _attribute(key, field)
    elif kind in ("param", "tag") and _is_integer(key):
        raise invalid(
            field,
            f"Labbook cannot search a {kind} whose key is a whole number ({token.text!r}): "
            "its databases' JSON lookups read such a key as a list index.",
        )
    return _Identifier(kind, key, token.text)


def _attribute(name: str, field: str) -> str:
    name = _ATTRIBUTE_ALIASES.get(name, name)
    if name in _REFUSED_ATTRIBUTES:
        raise invalid(field, _REFUSED_ATTRIBUTES[name])
    if name not in _ATTRIBUTES:
        raise http.invalid(
            f"Invalid attribute key '{name}' specified."
            f" Valid keys are '{_set(_MLFLOW_ATTRIBUTES[field])}'"
        )
    return name


def _is_integer(key: str) -> bool:
    """Whether Django's JSON key lookups take ``key`` for a list index (they call int())."""
    try:
        int(key)
    except ValueError:
        return False
    return True


def _parse_comparator(cursor: _Cursor) -> str:
    token = cursor.take("a comparator")
    word = _keyword(token)
    if token.kind == "op":
        return token.text
    if word in ("LIKE", "ILIKE", "IN"):
        return word
    if word == "NOT" and _keyword(cursor.peek()) == "IN":
        cursor.take("IN")
        return "NOT IN"
    if word == "IS":
        negated = _keyword(cursor.peek()) == "NOT"
        if negated:
            cursor.take("NOT")
        if _keyword(cursor.peek()) == "NULL":
            cursor.take("NULL")
            return "IS NOT NULL" if negated else "IS NULL"
    raise cursor.error(
        f"Expected a comparator (=, !=, >, >=, <, <=, LIKE, ILIKE, IN, NOT IN, IS NULL, "
        f"IS NOT NULL) at position {token.position}, found {token.text!r}."
    )


def _parse_operand(cursor: _Cursor, comparator: str) -> str | float | tuple[str, ...] | None:
    if comparator in ("IS NULL", "IS NOT NULL"):
        return None
    if comparator in ("IN", "NOT IN"):
        return _parse_list(cursor)
    token = cursor.take("a value (a quoted string or a number)")
    if token.kind not in ("string", "number"):
        raise cursor.error(
            f"Expected a value (a quoted string or a number) at position {token.position}, "
            f"found {token.text!r}."
        )
    value: str | float = token.value
    return value


def _parse_list(cursor: _Cursor) -> tuple[str, ...]:
    """``('a', 'b')``; a trailing comma is fine, as in the Python tuple MLflow reads."""
    usage = "IN takes a list of quoted strings, e.g. run_id IN ('1', '2')"
    if not _is_punct(cursor.take("a list"), "("):
        raise cursor.error(f"{usage}.")
    values: list[str] = []
    while True:
        token = cursor.take("a quoted string")
        if values and _is_punct(token, ")"):
            return tuple(values)
        if token.kind != "string":
            raise cursor.error(f"{usage}; found {token.text!r} at position {token.position}.")
        values.append(token.value)
        token = cursor.take("',' or ')'")
        if _is_punct(token, ")"):
            return tuple(values)
        if not _is_punct(token, ","):
            raise cursor.error(f"{usage}; found {token.text!r} at position {token.position}.")


def _check_clause(clause: _Clause) -> None:
    """The operand's type, then the comparator: MLflow's order, and its words for the first."""
    identifier, comparator = clause.identifier, clause.comparator
    _check_operand(clause)
    allowed = _COMPARATORS[identifier.type]
    if (
        comparator in ("IN", "NOT IN")
        and identifier.kind == "attribute"
        and comparator not in allowed
    ):
        raise http.invalid(
            "Only ['run_id'] attributes support comparison with a list of quoted string values."
        )
    if comparator in ("IS NULL", "IS NOT NULL") and identifier.type != "json":
        raise http.invalid(
            "IS NULL / IS NOT NULL is only supported for tags and params, not for"
            f" '{identifier.kind}' '{identifier.key}'"
        )
    if comparator not in allowed:
        if comparator in ("IN", "NOT IN"):
            message = "Only run_id takes IN and NOT IN (as in MLflow)."
        elif comparator in ("IS NULL", "IS NOT NULL"):
            message = "Only params and tags take IS NULL and IS NOT NULL (as in MLflow)."
        else:
            message = f"{identifier.text} takes {', '.join(allowed)}; not {comparator}."
        raise invalid(FILTER, message)


def _check_operand(clause: _Clause) -> None:
    identifier, operand, written = clause.identifier, clause.operand, clause.operand_text
    if operand is None or isinstance(operand, tuple):
        return
    if identifier.kind == "metric" and not isinstance(operand, float):
        raise http.invalid(f"Expected numeric value type for metric. Found {written}")
    if identifier.type == "number" and not isinstance(operand, float):
        raise http.invalid(
            f"Expected numeric value type for numeric attribute: {identifier.key}. Found {written}"
        )
    if identifier.kind in ("param", "tag") and isinstance(operand, float):
        raise http.invalid(
            f"Expected a quoted string value for {_ENTITY_NAMES[identifier.kind]}"
            f" (e.g. 'my-value'). Got value {written}"
        )
    if identifier.type != "number" and isinstance(operand, float):
        raise http.invalid(f"Expected a quoted string value for attributes. Got value {written}")


# --- Conditions ---------------------------------------------------------------------------


def filter_runs(runs: QuerySet[Run], filter_string: str | None) -> QuerySet[Run]:
    """The runs matching MLflow's ``filter``; an empty filter keeps them all."""
    if filter_string is None or (isinstance(filter_string, str) and not filter_string.strip()):
        return runs
    clauses = _parse_filter(filter_string)
    vendor = connections[runs.db].vendor
    return runs.filter(*[_condition(clause, vendor) for clause in clauses])


def _condition(clause: _Clause, vendor: str) -> Q:
    identifier = clause.identifier
    operand = clause.operand
    if identifier.kind == "metric":
        assert isinstance(operand, float)  # _check_clause: metrics compare with numbers
        return _metric_condition(identifier.key, clause.comparator, operand)
    if identifier.kind == "param":
        return _text_condition(_param_text(identifier.key), clause, vendor)
    if identifier.kind == "tag":
        return _text_condition(_tag_text(identifier.key), clause, vendor)
    if identifier.key in ("start_time", "end_time"):
        field = "created_at" if identifier.key == "start_time" else "ended_at"
        assert isinstance(operand, float)  # _check_clause: times compare with numbers
        return _time_condition(field, clause.comparator, operand)
    if identifier.key == "status":
        return _status_condition(clause)
    if identifier.key == "run_id":
        return _run_id_condition(clause, vendor)
    return _text_condition(_text_attribute(identifier.key), clause, vendor)


_NUMBER_LOOKUPS = {">": "gt", ">=": "gte", "=": "exact", "<": "lt", "<=": "lte"}


def _metric_condition(key: str, comparator: str, value: float) -> Q:
    series = MetricSeries.objects.filter(run=OuterRef("pk"), key=key, count__gt=0)
    if comparator == "!=":  # NaN (stored as NULL) differs from every number, as in MLflow
        series = series.filter(Q(last_value__isnull=True) | ~Q(last_value=value))
    else:
        series = series.filter(**{f"last_value__{_NUMBER_LOOKUPS[comparator]}": value})
    return Q(Exists(series))


def _text_condition(expression: Expression | F, clause: _Clause, vendor: str) -> Q:
    comparator, operand = clause.comparator, clause.operand
    if comparator in ("IS NULL", "IS NOT NULL"):
        return Q(IsNull(expression, comparator == "IS NULL"))
    if comparator in ("LIKE", "ILIKE"):
        ignore_case = comparator == "ILIKE"
        assert isinstance(operand, str)  # _check_clause: LIKE takes a string
        return patterns.like_condition(expression, operand, ignore_case=ignore_case, vendor=vendor)
    if comparator == "=":
        return Q(Exact(expression, operand))
    # "!=": a run without the value does not match either (MLflow joins on it)
    return Q(IsNull(expression, False)) & ~Q(Exact(expression, operand))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_MS = -62_135_596_800_000  # 0001-01-01, the first moment Python has
_MAX_MS = 253_402_300_799_999  # 9999-12-31 23:59:59.999


def _time_condition(field: str, comparator: str, ms: float) -> Q:
    """Compare as whole milliseconds rounded down, the time ``runs/get`` reports."""
    ms = min(max(ms, _MIN_MS - 1), _MAX_MS + 1)  # and inf becomes a number
    at_least = _moment(math.ceil(ms))  # the first instant whose milliseconds are >= ms
    beyond = _moment(math.floor(ms) + 1)  # the first instant whose milliseconds are > ms
    equal = Q(**{f"{field}__gte": at_least, f"{field}__lt": beyond})  # empty if ms has a fraction
    conditions = {
        ">": Q(**{f"{field}__gte": beyond}),
        ">=": Q(**{f"{field}__gte": at_least}),
        "<": Q(**{f"{field}__lt": at_least}),
        "<=": Q(**{f"{field}__lt": beyond}),
        "=": equal,
        "!=": Q(**{f"{field}__isnull": False}) & ~equal,
    }
    return conditions[comparator]


def _moment(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=min(max(ms, _MIN_MS), _MAX_MS))


def _status_condition(clause: _Clause) -> Q:
    """Compare MLflow's status names in Python, then keep the Labbook statuses behind them."""
    assert isinstance(clause.operand, str)  # _check_clause: status compares with a string
    matches = _string_matcher(clause.comparator, clause.operand)
    return Q(status__in=[status for status, name in TO_MLFLOW_STATUS.items() if matches(name)])


def _string_matcher(comparator: str, operand: str) -> Callable[[str], bool]:
    if comparator == "=":
        return lambda name: name == operand
    if comparator == "!=":
        return lambda name: name != operand
    return patterns.like_matcher(operand, ignore_case=comparator == "ILIKE")


_PK_RE = re.compile(r"[1-9][0-9]{0,17}")  # ASCII digits: int() reads other scripts too


def _run_id_condition(clause: _Clause, vendor: str) -> Q:
    """run_id is str(pk): ids that aren't a pk written plainly ('01', 'abc') match no run."""
    comparator, operand = clause.comparator, clause.operand
    if comparator in ("LIKE", "ILIKE"):
        return _text_condition(Cast("pk", TextField()), clause, vendor)
    values = operand if isinstance(operand, tuple) else (operand,)
    matching = Q(
        pk__in=[
            int(value) for value in values if isinstance(value, str) and _PK_RE.fullmatch(value)
        ]
    )
    return matching if comparator in ("=", "IN") else ~matching


def _text_attribute(name: str) -> Expression | F:
    return _user_id() if name == "user_id" else F("name")


def _user_id() -> Expression:
    """What runs/create was sent, else (runs from elsewhere) the author's username."""
    sent = Cast(KeyTextTransform(USER_ID, "metadata"), TextField())
    return Coalesce(sent, F("created_by__username"), Value(""), output_field=TextField())


def _param_text(key: str) -> Expression:
    """MLflow's flat ``config[key]``, else the SDK's nested ``config[a][b]`` for ``a.b``."""
    paths = [[key]]
    parts = key.split(".")
    if len(parts) > 1 and not any(_is_integer(part) for part in parts):
        paths.append(parts)
    # SQLite reads a JSON null as the text 'null', PostgreSQL as NULL: both say missing.
    texts = [NullIf(_json_text("config", path), Value("null", TextField())) for path in paths]
    return texts[0] if len(texts) == 1 else Coalesce(*texts)


def _tag_text(key: str) -> Expression:
    return _json_text("metadata", [TAGS, key])


def _json_text(field: str, path: Sequence[str]) -> Expression:
    source: Any = field
    for part in path[:-1]:
        source = KeyTransform(part, source)
    # Cast: SQLite reads a JSON number as a number, which never equals a string.
    return Cast(KeyTextTransform(path[-1], source), TextField())


# --- Ordering -----------------------------------------------------------------------------


def order_runs(runs: QuerySet[Run], order_by: list[str] | None) -> QuerySet[Run]:
    """Order by MLflow's ``order_by`` items, then start_time DESC (unless ordered by it),
    then, as MLflow breaks ties by run_id ascending, by id ascending: stable pages.

    Runs missing an ordered value come last in either direction, as in MLflow.
    """
    items = _parse_order_by(order_by or [])
    ordering = [_ordered(_order_expression(identifier), asc) for identifier, asc in items]
    if not any(identifier.key == "start_time" for identifier, _ in items):
        ordering.append(F("created_at").desc())
    ordering.append(F("pk").asc())
    return runs.order_by(*ordering)


def _parse_order_by(items: Any) -> list[tuple[_Identifier, bool]]:
    if not isinstance(items, list | tuple):
        raise invalid(ORDER_BY, "Must be a list of strings such as 'metrics.acc DESC'.")
    if len(items) > MAX_ORDER_BY:
        raise invalid(ORDER_BY, f"At most {MAX_ORDER_BY} items.")
    parsed = [_parse_order_item(item) for item in items]
    seen: set[tuple[str, str]] = set()
    for identifier, _ in parsed:
        if (identifier.kind, identifier.key) in seen:
            raise invalid(ORDER_BY, f"{identifier.text} is ordered by twice.")
        seen.add((identifier.kind, identifier.key))
    return parsed


def _parse_order_item(item: Any) -> tuple[_Identifier, bool]:
    """``metrics.acc DESC`` → (the identifier, ascending?)."""
    cursor = _Cursor(item, ORDER_BY)
    unparsed = http.invalid(f"Invalid order_by clause '{item}'. Could not be parsed.")
    if cursor.at_end() or len(cursor.tokens) > 2:
        raise unparsed
    token = cursor.take("a column such as metrics.acc or start_time")
    if token.kind != "name":
        raise unparsed
    identifier = _identifier(token, ORDER_BY)
    if cursor.at_end():
        return identifier, True
    token = cursor.take("ASC or DESC")
    if _keyword(token) not in ("ASC", "DESC"):
        raise http.invalid(f"Invalid ordering key in order_by clause '{item}'.")
    return identifier, _keyword(token) == "ASC"


_ORDER_COLUMNS = {
    "start_time": "created_at",
    "end_time": "ended_at",
    "run_name": "name",
    "run_id": "pk",  # numerically: Labbook's run ids are numbers
}


def _order_expression(identifier: _Identifier) -> Expression | F | Subquery:
    if identifier.kind == "metric":
        series = MetricSeries.objects.filter(run=OuterRef("pk"), key=identifier.key, count__gt=0)
        return Subquery(series.order_by().values("last_value")[:1])
    if identifier.kind == "param":
        return _param_text(identifier.key)
    if identifier.kind == "tag":
        return _tag_text(identifier.key)
    if identifier.key in _ORDER_COLUMNS:
        return F(_ORDER_COLUMNS[identifier.key])
    return _user_id() if identifier.key == "user_id" else _mlflow_status()


def _mlflow_status() -> Expression:
    """Order by MLflow's names, so failed and crashed runs tie as FAILED."""
    whens = [When(status=status, then=Value(name)) for status, name in TO_MLFLOW_STATUS.items()]
    return Case(*whens, default=Value(""))


def _ordered(expression: Expression | F | Subquery, ascending: bool) -> Expression:
    if ascending:
        return expression.asc(nulls_last=True)
    return expression.desc(nulls_last=True)
