"""The settings behind a table, written under its Markdown (generated from :mod:`bench.zoo`)."""

from __future__ import annotations

from bench.ablations import GROUPS
from bench.papers import PaperTable
from bench.zoo import model_specs, train_config

__all__ = ["table_notes"]

_PROTOCOLS = {
    "one_class": "one-class: train on the normal class's training images, test on the full test "
    "split (other classes anomalous); fixed epochs, except models with a patience (MEMGAN), "
    "which hold out 10% of the normal images (seed 2022) and keep their best epoch on them.",
    "roco": "ROCO: the anomaly class is removed from training; 10% of the remaining training rows "
    "(seed 2022) validate; early stopping on the mean validation score; full test split.",
    "kdd": "KDDCUP (DAGMM): one-hot protocol_type/service/flag, min-max over all rows (as DAGMM's "
    "preprocessed file); task k = run k: random 50/50 split with seed k, train on the "
    "non-'normal.' rows of the first half (10% of them validate: best epoch kept), flag the top "
    "20% of test scores.",
}


def table_notes(table: PaperTable) -> str:
    """Protocol and per-model settings (class, kwargs, optimisation, scaling) as Markdown."""
    lines = [_PROTOCOLS[table.protocol], ""]
    if any((g.paper, g.dataset) == (table.paper, table.dataset) for g in GROUPS):
        lines += [
            "Hypotheses tried for the gaps: `ablations.md` (`python -m bench.ablations`).",
            "",
        ]
    for spec in model_specs(table.protocol, table.dataset):
        if spec.name not in table.models:
            continue
        config = train_config(table.protocol, spec)
        stop = f", patience {config.patience}" if config.patience else ""
        kwargs = ", ".join(f"{k}={v!r}" for k, v in spec.kwargs.items())
        lines.append(
            f"- **{spec.name}**: `{spec.cls.rsplit('.', 1)[-1]}({kwargs})`, inputs "
            f"`{spec.scaling}`; Adam lr {config.learning_rate:g}, batch {config.batch_size}, "
            f"≤{config.max_epochs} epochs{stop}; streaming: "
            f"{'`streammem.' + spec.estimator + '`' if spec.estimator else 'no estimator'}"
        )
    return "\n".join(lines)
