"""The tables, as SQLAlchemy 2 typed models.

Times are stored timezone-aware in UTC (`UtcDateTime`); the runtime works with epoch
seconds from an injectable clock and converts at this edge (`to_datetime`,
`to_epoch`). Ids of characters and players are opaque strings chosen by the game.
The migrations in `migrations/versions/` create exactly these tables; a test compares
the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(64)  # character ids, versions, variant names
PLAYER = String(128)
#: autoincrementing key: BIGINT on PostgreSQL, INTEGER PRIMARY KEY (rowid) on SQLite
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def to_datetime(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def to_epoch(dt: datetime) -> float:
    return dt.timestamp()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class GoalRunRow(Base):
    """A character's goal that fired for a player: "once" goals fire no more."""

    __tablename__ = "goal_runs"

    character_id: Mapped[str] = mapped_column(ID, primary_key=True)
    player_id: Mapped[str] = mapped_column(PLAYER, primary_key=True)
    goal: Mapped[str] = mapped_column(ID, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CharacterStateRow(Base):
    """Emotion and relationship of one character toward one player."""

    __tablename__ = "character_states"

    character_id: Mapped[str] = mapped_column(ID, primary_key=True)
    player_id: Mapped[str] = mapped_column(PLAYER, primary_key=True)
    #: {emotion: weight}, weights summing to 1
    emotion: Mapped[dict[str, float]] = mapped_column(JSON)
    intensity: Mapped[float] = mapped_column(Float)
    trust: Mapped[float] = mapped_column(Float)
    affinity: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class MemoryRow(Base):
    """Something a character remembers. `player_id` None: shared by every player."""

    __tablename__ = "memories"
    __table_args__ = (Index("ix_memories_owner", "character_id", "player_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    character_id: Mapped[str] = mapped_column(ID)
    player_id: Mapped[str | None] = mapped_column(PLAYER)
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    importance: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: little-endian float32, L2-normalised
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: which embedder produced `embedding`; rows from another one are re-embedded
    embedding_model: Mapped[str | None] = mapped_column(String(128))


class TurnRow(Base):
    """One line of a conversation, with the version and variant that produced it."""

    __tablename__ = "turns"
    __table_args__ = (Index("ix_turns_owner", "character_id", "player_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ID)
    character_id: Mapped[str] = mapped_column(ID)
    player_id: Mapped[str] = mapped_column(PLAYER)
    role: Mapped[str] = mapped_column(String(16))  # "player" | "character"
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    version: Mapped[str | None] = mapped_column(ID)
    variant: Mapped[str | None] = mapped_column(ID)
    latency_ms: Mapped[float | None] = mapped_column(Float)


class CharacterVersionRow(Base):
    __tablename__ = "character_versions"
    __table_args__ = (UniqueConstraint("character_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    character_id: Mapped[str] = mapped_column(ID)
    version: Mapped[str] = mapped_column(ID)
    base_model: Mapped[str] = mapped_column(String(256))
    adapter_name: Mapped[str | None] = mapped_column(ID)
    adapter_version: Mapped[str | None] = mapped_column(ID)
    adapter_sha256: Mapped[str | None] = mapped_column(String(64))
    voice: Mapped[dict[str, Any]] = mapped_column(JSON)
    prompt: Mapped[str] = mapped_column(Text)
    #: the whole Character, as JSON
    character: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: the Character Card it was imported from, verbatim (unknown keys kept)
    card: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    metrics: Mapped[dict[str, float]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    #: the last validation report
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    notes: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DeploymentRow(Base):
    """One change of the serving version in one environment; the latest row serves."""

    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_target", "character_id", "environment", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    character_id: Mapped[str] = mapped_column(ID)
    environment: Mapped[str] = mapped_column(String(32))
    version_id: Mapped[int] = mapped_column(
        ForeignKey("character_versions.id", ondelete="RESTRICT")
    )
    #: what was serving before this row (None for the first deployment)
    previous_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("character_versions.id", ondelete="RESTRICT")
    )
    action: Mapped[str] = mapped_column(String(16))  # "deploy" | "rollback"
    actor: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ExperimentRow(Base):
    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(ID, unique=True)
    character_id: Mapped[str] = mapped_column(ID)
    #: mixed into the assignment hash so experiments split players independently
    salt: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # "draft" | "running" | "stopped"
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ExperimentVariantRow(Base):
    __tablename__ = "experiment_variants"
    __table_args__ = (UniqueConstraint("experiment_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(ID)
    #: order of declaration; position 0 is the control
    position: Mapped[int] = mapped_column(Integer)
    weight: Mapped[float] = mapped_column(Float)
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("character_versions.id", ondelete="RESTRICT")
    )
    #: prompt or voice changes on top of the version ({"voice": {...}, "system_prompt": ...})
    overrides: Mapped[dict[str, Any]] = mapped_column(JSON)


class ExperimentMetricRow(Base):
    __tablename__ = "experiment_metrics"
    __table_args__ = (Index("ix_experiment_metrics_variant", "variant_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    variant_id: Mapped[int] = mapped_column(
        ForeignKey("experiment_variants.id", ondelete="CASCADE")
    )
    player_id: Mapped[str | None] = mapped_column(PLAYER)
    name: Mapped[str] = mapped_column(ID)
    value: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
