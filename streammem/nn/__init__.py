"""Pure torch modules: memories, backbones and the models built from them (no streaming logic)."""

from __future__ import annotations

from streammem.nn.backbones import Backbone, build_backbone
from streammem.nn.memory import MemAEMemory, MemorizerMemory, MemoryReadout, TwinMemory
from streammem.nn.models import (
    AENet,
    AutoEncoderNet,
    MemAENet,
    MemorizerNet,
    ModelOutput,
    ReconstructionModel,
    RFTMNet,
)
from streammem.nn.network import Network

__all__ = [
    "AENet",
    "AutoEncoderNet",
    "Backbone",
    "MemAEMemory",
    "MemAENet",
    "MemorizerMemory",
    "MemorizerNet",
    "MemoryReadout",
    "ModelOutput",
    "Network",
    "RFTMNet",
    "ReconstructionModel",
    "TwinMemory",
    "build_backbone",
]
