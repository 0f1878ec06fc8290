"""The native MQTT topics (native-api.md): pure parsing and building, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "tb/things/"
# A topic level that names something: no wildcards, no empty level (security.md §5.3).
_FORBIDDEN = frozenset("+#$\x00 ")


@dataclass(frozen=True, slots=True)
class PointsTopic:
    """``tb/things/{tid}/properties/{pid}`` or ``.../properties/by-name/{name}``."""

    thing_id: str
    property_id: str | None = None
    name: str | None = None


def _level(text: str) -> bool:
    return (
        bool(text) and len(text) <= 128 and _FORBIDDEN.isdisjoint(text) and text not in (".", "..")
    )


def points_topic(topic: str) -> PointsTopic | None:
    """The write a device topic stands for, or None when it is no native points topic."""
    if not topic.startswith(PREFIX):
        return None
    levels = topic[len(PREFIX) :].split("/")
    if not all(_level(level) for level in levels):
        return None
    if len(levels) == 3 and levels[1] == "properties":
        return PointsTopic(levels[0], property_id=levels[2])
    if len(levels) == 4 and levels[1:3] == ["properties", "by-name"]:
        return PointsTopic(levels[0], name=levels[3])
    return None


def errors_topic(thing_id: str) -> str:
    return f"{PREFIX}{thing_id}/errors"


def live_topic(thing_id: str, property_id: str) -> str:
    return f"{PREFIX}{thing_id}/properties/{property_id}/live"


@dataclass(frozen=True, slots=True)
class Subscription:
    """What a subscription filter asks to read: a thing's errors, one property's live topic, or
    the live topics of all its properties (``+``)."""

    thing_id: str
    property_id: str | None  # None: every property of the thing
    errors: bool = False


def subscription(topic_filter: str) -> Subscription | None:
    """The readable scope of a filter, or None for a filter outside the native topics."""
    if not topic_filter.startswith(PREFIX):
        return None
    levels = topic_filter[len(PREFIX) :].split("/")
    if not _level(levels[0]):
        return None
    rest = levels[1:]
    if rest == ["errors"]:
        return Subscription(levels[0], None, errors=True)
    if len(rest) == 3 and rest[0] == "properties" and rest[2] == "live":
        if rest[1] == "+":
            return Subscription(levels[0], None)
        if _level(rest[1]):
            return Subscription(levels[0], rest[1])
    return None
