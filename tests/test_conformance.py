"""Generic estimator conformance, run over every detector that streammem exports.

River's own ``check_estimator`` downloads data sets, so this is our offline equivalent:
construction, parameters, cold start, pure scoring, one-vs-many equality, input formats, dtypes,
pickling, cloning, save / load.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import pickle

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from river import base as river_base

import streammem
from streammem.detectors.base import MemoryDetector
from streammem.learning.inference import numpy_reconstructor

DETECTORS = sorted(
    (
        obj
        for name in streammem.__all__
        if inspect.isclass(obj := getattr(streammem, name))
        and issubclass(obj, MemoryDetector)
        and obj is not MemoryDetector
    ),
    key=lambda cls: cls.__name__,
)
# Small, fast settings per detector (all constructor parameters); image-only detectors get
# flattened 1x28x28 images as records, the others tabular records with a categorical field.
SMALL = streammem.Schedule(batch_size=16, min_records=16)
NET = streammem.Network(hidden_sizes=(16,), latent_size=8)
FAST = {"schedule": SMALL, "network": NET, "device": "cpu"}
IMAGE_ONLY = {
    "MemGAN": {
        "num_units": 5,
        "unit_dim": 8,
        "width": 4,
        "schedule": dataclasses.replace(SMALL, trim=0.0),
        "device": "cpu",
    },
}


def is_image(cls: type[MemoryDetector]) -> bool:
    return cls.__name__ in IMAGE_ONLY


def make(cls: type[MemoryDetector], **overrides) -> MemoryDetector:
    return cls(**{**IMAGE_ONLY.get(cls.__name__, FAST), **overrides})


def params(estimator: river_base.Base) -> dict:
    """The constructor arguments an estimator keeps, one attribute each (River's convention),
    nested estimators as their class and arguments."""
    return {
        name: (type(value), params(value)) if isinstance(value, river_base.Base) else value
        for name in inspect.signature(type(estimator)).parameters
        for value in [getattr(estimator, name)]
    }


def records(n: int, seed: int = 0, image: bool = False) -> list[dict]:
    rng = np.random.default_rng(seed)
    if image:
        pixels = rng.uniform(-1, 1, size=(n, 784))
        return [dict(enumerate(row.tolist())) for row in pixels]
    out = []
    for _ in range(n):
        a, b = rng.normal(size=2)
        out.append({"a": a, "b": b, "c": a - 2 * b, "proto": str(rng.choice(["tcp", "udp"]))})
    return out


def numeric_frame(n: int, seed: int = 0, image: bool = False) -> pd.DataFrame:
    if image:
        return pd.DataFrame(records(n, seed, image=True))
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, n))
    return pd.DataFrame({"a": a, "b": b, "c": a - 2 * b})


def bad_records(good: dict, image: bool) -> dict:
    """Field → a record that is bad in that field."""
    if image:
        return {0: {**good, 0: "oops"}, 1: {**good, 1: float("nan")}, 2: {**good, 2: None}}
    return {
        "a": {**good, "a": "oops"},
        "b": {**good, "b": float("nan")},
        "proto": {**good, "proto": 3},
    }


def same_state(a, b) -> bool:
    """Equal values, tensors compared element-wise (pickled bytes also differ on copies)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
        )
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_every_detector_is_covered():
    assert {cls.__name__ for cls in DETECTORS} >= {"AE", "MemAE", "Memorizer", "RFTM"}


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda c: c.__name__)
class TestConformance:
    def test_default_construction_and_params(self, cls):
        det = cls()
        params = det._get_params()
        signature = inspect.signature(cls.__init__).parameters
        assert set(params) == set(signature) - {"self"}
        for name, param in signature.items():
            if name != "self":
                assert getattr(det, name) == param.default, name
        assert not any(k.endswith("_") for k in vars(det)), "fitted state set in __init__"

    def test_no_validation_in_init(self, cls):
        det = make(cls, schedule="fast")
        with pytest.raises(ValueError, match="schedule"):
            det.learn_many(numeric_frame(8, image=is_image(cls)))

    def test_cold_start_is_finite_and_pure(self, cls):
        det = make(cls)
        assert det.score_one(records(1, image=is_image(cls))[0]) == 0.0
        cold = det.score_many(numeric_frame(5, image=is_image(cls)))
        assert cold[0] == 0.0 and np.isfinite(cold).all() and cold.shape == (5,)
        assert vars(det) == vars(make(cls)), "scoring before learning changed state"

    def test_cold_batch_scores_each_row_against_the_rows_before_it(self, cls):
        """Before any learning a batch is still ranked: row i as the detector would score it
        one by one after learning rows 0..i-1 with its decoder still at the centre."""
        if is_image(cls):
            pytest.skip("image detectors do not scale their inputs")
        frame = numeric_frame(40)
        frame.loc[30, "a"] = 25.0  # far out, so far above every other row
        cold = make(cls).score_many(frame)
        assert cold.argmax() == 30
        replay = make(cls, schedule=streammem.Schedule(budget=0, min_records=16))
        for i in range(1, 40):
            replay.learn_many(frame.iloc[i - 1 : i])
            assert replay.score_many(frame.iloc[i : i + 1])[0] == pytest.approx(cold[i], rel=1e-5)

    def test_scoring_after_a_rejected_first_record_is_pure(self, cls):
        det = make(cls)
        with pytest.raises(ValueError):
            det.learn_one({"a": None})  # no field to build a schema from
        before = vars(det.encoder_).copy()
        cold = det.score_many(records(3, image=is_image(cls)))
        assert cold[0] == 0.0 and np.isfinite(cold).all()
        assert vars(det.encoder_) == before, "scoring fixed the learning encoder's schema"

    def test_scoring_is_pure(self, cls):
        det = make(cls)
        det.learn_many(records(64, image=is_image(cls)))
        before = det.state_dict()
        probe = records(10, seed=1, image=is_image(cls))
        first = [det.score_one(x) for x in probe]
        many = det.score_many(probe)
        assert same_state(det.state_dict(), before)
        assert [det.score_one(x) for x in probe] == first
        np.testing.assert_array_equal(det.score_many(probe), many)

    def test_score_many_equals_score_one(self, cls):
        det = make(cls)
        det.learn_many(records(80, image=is_image(cls)))
        probe = records(20, seed=2, image=is_image(cls))
        one = np.array([det.score_one(x) for x in probe])
        np.testing.assert_allclose(det.score_many(probe), one, rtol=1e-4, atol=1e-7)

    def test_learn_many_equals_learn_one(self, cls):
        data = records(50, image=is_image(cls))
        one, many = make(cls), make(cls)
        for x in data:
            one.learn_one(x)
        many.learn_many(pd.DataFrame(data[:20]))
        many.learn_many(pd.DataFrame(data[20:]))
        assert one.n_updates_ == many.n_updates_ > 0
        probe = records(8, seed=3, image=is_image(cls))
        np.testing.assert_allclose(one.score_many(probe), many.score_many(probe), rtol=1e-5)

    def test_reading_a_batch_once_changes_nothing(self, cls):
        """encode_many then score_many / learn_many: the same scores and the same model."""
        # categories are learned from the first 40 records only: later batches are reused
        settings = (
            {} if is_image(cls) else {"encoder": streammem.FeatureEncoder(vocabulary_warmup=40)}
        )
        plain, once = make(cls, **settings), make(cls, **settings)
        reused = 0
        for seed in range(4):  # cold, young (categories still learned), then older batches
            batch = records(30, seed=20 + seed, image=is_image(cls))
            expected = plain.score_many(batch)
            plain.learn_many(batch)
            encoded = once.encode_many(batch)
            reused += encoded.learnable
            np.testing.assert_array_equal(once.score_many(encoded), expected)
            once.learn_many(encoded)
        assert reused >= 2
        assert same_state(once.state_dict(), plain.state_dict())

    def test_input_formats_agree(self, cls):
        det = make(cls)
        det.learn_many(numeric_frame(48, image=is_image(cls)))
        frame = numeric_frame(12, seed=4, image=is_image(cls))
        expected = det.score_many(frame)
        table = pa.Table.from_pandas(frame)
        for batch in (table, table.to_batches()[0], frame.to_dict("records")):
            np.testing.assert_allclose(det.score_many(batch), expected, rtol=1e-5)
        if is_image(cls):  # pixels are named by position: an array is read as its records
            np.testing.assert_allclose(det.score_many(frame.to_numpy()), expected, rtol=1e-5)
            return
        with pytest.raises(ValueError, match="no column names"):  # order cannot be checked
            det.score_many(frame.to_numpy())
        declared = make(cls, encoder=streammem.FeatureEncoder(numeric=list(frame.columns)))
        declared.learn_many(numeric_frame(48))
        np.testing.assert_allclose(
            declared.score_many(frame.to_numpy()), declared.score_many(frame), rtol=1e-5
        )

    def test_dtypes(self, cls):
        det = make(cls)
        det.learn_many(records(32, image=is_image(cls)))
        score = det.score_one(records(1, seed=5, image=is_image(cls))[0])
        assert type(score) is float and math.isfinite(score)
        scores = det.score_many(records(4, seed=5, image=is_image(cls)))
        assert scores.dtype == np.float64 and scores.shape == (4,)
        assert np.isfinite(scores).all()

    def test_pickle_and_deepcopy_round_trip(self, cls):
        det = make(cls)
        det.learn_many(records(40, image=is_image(cls)))
        assert det.pending_, "the test should cover records waiting for their chunk"
        probe = records(6, seed=6, image=is_image(cls))
        for restored in (pickle.loads(pickle.dumps(det)), copy.deepcopy(det)):
            np.testing.assert_array_equal(restored.score_many(probe), det.score_many(probe))
            assert [restored.score_one(x) for x in probe] == [det.score_one(x) for x in probe]
            # the buffered rows survive: one more learn step stays in lock-step
            restored.learn_many(records(8, seed=7, image=is_image(cls)))
        det.learn_many(records(8, seed=7, image=is_image(cls)))
        np.testing.assert_allclose(restored.score_many(probe), det.score_many(probe), rtol=1e-6)

    def test_save_load_restores_identical_scores(self, cls, tmp_path):
        det = make(cls)
        det.learn_many(records(40, image=is_image(cls)))
        path = tmp_path / "det.ckpt"
        det.save(path)
        loaded = streammem.load(path)
        assert type(loaded) is cls and params(loaded) == params(det)
        probe = records(6, seed=8, image=is_image(cls))
        np.testing.assert_array_equal(loaded.score_many(probe), det.score_many(probe))
        loaded.learn_many(records(8, seed=9, image=is_image(cls)))
        det.learn_many(records(8, seed=9, image=is_image(cls)))
        np.testing.assert_allclose(loaded.score_many(probe), det.score_many(probe), rtol=1e-6)

    def test_state_dict_is_a_snapshot(self, cls):
        det = make(cls)
        det.learn_many(records(32, image=is_image(cls)))
        state = det.state_dict()
        frozen = copy.deepcopy(state)
        det.learn_many(records(32, seed=11, image=is_image(cls)))
        assert same_state(state, frozen), "later learning changed an earlier state_dict"
        assert not same_state(det.state_dict(), frozen), "learning should change the state"

    def test_clone_is_unfitted_with_same_params(self, cls):
        det = make(cls)
        det.learn_many(records(32, image=is_image(cls)))
        clone = det.clone()
        assert params(clone) == params(det)
        assert clone.score_one(records(1, image=is_image(cls))[0]) == 0.0

    def test_same_seed_same_model(self, cls):
        a, b = make(cls), make(cls)
        for det in (a, b):
            det.learn_many(records(48, image=is_image(cls)))
        probe = records(5, seed=10, image=is_image(cls))
        np.testing.assert_array_equal(a.score_many(probe), b.score_many(probe))

    def test_global_torch_rng_is_left_alone(self, cls):
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        make(cls).learn_many(records(48, image=is_image(cls)))
        torch.testing.assert_close(torch.rand(3), expected)

    def test_bad_records_raise_naming_the_field(self, cls):
        det = make(cls)
        det.learn_many(records(32, image=is_image(cls)))
        good = records(1, image=is_image(cls))[0]
        for field, bad in bad_records(good, is_image(cls)).items():
            with pytest.raises(ValueError, match=repr(field)):
                det.score_one(bad)
            with pytest.raises(ValueError, match=repr(field)):
                det.check_one(bad)
            with pytest.raises(ValueError, match=repr(field)):
                det.learn_one(bad)

    def test_memory_usage_is_a_fraction_or_none(self, cls):
        det = make(cls)
        assert det.memory_usage() is None
        det.learn_many(records(32, image=is_image(cls)))
        usage = det.memory_usage()
        if cls.__name__ == "AE":  # no memory, no addressing weights to report
            assert usage is None
        else:
            assert 0.0 < usage <= 1.0

    def test_budget_scales_the_steady_state_updates(self, cls):
        data = records(64, image=is_image(cls))
        base = IMAGE_ONLY.get(cls.__name__, FAST)["schedule"]
        counts = {}
        for budget in (0, 1, 2):
            # young_records=1: steady state from the start (the young phase ignores the budget)
            schedule = dataclasses.replace(base, budget=budget, young_records=1)
            det = make(cls, schedule=schedule)
            det.learn_many(data)
            counts[budget] = det.n_updates_
        assert counts[0] == 0 and counts[1] > 0
        assert abs(counts[2] - 2 * counts[1]) <= 2  # whole steps: rounding at chunk ends
        assert "loss" in det.last_losses_


def test_image_detector_takes_nchw_arrays():
    torch.manual_seed(0)
    schedule = streammem.Schedule(batch_size=8, min_records=8)
    det = streammem.MemAE(
        network=streammem.Network(backbone="conv28"), schedule=schedule, num_slots=20, device="cpu"
    )
    images = np.random.default_rng(0).random((24, 1, 28, 28), dtype=np.float32)
    det.learn_many(images)
    assert det.n_updates_ > 0 and det.input_shape_ == (1, 28, 28)
    many = det.score_many(images[:3])
    one = [det.score_one(dict(enumerate(img.ravel().tolist()))) for img in images[:3]]
    np.testing.assert_allclose(many, one, rtol=1e-5)


def test_conv_backbone_rejects_wrong_width():
    det = streammem.MemAE(network=streammem.Network(backbone="conv32"), device="cpu")
    with pytest.raises(ValueError, match="input_shape"):
        det.learn_many(np.zeros((4, 784), dtype=np.float32))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a CPU-only machine")
def test_cuda_without_cuda_is_a_clear_error():
    det = streammem.MemAE(device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        det.learn_many(np.zeros((4, 3)))


@pytest.mark.parametrize(
    "cls", [streammem.AE, streammem.MemAE, streammem.Memorizer, streammem.RFTM]
)
@pytest.mark.parametrize("output_activation", ["sigmoid", "block"])
def test_mlp_activations_reach_the_model_and_its_numpy_copy(cls, output_activation):
    network = dataclasses.replace(NET, activation="tanh", output_activation=output_activation)
    det = make(cls, network=network)
    data = records(48)
    det.learn_many(pd.DataFrame(data))
    kinds = {type(m) for m in det.model_.modules()}
    assert torch.nn.Tanh in kinds and torch.nn.LeakyReLU not in kinds
    assert (torch.nn.Sigmoid in kinds) == (output_activation == "sigmoid")
    assert numpy_reconstructor(det.model_) is not None  # score_one stays off torch
    many = det.score_many(pd.DataFrame(data[:4]))
    one = [det.score_one(x) for x in data[:4]]
    np.testing.assert_allclose(many, one, rtol=1e-4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"activation": "tanh"}, "applies to the 'mlp' backbone only"),
        ({"output_activation": "block"}, "'block'"),
    ],
)
def test_conv_backbone_rejects_mlp_only_activations(overrides, message):
    with pytest.raises(ValueError, match=message):  # where the network is written
        streammem.Network(backbone="conv28", **overrides)


# ---------------------------------------------------------------------- every public object
def public_objects() -> dict[str, object]:
    """One of each public class, as a user makes it (defaults)."""
    alerts = streammem.AlertFilter(streammem.MemAE())
    return {
        **{cls.__name__: make(cls) for cls in DETECTORS},
        "AlertFilter": alerts,
        "WindowedFilter": streammem.TimeWindow(size=3) | alerts,
        "ConformalCalibrator": streammem.ConformalCalibrator(),
        "QuantileThreshold": streammem.QuantileThreshold(),
        "TailLikelihood": streammem.TailLikelihood(),
        "SeriesFeatures": streammem.SeriesFeatures(),
        "FeatureEncoder": streammem.FeatureEncoder(),
        "TimeWindow": streammem.TimeWindow(),
        "Schedule": streammem.Schedule(),
        "Network": streammem.Network(),
        "TopFields": streammem.TopFields(),
    }


def test_every_public_class_is_in_the_repr_check():
    classes = {
        name
        for name in streammem.__all__
        if inspect.isclass(getattr(streammem, name))
        and not inspect.isabstract(getattr(streammem, name))
    }
    abstract = {"Calibrator", "MemoryDetector", "StreamDetector"}  # bases, not made by users
    assert classes - abstract <= set(public_objects())


@pytest.mark.parametrize("name", list(public_objects()))
def test_every_public_object_prints_its_arguments_and_what_none_stands_for(name):
    """Calibrators printed as <... object at 0x...>; a None printed bare where the docs list
    a default; a nested detector printed as its class name alone."""
    obj = public_objects()[name]
    text = repr(obj)
    assert "object at 0x" not in text and text.startswith(type(obj).__name__)
    for parameter in inspect.signature(type(obj)).parameters:
        assert f"{parameter}=" in text, parameter
    assert not [line for line in text.splitlines() if line.endswith("=None")]


def test_a_nested_detector_prints_in_full_with_its_defaults():
    text = repr(streammem.AlertFilter(streammem.MemAE(num_slots=7)))
    assert "num_slots=7" in text and "calibrator=None  # ConformalCalibrator(alpha=0.01)" in text
    assert "window_size=None  # 3 / alpha = 300" in repr(streammem.ConformalCalibrator())


def test_alert_filters_predict_as_river_classifiers_do():
    """AlertFilter.predict_one raised a bare NotImplementedError."""
    data = records(400)
    for model in (
        streammem.AlertFilter(make(streammem.MemAE)),
        streammem.TimeWindow(size=3, features=["mean"])
        | streammem.AlertFilter(make(streammem.MemAE)),
    ):
        for x in data:
            model.learn_one(x)
        odd = {"a": 9.0, "b": -9.0, "c": 40.0, "proto": "tcp"}
        for x in (data[0], odd):
            proba = model.predict_proba_one(x)
            assert set(proba) == {False, True} and math.isclose(sum(proba.values()), 1.0)
            assert proba[False] == model.p_value_one(x)
            assert model.predict_one(x) == model.classify(model.score_one(x))
        assert model.predict_one(odd) is True
    alerts = streammem.AlertFilter(make(streammem.MemAE))
    alerts.learn_many(data)
    frame = pd.DataFrame(data[:5], index=list("vwxyz"))
    assert list(alerts.predict_many(frame).index) == list("vwxyz")
    np.testing.assert_allclose(alerts.predict_proba_many(frame)[False], alerts.p_values_many(frame))


@pytest.mark.parametrize("name", ["MemAE", "AlertFilter", "WindowedFilter", "FeatureEncoder"])
def test_save_and_load_take_paths_and_binary_file_objects(name, tmp_path):
    """save() given a file object failed with a pathlib traceback."""
    obj = public_objects()[name]
    batch = [{**x, "m": "k"} for x in records(60)]
    obj.learn_many(pd.DataFrame(batch)) if name != "FeatureEncoder" else obj.learn_one(batch[0])
    with (tmp_path / "obj.ckpt").open("wb") as handle:
        streammem.save(obj, handle)
    with (tmp_path / "obj.ckpt").open("rb") as handle:
        from_file = streammem.load(handle)
    streammem.save(obj, tmp_path / "by-path.ckpt")
    assert repr(streammem.load(str(tmp_path / "by-path.ckpt"))) == repr(from_file) == repr(obj)
    with pytest.raises(TypeError, match="a path or a binary file object"):
        streammem.save(obj, 42)
