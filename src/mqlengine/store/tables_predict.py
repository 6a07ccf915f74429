"""Tables of the predictive likelihood: the model registry and shadow scores.

``models`` keeps every trained model as a versioned artifact (the model's own JSON bytes),
what it was trained on (label, training window, rows, a fingerprint of the data, the
features and their reference distribution for drift) and its held-out metrics. One model at
most is ``live``; ``candidate`` models wait for a promotion; ``retired`` ones were live.
``model_shadow_scores`` keeps, per scoring of a person while a shadow model runs, what the
live model and the shadow candidate said and decided (the candidate never decides).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, LargeBinary, String, Table

from mqlengine.store.tables import Id, metadata
from mqlengine.store.types import JsonType, UTCDateTime

models = Table(
    "models",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),  # the model version
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False, index=True),  # candidate | live | retired
    Column("artifact", LargeBinary, nullable=False),
    Column("features", JsonType, nullable=False),
    Column("metrics", JsonType, nullable=False),
    Column("label", JsonType, nullable=False),
    Column("definition_version", String(100), nullable=False),
    Column("window_start", UTCDateTime(), nullable=True),
    Column("window_end", UTCDateTime(), nullable=True),
    Column("rows", Integer, nullable=False),
    Column("positives", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("reference", JsonType, nullable=False),  # per feature and the likelihood: bins
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("promoted_at", UTCDateTime(), nullable=True),
    Column("retired_at", UTCDateTime(), nullable=True),
)

model_shadow_scores = Table(
    "model_shadow_scores",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("person_id", Id, nullable=False, index=True),  # no foreign key: see events
    Column("as_of", UTCDateTime(), nullable=False),
    Column("live_version", Integer, nullable=True),
    Column("live_likelihood", Float, nullable=True),
    Column("live_qualifies", Boolean, nullable=False),
    Column("shadow_version", Integer, nullable=False),
    Column("shadow_likelihood", Float, nullable=False),
    Column("shadow_qualifies", Boolean, nullable=False),
    Index("ix_model_shadow_scores_shadow_version_as_of", "shadow_version", "as_of"),
)
