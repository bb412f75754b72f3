"""Checkpoints: atomic, versioned, and never a way to run pickled code."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

import streammem
from streammem.persistence import CheckpointError, load_checkpoint, save_checkpoint


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_round_trip_and_version(tmp_path):
    path = tmp_path / "c.ckpt"
    save_checkpoint({"weights": torch.ones(3), "offsets": {"0": 12}}, path)
    loaded = load_checkpoint(path)
    assert loaded["format_version"] == 1 and loaded["offsets"] == {"0": 12}
    assert [p.name for p in tmp_path.iterdir()] == ["c.ckpt"], "temporary file left behind"


def test_pickled_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as handle:
        pickle.dump({"format_version": 1, "payload": _Exploit()}, handle)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_corrupt_files_raise_checkpoint_error(tmp_path, content):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError):
        streammem.load(path)


def test_truncated_detector_checkpoint(tmp_path):
    det = streammem.MemAE(device="cpu")
    det.learn_many([{"a": float(i), "b": float(-i)} for i in range(16)])
    path = tmp_path / "det.ckpt"
    det.save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        streammem.load(path)


def test_wrong_version_and_kind_are_explained(tmp_path):
    path = tmp_path / "old.ckpt"
    torch.save({"format_version": 99}, path)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path)
    save_checkpoint({"kind": "service"}, path)
    with pytest.raises(CheckpointError, match="not a saved object"):
        streammem.load(path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        streammem.load(tmp_path / "missing.ckpt")


def test_unknown_detector_class_is_refused():
    with pytest.raises(CheckpointError, match="unknown class"):
        streammem.from_state({"class": "Nope", "params": {}})
