"""Property type ids are unique per organization, not across the instance.

A global id let one organization probe another's private type ids (a 409 where an unused id
answers 201). Types get a row key (``pk``); ``(organization_id, id)`` is unique, and type
dimensions refer to the row key. The tables are small (the catalogue plus custom types), so they
are rebuilt with their rows rather than altered in place, the same way on both backends.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TYPE_COLUMNS = ("organization_id", "name", "description", "created_at", "updated_at")
_DIMENSION_COLUMNS = (
    "position", "dimension_id", "name", "description", "unit", "kind", "media_types", "labels"
)  # fmt: skip


def _types_table(key: str) -> list[Any]:
    """The columns and constraints of property_types, keyed by ``key`` ("pk" or "id")."""
    items: list[Any] = [
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=True),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_property_types_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(key, name=op.f("pk_property_types")),
    ]
    if key == "pk":
        items.insert(0, sa.Column("pk", sa.String(length=36), nullable=False))
        items.append(
            sa.UniqueConstraint(
                "organization_id", "id", name=op.f("uq_property_types_organization_id_id")
            )
        )
    return items


def _dimensions_table(ref: str) -> list[Any]:
    """The columns and constraints of type_dimensions, pointing at property_types.``ref``."""
    column = "type_pk" if ref == "pk" else "type_id"
    return [
        sa.Column(column, sa.String(length=64 if ref == "id" else 36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("dimension_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("media_types", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            [column],
            [f"property_types.{ref}"],
            name=op.f(f"fk_type_dimensions_{column}_property_types"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(column, "position", name=op.f("pk_type_dimensions")),
        sa.UniqueConstraint(
            column, "dimension_id", name=op.f(f"uq_type_dimensions_{column}_dimension_id")
        ),
    ]


def _rebuild(key: str, move: Any) -> None:
    """Read both tables, drop them, create them keyed by ``key``, and put the rows back."""
    conn = op.get_bind()
    meta = sa.MetaData()
    old_types = sa.Table("property_types", meta, autoload_with=conn)
    old_dims = sa.Table("type_dimensions", meta, autoload_with=conn)
    types = [dict(r._mapping) for r in conn.execute(sa.select(old_types))]
    dims = [dict(r._mapping) for r in conn.execute(sa.select(old_dims))]
    new_types, new_dims = move(types, dims)
    op.drop_table("type_dimensions")
    with op.batch_alter_table("property_types") as batch_op:
        batch_op.drop_index("ix_property_types_organization_id")
    op.drop_table("property_types")
    types_table = op.create_table("property_types", *_types_table(key))
    with op.batch_alter_table("property_types") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_property_types_organization_id"), ["organization_id"], unique=False
        )
    dims_table = op.create_table("type_dimensions", *_dimensions_table(key))
    if new_types:
        op.bulk_insert(types_table, new_types)
    if new_dims:
        op.bulk_insert(dims_table, new_dims)


def upgrade() -> None:
    def move(types: list[dict[str, Any]], dims: list[dict[str, Any]]) -> Any:
        pks = {t["id"]: str(uuid.uuid4()) for t in types}
        new_types = [{"pk": pks[t["id"]], "id": t["id"], **{c: t[c] for c in _TYPE_COLUMNS}}
                     for t in types]  # fmt: skip
        new_dims = [{"type_pk": pks[d["type_id"]], **{c: d[c] for c in _DIMENSION_COLUMNS}}
                    for d in dims]  # fmt: skip
        return new_types, new_dims

    _rebuild("pk", move)


def downgrade() -> None:
    def move(types: list[dict[str, Any]], dims: list[dict[str, Any]]) -> Any:
        # Going back to global ids: where two organizations share an id, the oldest type keeps it.
        kept: dict[str, dict[str, Any]] = {}
        for t in sorted(types, key=lambda t: t["created_at"]):
            kept.setdefault(t["id"], t)
        ids = {t["pk"]: t["id"] for t in kept.values()}
        new_types = [{"id": t["id"], **{c: t[c] for c in _TYPE_COLUMNS}} for t in kept.values()]
        new_dims = [{"type_id": ids[d["type_pk"]], **{c: d[c] for c in _DIMENSION_COLUMNS}}
                    for d in dims if d["type_pk"] in ids]  # fmt: skip
        return new_types, new_dims

    _rebuild("id", move)
