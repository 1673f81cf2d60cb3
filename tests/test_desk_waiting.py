"""The desk's waiting uploads: bounded, per session, taken once, forgotten with their files."""

from __future__ import annotations

from dataclasses import dataclass

from publisher.web.desk.waiting import Waiting


@dataclass(frozen=True)
class Upload:
    session_id: str
    name: str


def test_an_upload_is_taken_once_and_only_by_its_session() -> None:
    waiting: Waiting[Upload] = Waiting(4)
    key = waiting.put(Upload("me", "a.csv"))
    assert waiting.take(key, "someone else") is None
    assert waiting.get(key, "me") == Upload("me", "a.csv")
    assert waiting.take(key, "me") == Upload("me", "a.csv")
    assert waiting.take(key, "me") is None


def test_the_oldest_is_forgotten_past_the_size_and_dropping_forgets_too() -> None:
    forgotten: list[str] = []
    waiting: Waiting[Upload] = Waiting(2, lambda old: forgotten.append(old.name))
    first = waiting.put(Upload("me", "1"))
    second = waiting.put(Upload("me", "2"))
    waiting.put(Upload("me", "3"))
    assert forgotten == ["1"] and waiting.get(first, "me") is None
    waiting.drop(second)
    assert forgotten == ["1", "2"]
    taken = waiting.put(Upload("me", "4"))
    assert waiting.take(taken, "me") is not None and forgotten == ["1", "2"]
