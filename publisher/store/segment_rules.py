"""A segment's rules: a small JSON tree of conditions, read and compiled to one SQL condition.

A tree is a group, `{"match": "all" | "any", "conditions": [...]}`, whose conditions are
either groups again (at most `MAX_DEPTH` deep) or a condition
`{"field": F, "op": O, "value": V}`. `parse` reads the JSON the desk, the API and the
store hand in and names the place of anything wrong (`conditions[2].op`); `compile_rules`
turns a parsed tree into ONE SQLAlchemy Core condition on `subscribers`, so that a count,
a page, an export and a send's INSERT ... SELECT are each a single query the database
plans as a whole. Both are pure: no database, no clock (`now` is passed in, for "signed
up within N days").

The fields (`FIELDS`, a table: adding one is a row and a function):

    tag         has / lacks              a tag the author gave (case-insensitive)
    topic       chose / not_chose / gets a topic the reader chose on their page; "gets":
                                         they chose it, or they take every topic
    signed_up   before / after           a date, YYYY-MM-DD: before that day began, after it
                                         ended (days in UTC)
                within_days / over_days  a number of days before now
    source      is / is_not / starts_with  where they came from (web, cli, import:<file>...)
    timezone    is / is_not / unknown    their zone, as an IANA name
    bounces     soft_bounced / never_bounced   from bounce mail and provider reports
    engagement  opened / clicked / opened_or_clicked / not_opened   in the last N issues
                (value N); only per-person analytics record who opened: with it off,
                nobody matches "opened" and everybody matches "not_opened"

Readers have no language and no custom fields in this store: there are no such
conditions. A segment always chooses among active readers (those a send reaches).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Select, and_, exists, false, literal, not_, or_, select, true, union
from sqlalchemy.sql.elements import ColumnElement

from publisher.errors import InvalidRequest
from publisher.models import SubscriberStatus
from publisher.numbers import plain_int
from publisher.store.schema import (
    bounce_messages,
    engagement,
    events,
    issues,
    subscriber_tags,
    subscribers,
)
from publisher.store.subscribers.values import clean_tags

__all__ = [
    "FIELDS",
    "MAX_CONDITIONS",
    "MAX_DEPTH",
    "Condition",
    "Field",
    "Group",
    "compile_rules",
    "describe",
    "dumps",
    "empty",
    "parse",
    "parse_text",
]

MAX_DEPTH = 4
"""Groups inside groups, at most: deeper trees are refused, not flattened."""
MAX_CONDITIONS = 40
"""Conditions in one tree, at most."""
MAX_TEXT = 200
MAX_DAYS = 36_500
MAX_ISSUES = 100

ValueKind = Literal["text", "tag", "date", "days", "issues", "none"]
Where = ColumnElement[bool]


@dataclass(frozen=True, slots=True)
class Condition:
    """One test on a reader: `field` `op` `value` (a date as YYYY-MM-DD, a number, a text, or None)."""

    field: str
    op: str
    value: str | int | None = None


@dataclass(frozen=True, slots=True)
class Group:
    """Conditions joined by AND (`match` "all") or OR ("any"). An empty "all" is everyone."""

    match: Literal["all", "any"] = "all"
    conditions: tuple[Condition | Group, ...] = ()


@dataclass(frozen=True, slots=True)
class Field:
    """A field readers can be chosen by: its label, and per operator what value it takes."""

    label: str
    ops: Mapping[str, ValueKind]


FIELDS: dict[str, Field] = {
    "tag": Field("Tag", {"has": "tag", "lacks": "tag"}),
    "topic": Field("Topic they chose", {"chose": "tag", "not_chose": "tag", "gets": "tag"}),
    "signed_up": Field(
        "Signed up", {"before": "date", "after": "date", "within_days": "days", "over_days": "days"}
    ),
    "source": Field("Source", {"is": "text", "is_not": "text", "starts_with": "text"}),
    "timezone": Field("Time zone", {"is": "text", "is_not": "text", "unknown": "none"}),
    "bounces": Field("Bounces", {"soft_bounced": "none", "never_bounced": "none"}),
    "engagement": Field(
        "Engagement",
        {"opened": "issues", "clicked": "issues", "opened_or_clicked": "issues", "not_opened": "issues"},
    ),
}


def empty() -> Group:
    """The tree that matches every active reader."""
    return Group()


# Reading


def parse_text(text: str) -> Group:
    """A tree from its JSON text; InvalidRequest naming what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"rules: not JSON ({exc.msg} at character {exc.pos})") from exc
    return parse(data)


def parse(data: object) -> Group:
    """A tree from decoded JSON; InvalidRequest naming the place (`conditions[1].value`) and the fix."""
    counter = [0]
    return _group(data, "rules", 1, counter)


def _group(data: object, where: str, depth: int, counter: list[int]) -> Group:
    if not isinstance(data, dict):
        raise InvalidRequest(f'{where}: expected a group {{"match": "all", "conditions": [...]}}')
    unknown = sorted(set(data) - {"match", "conditions"})
    if unknown:
        raise InvalidRequest(f"{where}: unknown key {unknown[0]!r}; a group has match and conditions")
    match = data.get("match", "all")
    if match not in ("all", "any"):
        raise InvalidRequest(f'{where}.match: must be "all" or "any", got {match!r}')
    items = data.get("conditions", [])
    if not isinstance(items, list):
        raise InvalidRequest(f"{where}.conditions: must be a list")
    found: list[Condition | Group] = []
    for index, item in enumerate(items):
        place = f"{where}.conditions[{index}]" if where != "rules" else f"conditions[{index}]"
        if isinstance(item, dict) and "field" not in item and ("conditions" in item or "match" in item):
            if depth >= MAX_DEPTH:
                raise InvalidRequest(f"{place}: groups may be nested {MAX_DEPTH} deep at most")
            found.append(_group(item, place, depth + 1, counter))
        else:
            counter[0] += 1
            if counter[0] > MAX_CONDITIONS:
                raise InvalidRequest(f"{place}: a segment holds {MAX_CONDITIONS} conditions at most")
            found.append(_condition(item, place))
    return Group(match="any" if match == "any" else "all", conditions=tuple(found))


def _condition(data: object, where: str) -> Condition:
    if not isinstance(data, dict):
        raise InvalidRequest(f'{where}: expected a condition {{"field": ..., "op": ..., "value": ...}}')
    unknown = sorted(set(data) - {"field", "op", "value"})
    if unknown:
        raise InvalidRequest(f"{where}: unknown key {unknown[0]!r}; a condition has field, op and value")
    name = data.get("field")
    field = FIELDS.get(name) if isinstance(name, str) else None
    if field is None or not isinstance(name, str):
        raise InvalidRequest(
            f"{where}.field: unknown field {name!r}; choose one of {', '.join(FIELDS)} "
            "(readers have no language or custom fields here)"
        )
    op = data.get("op")
    kind = field.ops.get(op) if isinstance(op, str) else None
    if kind is None or not isinstance(op, str):
        raise InvalidRequest(f"{where}.op: {name} takes {', '.join(field.ops)}, got {op!r}")
    return Condition(name, op, _value(kind, data.get("value"), f"{where}.value"))


def _value(kind: ValueKind, raw: object, where: str) -> str | int | None:
    if kind == "none":
        if raw not in (None, ""):
            raise InvalidRequest(f"{where}: this condition takes no value")
        return None
    if kind in ("days", "issues"):
        top = MAX_DAYS if kind == "days" else MAX_ISSUES
        number = raw
        if isinstance(raw, str) and plain_int(raw.strip()) is not None:
            number = int(raw.strip())
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= top:
            unit = "days" if kind == "days" else "issues"
            raise InvalidRequest(f"{where}: give a whole number of {unit} from 1 to {top}, got {raw!r}")
        return number
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidRequest(f"{where}: give a value")
    text = raw.strip()
    if len(text) > MAX_TEXT:
        raise InvalidRequest(f"{where}: {MAX_TEXT} characters at most")
    if kind == "date":
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise InvalidRequest(f"{where}: give a date as YYYY-MM-DD, got {text!r}")
        try:
            date.fromisoformat(text)
        except ValueError as exc:
            raise InvalidRequest(f"{where}: {text!r} is not a date ({exc})") from exc
        return text
    if kind == "tag":
        cleaned = clean_tags([text])
        if not cleaned:
            raise InvalidRequest(f"{where}: {text!r} is not a usable tag")
        return cleaned[0]
    return text


def dumps(tree: Group) -> str:
    """The tree as compact JSON, as `parse_text` reads it back."""
    return json.dumps(_plain(tree), separators=(",", ":"), ensure_ascii=False)


def _plain(item: Condition | Group) -> dict[str, Any]:
    if isinstance(item, Group):
        return {"match": item.match, "conditions": [_plain(child) for child in item.conditions]}
    plain: dict[str, Any] = {"field": item.field, "op": item.op}
    if item.value is not None:
        plain["value"] = item.value
    return plain


_WORDS = {
    "has": "has", "lacks": "lacks", "chose": "chose", "not_chose": "did not choose",
    "gets": "gets articles on", "before": "before", "after": "after", "within_days": "within the last",
    "over_days": "more than", "is": "is", "is_not": "is not", "starts_with": "starts with",
    "unknown": "unknown", "soft_bounced": "has soft-bounced", "never_bounced": "never bounced",
    "opened": "opened one of the last", "clicked": "clicked in one of the last",
    "opened_or_clicked": "opened or clicked one of the last", "not_opened": "opened none of the last",
}


def describe(item: Condition | Group) -> str:
    """The tree in words, for the desk and a send's confirmation."""
    if isinstance(item, Group):
        if not item.conditions:
            return "every active reader"
        joiner = " and " if item.match == "all" else " or "
        parts = [describe(child) for child in item.conditions]
        return joiner.join(f"({part})" if isinstance(child, Group) and len(child.conditions) > 1 else part
                           for part, child in zip(parts, item.conditions, strict=True))
    label = FIELDS[item.field].label.lower()
    words = _WORDS.get(item.op, item.op)
    if item.value is None:
        return f"{label} {words}"
    suffix = {"within_days": " days", "over_days": " days ago", "opened": " issues", "clicked": " issues",
              "opened_or_clicked": " issues", "not_opened": " issues"}.get(item.op, "")
    return f"{label} {words} {item.value}{suffix}"


# Compiling


def compile_rules(tree: Group, *, now: datetime) -> Where:
    """One condition on `subscribers` for the tree, active readers only.

    A condition met by rows of another table (has a tag, soft-bounced, opened) becomes
    `subscribers.id IN (those rows' subscriber ids)` where only "all" groups stand above
    it: PostgreSQL plans it as it plans EXISTS (a semi-join), and SQLite can start from
    the ids and look each reader up instead of testing every active reader in turn
    (soft-bounced at a million readers: 58 ms against 649 ms, benchmarks/segments.py).
    Under an "any" group it stays EXISTS: there PostgreSQL tests each reader against the
    list, and an IN list too large to hash in `work_mem` (a tag of 300,000 readers) would
    be read through once per reader, where EXISTS looks each one up by index.

    An "any" group made only of such conditions, with only "all" groups above it, becomes
    ONE IN over their ids joined by UNION: PostgreSQL reads each list by index, sorts the
    ids once and merges them with the active readers ("has press or has clinicians or
    opened one of the last 3" at a million readers: about 0.35 s, where an EXISTS per
    reader took 2.7 s). UNION, never UNION ALL: PostgreSQL cannot estimate how many
    distinct ids a UNION ALL holds, takes it for 200 and looks each one up by index
    (2.6 s); a UNION's rows it estimates from its parts. A group that mixes in any other
    condition stays an OR of EXISTS.

    Engagement is read from the `engagement` rows kept per person, which carry their
    copy's reader: never joined to the ledger (each open joined to its copy took a second
    at a million readers). The negative conditions (lacks a tag, never bounced, opened
    none) stay NOT EXISTS, which both databases read as an anti-join; an IN never stands
    under a NOT or an OR, so a NULL in its list cannot turn a reader's "no" into "unknown".
    """
    return and_(subscribers.c.status == SubscriberStatus.ACTIVE.value, _compile(tree, now, joined=True))


def _compile(item: Condition | Group, now: datetime, *, joined: bool) -> Where:
    """`joined`: only "all" groups above, so the database may join what an IN names."""
    if isinstance(item, Group):
        if joined and item.match == "any" and len(item.conditions) > 1:
            gathered = [_members(child, now) if isinstance(child, Condition) else None for child in item.conditions]
            lists = [members for members in gathered if members is not None]
            if len(lists) == len(gathered):
                return subscribers.c.id.in_(union(*lists))
        inner = joined and item.match == "all"
        parts = [_compile(child, now, joined=inner) for child in item.conditions]
        if not parts:
            return true() if item.match == "all" else false()
        return and_(*parts) if item.match == "all" else or_(*parts)
    members = _members(item, now) if joined else None
    if members is not None:
        return subscribers.c.id.in_(members)
    return _COMPILERS[item.field](item.op, item.value, now)


def _members(item: Condition, now: datetime) -> Select[tuple[int]] | None:
    """The subscriber ids that meet a condition kept in another table; None for the others."""
    if item.field == "tag" and item.op == "has":
        return select(subscriber_tags.c.subscriber_id).where(subscriber_tags.c.tag == str(item.value))
    if item.field == "bounces" and item.op == "soft_bounced":
        return select(bounce_messages.c.subscriber_id).where(
            bounce_messages.c.subscriber_id.is_not(None), _bounced("soft")
        )
    if item.field == "engagement" and item.op != "not_opened":
        return select(engagement.c.subscriber_id).where(
            engagement.c.subscriber_id.is_not(None), _engaged(item.op, item.value)
        )
    return None


def _tag(op: str, value: str | int | None, now: datetime) -> Where:
    tagged = exists().where(
        subscriber_tags.c.subscriber_id == subscribers.c.id, subscriber_tags.c.tag == str(value)
    )
    return tagged if op == "has" else not_(tagged)


def _topic(op: str, value: str | int | None, now: datetime) -> Where:
    # Topics are kept comma-separated, NULL for every topic (see schema.subscribers).
    pattern = "%," + str(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ",%"
    chose = (literal(",") + subscribers.c.topics + literal(",")).like(pattern, escape="\\")
    if op == "chose":
        return and_(subscribers.c.topics.is_not(None), chose)
    if op == "gets":
        return or_(subscribers.c.topics.is_(None), chose)
    return or_(subscribers.c.topics.is_(None), not_(chose))


def _signed_up(op: str, value: str | int | None, now: datetime) -> Where:
    if op in ("before", "after"):
        day = date.fromisoformat(str(value))
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if op == "before":
            return subscribers.c.created_at < start
        return subscribers.c.created_at >= start + timedelta(days=1)
    cut = now - timedelta(days=int(value or 0))
    return subscribers.c.created_at >= cut if op == "within_days" else subscribers.c.created_at < cut


def _source(op: str, value: str | int | None, now: datetime) -> Where:
    text = str(value)
    if op == "is":
        return subscribers.c.source == text
    if op == "is_not":
        return subscribers.c.source != text
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return subscribers.c.source.like(escaped + "%", escape="\\")


def _timezone(op: str, value: str | int | None, now: datetime) -> Where:
    if op == "unknown":
        return or_(subscribers.c.timezone.is_(None), subscribers.c.timezone == "")
    if op == "is":
        return subscribers.c.timezone == str(value)
    return or_(subscribers.c.timezone.is_(None), subscribers.c.timezone != str(value))


def _bounced(kind: str) -> Where:
    # A bounce counts as the soft-bounce limit counts it (store.bounce_review.soft_count):
    # taken as such, or decided so by a person; never a forged one.
    return or_(
        and_(bounce_messages.c.kind == kind, bounce_messages.c.outcome.in_(("counted", "suppressed"))),
        bounce_messages.c.decision == kind,
    )


def _bounces(op: str, value: str | int | None, now: datetime) -> Where:
    soft = exists().where(bounce_messages.c.subscriber_id == subscribers.c.id, _bounced("soft"))
    if op == "soft_bounced":
        return soft
    hard = exists().where(bounce_messages.c.subscriber_id == subscribers.c.id, _bounced("hard"))
    reported = exists().where(events.c.subscriber_id == subscribers.c.id, events.c.kind == "bounce")
    return and_(not_(soft), not_(hard), not_(reported))


def _engaged(op: str, value: str | int | None) -> Where:
    """Requests for the last `value` issues that a person (not a machine) made: opens or clicks.

    Only rows kept per person name a reader (`subscriber_id`); the others match no one.
    """
    recent = (
        select(issues.c.id)
        .where(issues.c.enqueued_at.is_not(None))
        .order_by(issues.c.enqueued_at.desc(), issues.c.id.desc())
        .limit(int(value or 1))
    )
    kinds = {"opened": ("open",), "not_opened": ("open",), "clicked": ("click",),
             "opened_or_clicked": ("open", "click")}[op]
    return and_(
        engagement.c.issue_id.in_(recent),
        engagement.c.kind.in_(kinds),
        engagement.c.machine == false(),
    )


def _engagement(op: str, value: str | int | None, now: datetime) -> Where:
    did = exists().where(engagement.c.subscriber_id == subscribers.c.id, _engaged(op, value))
    return not_(did) if op == "not_opened" else did


_COMPILERS: dict[str, Callable[[str, str | int | None, datetime], Where]] = {
    "tag": _tag,
    "topic": _topic,
    "signed_up": _signed_up,
    "source": _source,
    "timezone": _timezone,
    "bounces": _bounces,
    "engagement": _engagement,
}
