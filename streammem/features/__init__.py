"""How records become model inputs: the feature encoder (schema, scaling, one-hot) and the
replay window it and the detectors sample from. Nothing here knows about models."""

from __future__ import annotations

from streammem.features.encoder import FeatureEncoder, schema_example
from streammem.features.replay import ReplayWindow

__all__ = ["FeatureEncoder", "ReplayWindow", "schema_example"]
