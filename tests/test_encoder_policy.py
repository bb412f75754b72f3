"""One bad-input policy on every input path of the encoder (records, tables, arrays)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from streammem.features.encoder import FeatureEncoder

ROWS = [{"a": 1.0, "b": 10.0}, {"a": 3.0, "b": 30.0}]


def fitted(**policy) -> FeatureEncoder:
    """Numeric fields declared in order, so that arrays can be checked against them."""
    encoder = FeatureEncoder(numeric=["a", "b"], **policy)
    encoder.update_scaler(encoder.vectorize_many(pd.DataFrame(ROWS), learn=True))
    return encoder


@pytest.mark.parametrize(
    ("value", "policy", "error"),
    [
        (math.nan, {}, "'a': value is missing"),
        (None, {}, "'a': value is missing"),
        (math.inf, {}, "'a': non-finite value inf"),
        (-math.inf, {"missing": "impute"}, "'a': non-finite value -inf"),
        (math.inf, {"missing": "impute", "nonfinite": "error"}, "'a': non-finite"),
    ],
)
def test_records_tables_and_arrays_reject_alike(value, policy, error):
    encoder = fitted(**policy)
    for encode in (
        lambda: encoder.vectorize_one({"a": value, "b": 1.0}),
        lambda: encoder.vectorize_many(pd.DataFrame([{"a": value, "b": 1.0}])),
        lambda: encoder.vectorize_many(np.array([[np.nan if value is None else value, 1.0]])),
    ):
        with pytest.raises(ValueError, match=error):
            encode()


@pytest.mark.parametrize("value", [math.nan, None, math.inf, 10**400])
def test_records_tables_and_arrays_impute_alike(value):
    encoder = fitted(missing="impute", nonfinite="impute")
    record = {"a": value, "b": 1.0}
    alone = encoder.encode_one(record)
    table = encoder.scale(encoder.vectorize_many(pd.DataFrame([record], dtype=object)))[0]
    np.testing.assert_array_equal(alone, table)
    assert alone[0] == 0.0  # the running mean, standardised
    if value is not None and value != 10**400:
        array = encoder.scale(encoder.vectorize_many(np.array([[value, 1.0]])))[0]
        np.testing.assert_array_equal(alone, array)


def test_a_table_error_names_every_missing_column():
    encoder = FeatureEncoder(categorical={"c": ["x"]})
    encoder.learn_one({"a": 1.0, "b": 2.0, "c": "x"})
    with pytest.raises(ValueError, match=r"missing field\(s\) \['a', 'b', 'c'\]"):
        encoder.vectorize_many(pd.DataFrame({"z": [1.0]}))
