"""Initial schema: state, memories, turns, versions, deployments, experiments.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the model types, so later model changes never alter this revision.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "character_states",
        sa.Column("character_id", sa.String(length=64), nullable=False),
        sa.Column("player_id", sa.String(length=128), nullable=False),
        sa.Column("emotion", sa.JSON(), nullable=False),
        sa.Column("intensity", sa.Float(), nullable=False),
        sa.Column("trust", sa.Float(), nullable=False),
        sa.Column("affinity", sa.Float(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("character_id", "player_id", name=op.f("pk_character_states")),
    )
    op.create_table(
        "character_versions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("character_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("base_model", sa.String(length=256), nullable=False),
        sa.Column("adapter_name", sa.String(length=64), nullable=True),
        sa.Column("adapter_version", sa.String(length=64), nullable=True),
        sa.Column("adapter_sha256", sa.String(length=64), nullable=True),
        sa.Column("voice", sa.JSON(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("character", sa.JSON(), nullable=False),
        sa.Column("card", sa.JSON(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("gate", sa.JSON(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_character_versions")),
        sa.UniqueConstraint(
            "character_id", "version", name=op.f("uq_character_versions_character_id")
        ),
    )
    op.create_table(
        "experiments",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("character_id", sa.String(length=64), nullable=False),
        sa.Column("salt", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=True),
        sa.Column("stopped_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
        sa.UniqueConstraint("name", name=op.f("uq_experiments_name")),
    )
    op.create_table(
        "memories",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("character_id", sa.String(length=64), nullable=False),
        sa.Column("player_id", sa.String(length=128), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("importance", sa.Float(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("embedding_model", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memories")),
    )
    op.create_index("ix_memories_owner", "memories", ["character_id", "player_id", "created_at"])

    op.create_table(
        "turns",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("character_id", sa.String(length=64), nullable=False),
        sa.Column("player_id", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("variant", sa.String(length=64), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turns")),
    )
    op.create_index("ix_turns_owner", "turns", ["character_id", "player_id", "id"])

    op.create_table(
        "deployments",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("character_id", sa.String(length=64), nullable=False),
        sa.Column("environment", sa.String(length=32), nullable=False),
        sa.Column("version_id", BIG_ID, nullable=False),
        sa.Column("previous_version_id", BIG_ID, nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["previous_version_id"],
            ["character_versions.id"],
            name=op.f("fk_deployments_previous_version_id_character_versions"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["character_versions.id"],
            name=op.f("fk_deployments_version_id_character_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
    )
    op.create_index("ix_deployments_target", "deployments", ["character_id", "environment", "id"])

    op.create_table(
        "experiment_variants",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("experiment_id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("version_id", BIG_ID, nullable=True),
        sa.Column("overrides", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_experiment_variants_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["character_versions.id"],
            name=op.f("fk_experiment_variants_version_id_character_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_variants")),
        sa.UniqueConstraint(
            "experiment_id", "name", name=op.f("uq_experiment_variants_experiment_id")
        ),
    )
    op.create_table(
        "experiment_metrics",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("experiment_id", BIG_ID, nullable=False),
        sa.Column("variant_id", BIG_ID, nullable=False),
        sa.Column("player_id", sa.String(length=128), nullable=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_experiment_metrics_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["experiment_variants.id"],
            name=op.f("fk_experiment_metrics_variant_id_experiment_variants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_metrics")),
    )
    op.create_index("ix_experiment_metrics_variant", "experiment_metrics", ["variant_id", "name"])


def downgrade() -> None:
    op.drop_index("ix_experiment_metrics_variant", table_name="experiment_metrics")

    op.drop_table("experiment_metrics")
    op.drop_table("experiment_variants")
    op.drop_index("ix_deployments_target", table_name="deployments")

    op.drop_table("deployments")
    op.drop_index("ix_turns_owner", table_name="turns")

    op.drop_table("turns")
    op.drop_index("ix_memories_owner", table_name="memories")

    op.drop_table("memories")
    op.drop_table("experiments")
    op.drop_table("character_versions")
    op.drop_table("character_states")
