"""FeatureEncoder: schema, categories, scaling and the bad-input policy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import streammem
from streammem.features.encoder import FeatureEncoder

KDD_LIKE = {"duration": 0.0, "src_bytes": 181.0, "protocol_type": "tcp", "service": "http"}


def test_schema_inferred_from_first_record_numeric_then_categorical():
    enc = FeatureEncoder(max_categories=3)
    enc.learn_one(KDD_LIKE)
    assert enc.numeric_ == ["duration", "src_bytes"]
    assert list(enc.vocabulary_) == ["protocol_type", "service"]
    assert enc.width_ == 2 + 2 * (3 + 1)


def test_learned_vocabulary_fills_slots_then_unknown_bucket():
    enc = FeatureEncoder(max_categories=2, scaling=None)
    for proto in ["tcp", "udp", "icmp"]:
        enc.learn_one({**KDD_LIKE, "protocol_type": proto})
    assert enc.vocabulary_["protocol_type"] == ["tcp", "udp"]
    icmp = enc.encode_one({**KDD_LIKE, "protocol_type": "icmp"})
    assert icmp[enc.columns_.index("protocol_type=<unknown>")] == 1.0
    assert icmp[enc.columns_.index("protocol_type=tcp")] == 0.0


def test_vocabulary_frozen_after_warmup():
    enc = FeatureEncoder(vocabulary_warmup=2, scaling=None)
    for proto in ["tcp", "udp", "icmp"]:
        enc.learn_one({**KDD_LIKE, "protocol_type": proto})
    assert enc.vocabulary_["protocol_type"] == ["tcp", "udp"]


def test_declared_vocabulary_is_not_extended():
    enc = FeatureEncoder(categorical={"protocol_type": ["tcp"], "service": None})
    enc.learn_one({**KDD_LIKE, "protocol_type": "udp"})
    assert enc.vocabulary_["protocol_type"] == ["tcp"]
    assert enc.capacity_["protocol_type"] == 1


def test_scoring_never_learns_categories():
    enc = FeatureEncoder()
    enc.learn_one(KDD_LIKE)
    enc.encode_one({**KDD_LIKE, "service": "ftp"})
    enc.vectorize_many(pd.DataFrame([{**KDD_LIKE, "service": "smtp"}]))
    assert enc.vocabulary_["service"] == ["http"]


def test_reading_then_learning_a_record_learns_what_it_would_learn_fresh():
    # score_one(x) then learn_one(x) reads x once; what is learned must not depend on that
    records = [{**KDD_LIKE, "src_bytes": float(i)} for i in range(6)]
    records[3]["service"] = "ftp"  # unknown while read, a new category when learned
    reread, fresh = FeatureEncoder(scaling=None), FeatureEncoder(scaling=None)
    for i, x in enumerate(records):
        fresh.learn_one({**x, "src_bytes": x["src_bytes"] + (0.5 if i == 4 else 0.0)})
        reread.encode_one(x)
        if i == 4:
            x["src_bytes"] += 0.5  # changed after it was read: learning takes the new value
        reread.learn_one(x)
    assert reread.vocabulary_ == fresh.vocabulary_
    assert reread.vocabulary_["service"] == ["http", "ftp"]
    assert reread.n_learned_ == fresh.n_learned_ == 6
    np.testing.assert_array_equal(reread.mean_, fresh.mean_)


def test_numbers_beyond_float_range_are_refused_on_every_path():
    enc = FeatureEncoder()
    enc.learn_one(KDD_LIKE)
    with pytest.raises(ValueError, match="src_bytes"):
        enc.encode_one({**KDD_LIKE, "src_bytes": 10**400})
    assert enc.encode_one({**KDD_LIKE, "src_bytes": 10**300}).dtype == np.float32


def test_standard_scaling_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.normal(5, 3, size=(500, 2))
    enc = FeatureEncoder(scaling="standard", soft_clip=None)
    frame = pd.DataFrame(values, columns=["u", "v"])
    for start in range(0, 500, 64):  # batched updates must equal the whole-data statistics
        enc.update_scaler(enc.vectorize_many(frame.iloc[start : start + 64]))
    np.testing.assert_allclose(enc.mean_, values.mean(0))
    scaled = enc.scale(values)
    np.testing.assert_allclose(scaled.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(0), 1, atol=1e-4)
    assert scaled.dtype == np.float32


def test_minmax_scaling():
    enc = FeatureEncoder(scaling="minmax")
    for v in (0.0, 10.0, 5.0):
        enc.learn_one({"v": v})
    assert enc.encode_one({"v": 5.0}).tolist() == [0.5]


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({**KDD_LIKE, "src_bytes": "lots"}, "'src_bytes': expected a number, got str"),
        ({**KDD_LIKE, "src_bytes": math.nan}, "'src_bytes': value is missing"),
        ({**KDD_LIKE, "src_bytes": math.inf}, "'src_bytes': non-finite"),
        ({**KDD_LIKE, "src_bytes": None}, "'src_bytes': value is missing"),
        ({**KDD_LIKE, "service": 80}, "'service': expected a string category, got int"),
        (
            {k: v for k, v in KDD_LIKE.items() if k != "duration"},
            r"missing field\(s\) \['duration'\]",
        ),
        ([1, 2, 3], "must be a dict"),
    ],
)
def test_bad_records_raise_value_error_naming_the_field(record, match):
    enc = FeatureEncoder()
    enc.learn_one(KDD_LIKE)
    with pytest.raises(ValueError, match=match):
        enc.encode_one(record)


def test_extra_fields_ignored_by_default_and_rejected_on_request():
    lenient = FeatureEncoder()
    lenient.learn_one(KDD_LIKE)
    extra = {**KDD_LIKE, "note": "hello", "n": 1}
    np.testing.assert_array_equal(lenient.encode_one(extra), lenient.encode_one(KDD_LIKE))
    strict = FeatureEncoder(extra="error")
    strict.learn_one(KDD_LIKE)
    with pytest.raises(ValueError, match="unexpected field"):
        strict.encode_one(extra)


def test_impute_policy_uses_running_mean_and_unknown_bucket():
    enc = FeatureEncoder(missing="impute", nonfinite="impute")
    for b in (100.0, 300.0):
        enc.learn_one({**KDD_LIKE, "src_bytes": b})
    imputed = enc.encode_one({**KDD_LIKE, "src_bytes": math.nan})
    assert imputed[enc.columns_.index("src_bytes")] == 0.0  # the mean, standardised
    no_service = enc.encode_one({k: v for k, v in KDD_LIKE.items() if k != "service"})
    assert no_service[enc.columns_.index("service=<unknown>")] == 1.0


def test_table_paths_equal_the_record_path():
    rows = [
        {**KDD_LIKE, "src_bytes": float(i), "protocol_type": p}
        for i, p in enumerate(["tcp", "udp", "tcp", "icmp"])
    ]
    by_record = FeatureEncoder()
    for row in rows:
        by_record.learn_one(row)
    by_frame = FeatureEncoder()
    raw = by_frame.vectorize_many(pd.DataFrame(rows), learn=True)
    by_frame.update_scaler(raw)
    assert by_frame.vocabulary_ == by_record.vocabulary_
    expected = np.vstack([by_record.encode_one(r) for r in rows])
    for batch in (pd.DataFrame(rows), pa.Table.from_pylist(rows), rows):
        np.testing.assert_allclose(by_frame.scale(by_frame.vectorize_many(batch)), expected)


def test_table_bad_columns_name_the_field():
    enc = FeatureEncoder()
    enc.learn_one(KDD_LIKE)
    with pytest.raises(ValueError, match="'src_bytes': expected a number, got str"):
        enc.vectorize_many(pd.DataFrame([{**KDD_LIKE, "src_bytes": "x"}]))
    with pytest.raises(ValueError, match="'duration': non-finite"):
        enc.vectorize_many(pd.DataFrame([{**KDD_LIKE, "duration": np.inf}]))
    with pytest.raises(ValueError, match="'service': expected a string category"):
        enc.vectorize_many(pd.DataFrame([{**KDD_LIKE, "service": 3}], dtype=object))
    with pytest.raises(TypeError, match="DataFrame"):
        enc.vectorize_many("not a table")


def test_arrays_need_an_all_numeric_schema_of_the_same_width():
    enc = FeatureEncoder()
    enc.vectorize_many(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="4 columns"):
        enc.vectorize_many(np.zeros((2, 4)))
    mixed = FeatureEncoder()
    mixed.learn_one(KDD_LIKE)
    with pytest.raises(ValueError, match="no column names"):
        mixed.vectorize_many(np.zeros((2, 2)))


def test_state_dict_round_trip():
    enc = FeatureEncoder()
    for i in range(5):
        enc.learn_one({**KDD_LIKE, "src_bytes": float(i), "service": f"s{i}"})
    restored = FeatureEncoder.from_state(enc.state_dict())
    probe = {**KDD_LIKE, "service": "s3"}
    np.testing.assert_array_equal(restored.encode_one(probe), enc.encode_one(probe))
    assert restored.columns_ == enc.columns_


def test_invalid_policy_names_allowed_values():
    with pytest.raises(ValueError, match=r"missing must be one of \('error', 'impute'\)"):
        FeatureEncoder(missing="drop").learn_one(KDD_LIKE)


def test_impute_policy_on_tables_with_absent_columns():
    enc = FeatureEncoder(missing="impute")
    rows = [{**KDD_LIKE, "src_bytes": b} for b in (100.0, 300.0)]
    enc.update_scaler(enc.vectorize_many(pd.DataFrame(rows), learn=True))
    partial = pd.DataFrame([{"duration": 0.0, "protocol_type": "tcp"}])
    expected = enc.encode_one({"duration": 0.0, "protocol_type": "tcp"})
    np.testing.assert_allclose(enc.scale(enc.vectorize_many(partial))[0], expected)
    assert expected[enc.columns_.index("src_bytes")] == 0.0


def test_robust_scaling_uses_the_window_quartiles_and_survives_heavy_tails():
    rng = np.random.default_rng(1)
    body = rng.normal(10.0, 2.0, size=2560)
    values = np.where(rng.random(2560) < 0.01, 1e9, body)  # 1 % of the values are 1e9
    enc = FeatureEncoder(scaling_window=2048)
    for start in range(0, 2560, 256):  # refits at least every 256 records
        enc.update_scaler(enc.vectorize_many(values[start : start + 256, None]))
    window = values[-2048:]
    low, high = np.quantile(window, [0.25, 0.75])
    np.testing.assert_allclose(enc.center_, np.median(window), rtol=1e-6)
    np.testing.assert_allclose(enc.spread_, (high - low) / 1.349, rtol=1e-6)
    typical = enc.scale(np.array([[12.0]]))[0, 0]
    assert abs(typical - (12.0 - np.median(window)) / enc.spread_[0]) < 1e-4
    extreme = enc.scale(np.array([[1e9]]))[0, 0]
    assert 5.0 < extreme < 25.0  # soft-clipped: still the highest, but no longer 1e9 / 2


def test_soft_clip_keeps_the_order_and_the_body():
    enc = FeatureEncoder(soft_clip=3.0)
    enc.update_scaler(enc.vectorize_many(np.array([[-1.0], [0.0], [1.0], [0.5], [-0.5]])))
    raw = np.array([[0.2], [2.0], [10.0], [1e6], [-1e6]])
    scaled = enc.scale(raw)[:, 0]
    unclipped = (raw[:, 0] - enc.center_[0]) / enc.spread_[0]
    assert scaled[0] == pytest.approx(unclipped[0], rel=1e-6)  # inside the limit: linear
    assert scaled[1] < scaled[2] < scaled[3] and scaled[4] == pytest.approx(-scaled[3])
    assert scaled[3] < 3.0 + np.log1p(1e7)


def test_an_array_is_refused_where_its_column_order_cannot_be_checked():
    """A model trained on named columns read an array by position: two swapped columns moved
    a score from 0.03 to 132.9 without a word."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"temp": rng.normal(20, 1, 300), "rpm": rng.normal(900, 5, 300)})
    named = streammem.MemAE(device="cpu")
    named.learn_many(frame)
    with pytest.raises(ValueError, match=r"no column names.*\['temp', 'rpm'\].*DataFrame"):
        named.score_many(frame[["rpm", "temp"]].to_numpy())
    # declared order: the array is read in that order, as the frame is
    encoder = streammem.FeatureEncoder(numeric=["temp", "rpm"])
    declared = streammem.MemAE(device="cpu", encoder=encoder)
    declared.learn_many(frame)
    np.testing.assert_allclose(
        declared.score_many(frame.to_numpy()), declared.score_many(frame), rtol=1e-6
    )
    positional = streammem.MemAE(device="cpu")  # learned from arrays: fields 0, 1
    positional.learn_many(frame.to_numpy())
    assert positional.score_many(frame.to_numpy()).shape == (300,)


def test_booleans_are_numbers_on_every_path():
    """One rule: True is 1 and False 0, Python's or NumPy's bool alike (a NumPy bool in a
    record was refused, or its field silently left out of the schema)."""
    values = [True, False, True, True]
    readings = [
        [{"a": float(i), "flag": v} for i, v in enumerate(values)],
        [{"a": float(i), "flag": np.bool_(v)} for i, v in enumerate(values)],
        pd.DataFrame({"a": np.arange(4.0), "flag": values}),
        pd.DataFrame({"a": np.arange(4.0), "flag": pd.array(values, dtype="boolean")}),
    ]
    for batch in readings:
        encoder = FeatureEncoder(scaling=None)
        assert encoder.vectorize_many(batch, learn=True)[:, 1].tolist() == [1.0, 0.0, 1.0, 1.0]
        assert encoder.numeric_ == ["a", "flag"]
    assert FeatureEncoder(scaling=None).vectorize_many(np.array([values]).T)[:, 0].sum() == 3
    with pytest.raises(ValueError, match="field 'flag': expected a number, got str 'true'"):
        encoder.encode_one({"a": 1.0, "flag": "true"})
