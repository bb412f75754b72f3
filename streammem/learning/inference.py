"""NumPy mirror of a trained model's eval-mode forward pass, for the per-event path.

A torch call costs 100-400 µs per event; a few small NumPy matrix products cost a few µs. So
``score_one`` runs a snapshot of the model exported here, rebuilt after each gradient update.
Only MLP-backbone models are exported (Linear, BatchNorm1d folded into the Linear before it,
element-wise activations, and the three memories); anything else returns ``None`` and the caller
keeps using torch. ``tests/test_inference.py`` checks the mirror against torch for every model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import singledispatch

import numpy as np
from torch import nn

from streammem.nn.memory import (
    MemAEMemory,
    MemorizerMemory,
    SharedMappingRead,
    TwinMemory,
)
from streammem.nn.models import AutoEncoderNet

__all__ = ["numpy_reconstructor"]

Array = np.ndarray
Fn = Callable[[Array], Array]
_EPS = 1e-12


class _Unsupported(Exception):
    pass


def numpy_reconstructor(model: nn.Module) -> Fn | None:
    """``(B, F) → (B, F)`` equal to ``model.eval()(x).reconstruction``; None if unsupported."""
    if not isinstance(model, AutoEncoderNet) or not model.flat_input:
        return None
    try:
        encode = _export(model.encoder)
        decode = _export(model.decoder)
        memorize = _export(model.memory) if model.memory is not None else None
    except _Unsupported:
        return None
    radius = float(model.trust.radius) if model.trust is not None else math.inf

    def reconstruct(x: Array) -> Array:
        z = encode(x)
        if memorize is not None:
            read = memorize(z)
            if math.isfinite(radius):  # the trust region: see TrustRegion
                distance = np.sqrt(np.einsum("ij,ij->i", z - read, z - read))[:, None]
                read = read + (z - read) * np.minimum(1.0, radius / np.maximum(distance, _EPS))
            z = read
        return decode(z)

    return reconstruct


def _param(tensor) -> Array:
    # float64: a score divides a column's error by the model's typical error on it, so the
    # float32 rounding of two small numbers would show (batch and single scores differed by
    # 2e-5); small models cost the same either way
    return tensor.detach().cpu().numpy().astype(np.float64, copy=True)


def _softmax(logits: Array) -> Array:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@singledispatch
def _export(module: nn.Module) -> Fn:
    raise _Unsupported(type(module).__name__)


@_export.register
def _(module: nn.Sequential) -> Fn:
    layers = list(module)
    steps: list[Fn] = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        following = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, nn.Linear) and isinstance(following, nn.BatchNorm1d):
            steps.append(_affine(*_fold_batchnorm(layer, following)))
            i += 2
            continue
        steps.append(_export(layer))
        i += 1

    def run(x: Array) -> Array:
        for step in steps:
            x = step(x)
        return x

    return run


def _affine(weight_t: Array, bias: Array) -> Fn:
    def run(x: Array) -> Array:
        return x @ weight_t + bias

    return run


def _fold_batchnorm(linear: nn.Linear, norm: nn.BatchNorm1d) -> tuple[Array, Array]:
    """Eval-mode BN(Wx+b) = (W·s)x + (b-μ)·s + β with s = γ/√(σ²+ε)."""
    weight = linear.weight.detach().double()
    bias = linear.bias.detach().double() if linear.bias is not None else weight.new_zeros(1)
    scale = norm.weight.detach().double() / (norm.running_var.double() + norm.eps).sqrt()
    folded_w = (weight * scale[:, None]).T
    folded_b = (bias - norm.running_mean.double()) * scale + norm.bias.detach().double()
    return _param(folded_w.contiguous()), _param(folded_b)


@_export.register
def _(module: nn.Linear) -> Fn:
    bias = _param(module.bias) if module.bias is not None else np.float64(0)
    return _affine(np.ascontiguousarray(_param(module.weight).T), bias)


@_export.register
def _(module: nn.LeakyReLU) -> Fn:
    slope = np.float32(module.negative_slope)
    if 0 <= slope <= 1:  # max(x, a·x) equals leaky ReLU for slopes in [0, 1]
        return lambda x: np.maximum(x, x * slope)
    return lambda x: np.where(x >= 0, x, x * slope)


@_export.register
def _(module: nn.ReLU) -> Fn:
    return lambda x: np.maximum(x, 0)


@_export.register
def _(module: nn.Tanh) -> Fn:
    return np.tanh


@_export.register
def _(module: nn.Sigmoid) -> Fn:
    return lambda x: 1.0 / (1.0 + np.exp(-x))


@_export.register
def _(module: MemAEMemory) -> Fn:
    slots = _param(module.slots)
    cosine = module.similarity == "cosine"
    keys = (
        slots / np.maximum(np.linalg.norm(slots, axis=1, keepdims=True), _EPS) if cosine else slots
    )
    keys_t = np.ascontiguousarray(keys.T)
    threshold = np.float32(module.shrink_threshold)
    inverse_temperature = np.float32(1.0 / module.temperature)

    def run(z: Array) -> Array:
        if cosine:
            z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), _EPS)
        weights = _softmax((z @ keys_t) * inverse_temperature)
        if threshold > 0:
            shifted = weights - threshold
            weights = np.maximum(shifted, 0) * weights / (np.abs(shifted) + _EPS)
            weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), _EPS)
        return weights @ slots

    return run


def _shared_read(read: SharedMappingRead) -> Fn:
    slots = _param(read.slots)
    mapping_t = _param(read.mapping.weight).T
    # (h W)(M W)^T = h (W (M W)^T): one product per round instead of two
    attend = np.ascontiguousarray(mapping_t @ (slots @ mapping_t).T)

    def run(h: Array) -> Array:
        return _softmax(h @ attend) @ slots

    return run


@_export.register
def _(module: MemorizerMemory) -> Fn:
    reads = [_shared_read(read) for read in module.reads]

    def run(h: Array) -> Array:
        state = h
        for read in reads:
            state = read(state + h)
        return state

    return run


@_export.register
def _(module: TwinMemory) -> Fn:
    first = _export(module.hippocampal)
    second = _export(module.cortical)
    if module.decomposition == "split":
        half = module.dim // 2

        def decompose(h: Array) -> tuple[Array, Array]:
            return h[:, :half], h[:, half:]
    else:
        project_a, project_b = _export(module.project_a), _export(module.project_b)

        def decompose(h: Array) -> tuple[Array, Array]:
            return project_a(h), project_b(h)

    mode = module.reintegration
    if mode == "sum":
        expand_a, expand_b = _export(module.expand_a), _export(module.expand_b)
    gate = 1.0 / (1.0 + np.exp(-_param(module.gate))) if mode == "gate" else None

    def run(h: Array) -> Array:
        part_a, part_b = decompose(h)
        read_a = first(part_a)
        read_b = second(part_b + read_a if mode == "cascade" else part_b)
        if mode == "sum":
            return expand_a(read_a) + expand_b(read_b)
        joined = np.concatenate([read_a, read_b], axis=1)
        return gate * joined + (1 - gate) * h if gate is not None else joined

    return run
