"""MQTT publishes into the one ingest path, and their outcomes back to the device.

A publish on a native points topic is decoded like an HTTP body and written through
``ingest.service.write`` (same validation, same upsert, same writer: concurrent messages share
its group commit). ``handle`` returns only after the commit, so the broker can acknowledge then.
A refusal for good (bad payload, unknown property, another thing's topic) is reported on the
publisher's errors topic and counted; storage trouble is raised, so that nothing is acknowledged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pydantic

from thingbucket.access.principal import Principal
from thingbucket.errors import AppError, Unavailable
from thingbucket.ingest import service as ingest
from thingbucket.ingest.decoders import points_of
from thingbucket.ingest.service import PropertyWrite
from thingbucket.mqtt import rules, topics
from thingbucket.properties import service as properties
from thingbucket.runtime import Runtime

# (topic, payload) to publish to subscribers: given by the broker that runs the ingest.
Publish = Callable[[str, bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    message: str


async def handle(
    rt: Runtime, who: Principal, topic: str, payload: bytes, publish: Publish
) -> Refusal | None:
    """Store one message; None once committed, a Refusal (already reported) if refused.

    A committed batch is relayed on the property's ``live`` topic (best effort: a relay is not
    part of the acknowledgement, security.md §2.1)."""
    refusal = await _store(rt, who, topic, payload, publish)
    if refusal is not None:
        rt.metrics.ingest_rejected.labels("mqtt", refusal.code).inc()
        if who.kind == "thing" and who.id:
            body = {"code": refusal.code, "message": refusal.message, "topic": topic}
            await publish(topics.errors_topic(who.id), orjson.dumps(body))
    return refusal


async def _store(
    rt: Runtime, who: Principal, topic: str, payload: bytes, publish: Publish
) -> Refusal | None:
    target = topics.points_topic(topic)
    if target is None:
        return Refusal("UNKNOWN_TOPIC", "Not a thingbucket points topic.")
    if not rules.may_publish(who, topic):
        # A device publishes only under its own tb/things/{tid}/ (native-api.md, MQTT).
        return Refusal("TOPIC_NOT_PERMITTED", "A thing publishes only under its own topics.")
    try:
        doc: Any = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return Refusal("INVALID_JSON", f"The payload is not valid JSON: {exc.msg}.")
    try:
        property_id = target.property_id
        if property_id is None:
            assert target.name is not None
            type_id = doc.pop("type", None) if isinstance(doc, dict) else None
            # Its own unit of work: on SQLite the sample writer could not commit while this
            # session held the write lock for a new property.
            async with rt.db.session() as session:
                property_id = await properties.id_by_name(
                    session, who, target.thing_id, target.name, type_id
                )
        rows = points_of(doc)
        await ingest.write(rt, who, [PropertyWrite(property_id, rows, target.thing_id)])
        point_target = await properties.cached_point_target(
            rt, who, target.thing_id, property_id, "write"
        )
        live = {
            "property_id": property_id,
            "columns": ["ts", *(s.dimension_id for s in point_target.series)],
            "rows": rows,
        }
        await publish(topics.live_topic(target.thing_id, property_id), orjson.dumps(live))
    except Unavailable:
        raise
    except AppError as exc:
        return Refusal(exc.error_code, exc.message_text)
    except pydantic.ValidationError as exc:
        return Refusal("VALIDATION_FAILED", f"{exc.errors()[0].get('msg', 'invalid')}.")
    return None
