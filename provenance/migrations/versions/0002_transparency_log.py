"""transparency log entries, anchors, service state

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "anchors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("tree_size", sa.Integer(), nullable=False),
        sa.Column("root", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=True),
        sa.Column("contract", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=True),
        sa.Column("tx_hash", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
        sa.Column("block_number", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("anchors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_anchors_tree_size"), ["tree_size"], unique=False)

    op.create_table(
        "log_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("ref_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("leaf_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("leaf_index", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("log_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_log_entries_leaf_index"), ["leaf_index"], unique=True)
        batch_op.create_index(batch_op.f("ix_log_entries_ref_id"), ["ref_id"], unique=False)

    op.create_table(
        "service_state",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("service_state")
    with op.batch_alter_table("log_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_log_entries_ref_id"))
        batch_op.drop_index(batch_op.f("ix_log_entries_leaf_index"))

    op.drop_table("log_entries")
    with op.batch_alter_table("anchors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_anchors_tree_size"))

    op.drop_table("anchors")
