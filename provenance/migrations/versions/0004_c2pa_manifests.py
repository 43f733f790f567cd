"""c2pa manifests

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "c2pa_manifests",
        sa.Column("manifest_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("registration_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("store_path", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("media_type", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["registration_id"],
            ["registrations.id"],
        ),
        sa.PrimaryKeyConstraint("manifest_id"),
    )
    with op.batch_alter_table("c2pa_manifests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_c2pa_manifests_registration_id"), ["registration_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("c2pa_manifests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_c2pa_manifests_registration_id"))

    op.drop_table("c2pa_manifests")
