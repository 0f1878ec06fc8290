"""Seed the built-in property types (the DCD catalogue, dcd.md §8).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (type id, type name, [(dimension id, dimension name, value type, unit), ...] in value order).
# Value types: "number", "string", "boolean", or a MIME type for media. Data frozen here on purpose.
CATALOGUE: list[tuple[str, str, list[tuple[str, str, str, str]]]] = [
    ("ACCELEROMETER", "Accelerometer", [
        ("acceleration-x", "x", "number", "m/s2"),
        ("acceleration-y", "y", "number", "m/s2"),
        ("acceleration-z", "z", "number", "m/s2"),
    ]),
    ("GYROSCOPE", "Gyroscope", [
        ("rotation-acc-x", "x", "number", "rad/s"),
        ("rotation-acc-y", "y", "number", "rad/s"),
        ("rotation-acc-z", "z", "number", "rad/s"),
    ]),
    ("MAGNETIC_FIELD", "Magnetic Field", [
        ("magnetic-x", "x", "number", "uT"),
        ("megnetic-y", "y", "number", "uT"),
        ("magnetic-z", "z", "number", "uT"),
    ]),
    ("GRAVITY", "Gravity", [
        ("gravity-x", "x", "number", "m/s2"),
        ("gravity-y", "y", "number", "m/s2"),
        ("gravity-z", "z", "number", "m/s2"),
    ]),
    ("ROTATION_VECTOR", "Rotation Vector", [
        ("rotation-vector-x", "x", "number", ""),
        ("rotation-vector-y", "y", "number", ""),
        ("rotation-vector-z", "z", "number", ""),
    ]),
    ("EULER_ANGLE", "Euler Angle", [
        ("euler-angle-x", "x", "number", "degree"),
        ("euler-angle-y", "y", "number", "degree"),
        ("euler-angle-z", "z", "number", "degree"),
    ]),
    ("LOCATION", "Location", [
        ("longitude", "Longitude", "number", "°"),
        ("latitude", "Latitude", "number", "°"),
    ]),
    ("ALTITUDE", "Altitude", [("distance-m", "Distance", "number", "m")]),
    ("BEARING", "Bearing", [("bearing", "Bearing", "number", "°")]),
    ("SPEED", "Speed", [("speed", "Speed", "number", "")]),
    ("PRESSURE", "Pressure", [("pressure", "Pressure", "number", "hPa")]),
    ("PROXIMITY", "Proximity", [("distance-cm", "Distance", "number", "cm")]),
    ("RELATIVE_HUMIDITY", "Relative Humidity", [
        ("relative-humidity", "Relative Humidity", "number", "H%"),
    ]),
    ("TEMPERATURE", "Temperature", [("temperature", "Temperature", "number", "°C")]),
    ("LIGHT", "Light", [("illuminance", "Illuminance", "number", "lx")]),
    ("FORCE", "Force", [("force", "Force", "number", "kg")]),
    ("HEART_RATE", "Heart Rate", [
        ("heart-rate", "Heart Rate", "number", "BPM"),
        ("rr-interval", "RR-Interval", "number", "s"),
    ]),
    ("WIFI", "WiFi", [
        ("wifi-session-duration", "Session duration", "number", "ms"),
        ("wifi-rssi", "RSSI", "number", ""),
        ("wifi-snr", "SNR", "number", ""),
    ]),
    ("CPU", "CPU", [("cpu", "CPU", "number", "%")]),
    ("COUNT", "Count", [("count", "Count", "number", "")]),
    ("STATE", "State", [("state", "Value", "number", "")]),
    ("BINARY", "Binary", [("state", "State", "boolean", "")]),
    ("CLASS", "Class", [("class", "Class", "string", "")]),
    ("TEXT", "Text", [("text", "Text", "string", "")]),
    ("MQTT_STATUS", "Network Status", [("mqtt-status-class", "Class", "string", "")]),
    ("IP_ADDRESS", "IP Address", [
        ("local-ip-address", "Local IP", "string", ""),
        ("local-ip-address-type", "Type Local IP", "number", ""),
        ("external-ip-address", "External IP", "string", ""),
        ("external-ip-address-type", "Type External IP", "number", ""),
    ]),
    ("DNS", "Domain Name System", [
        ("dns-hostname", "Local hostname", "string", ""),
        ("dns-local", "Local domain", "string", ""),
        ("dns-fqdn", "FQDN", "string", ""),
    ]),
    ("VIDEO", "Video", [
        ("video-duration", "Duration", "number", "ms"),
        ("video-mp4", "Video", "video/mp4", ".mp4"),
    ]),
    ("AUDIO", "Audio", [
        ("audio-duration", "Duration", "number", "ms"),
        ("audio-mp3", "Audio", "audio/mpeg", ".mp3"),
    ]),
    ("PICTURE", "Picture", [
        ("res-x", "x", "number", "px"),
        ("res-y", "y", "number", "px"),
        ("image-jpg", "Image", "image/jpeg", ".jpg"),
    ]),
    ("IMAGE_PNG", "Image PNG", [
        ("res-x", "x", "number", "px"),
        ("res-y", "y", "number", "px"),
        ("image-png", "Image", "image/png", ".png"),
    ]),
]  # fmt: skip

_KINDS = {"number": "number", "string": "text", "boolean": "bool"}

types_table = sa.table(
    "property_types",
    sa.column("id", sa.String),
    sa.column("organization_id", sa.String),
    sa.column("name", sa.String),
    sa.column("description", sa.Text),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
dimensions_table = sa.table(
    "type_dimensions",
    sa.column("type_id", sa.String),
    sa.column("position", sa.Integer),
    sa.column("dimension_id", sa.String),
    sa.column("name", sa.String),
    sa.column("description", sa.Text),
    sa.column("unit", sa.String),
    sa.column("kind", sa.String),
    sa.column("media_types", sa.JSON),
    sa.column("labels", sa.JSON),
)


def upgrade() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    types = []
    dimensions = []
    for type_id, name, dims in CATALOGUE:
        types.append(
            {
                "id": type_id,
                "organization_id": None,
                "name": name,
                "description": None,
                "created_at": now,
                "updated_at": now,
            }
        )
        for position, (dim_id, dim_name, value_type, unit) in enumerate(dims):
            kind = _KINDS.get(value_type, "media")
            dimensions.append(
                {
                    "type_id": type_id,
                    "position": position,
                    "dimension_id": dim_id,
                    "name": dim_name,
                    "description": None,
                    "unit": unit,
                    "kind": kind,
                    "media_types": [value_type] if kind == "media" else [],
                    "labels": [],
                }
            )
    op.bulk_insert(types_table, types)
    op.bulk_insert(dimensions_table, dimensions)


def downgrade() -> None:
    ids = [t[0] for t in CATALOGUE]
    op.execute(dimensions_table.delete().where(dimensions_table.c.type_id.in_(ids)))
    op.execute(types_table.delete().where(types_table.c.id.in_(ids)))
