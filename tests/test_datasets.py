"""Bench loaders on tiny synthetic files written in the upstream on-disk formats (no network)."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from bench import datasets as ds

KDD_NAMES = """back,normal,smurf.
duration: continuous.
protocol_type: symbolic.
service: symbolic.
flag: symbolic.
src_bytes: continuous.
"""


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file: zero, zero, dtype 0x08 (ubyte), ndim, big-endian dims, payload; gzipped."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def fake_mnist(root: Path, folder: str = "mnist", n_train: int = 40, n_test: int = 20) -> None:
    rng = np.random.default_rng(0)
    (root / folder).mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(
            root / folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28))
        )
        write_idx(root / folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)


def fake_kdd(root: Path, n: int = 60) -> None:
    (root / "kddcup99").mkdir(parents=True, exist_ok=True)
    (root / "kddcup99" / "kddcup.names").write_text(KDD_NAMES)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        label = "normal." if i % 5 == 0 else "smurf."
        proto = ("tcp", "udp", "icmp")[i % 3]
        lines.append(
            f"{i % 7},{proto},{'http' if i % 2 else 'ecr_i'},SF,{rng.integers(0, 999)},{label}"
        )
    with gzip.open(root / "kddcup99" / "kddcup.data_10_percent.gz", "wt") as handle:
        handle.write("\n".join(lines) + "\n")


def trust_files(monkeypatch: pytest.MonkeyPatch, cls: type[ds.Dataset], root: Path) -> None:
    """Point ``cls.resources`` at the MD5s of the synthetic files (present ones only)."""
    resources = []
    for name, md5 in cls.resources:
        path = root / cls.folder / name
        resources.append((name, ds.md5sum(path) if path.is_file() else md5))
    monkeypatch.setattr(cls, "resources", resources)


def test_mnist_reads_idx_files_after_md5_check(tmp_path, monkeypatch):
    fake_mnist(tmp_path)
    trust_files(monkeypatch, ds.MNIST, tmp_path)
    train = ds.MNIST(tmp_path).load(train=True)
    assert train.x.shape == (40, 1, 28, 28) and train.x.dtype == np.uint8
    assert train.y.tolist() == [i % 10 for i in range(40)]


def test_md5_mismatch_is_an_integrity_error(tmp_path):
    fake_mnist(tmp_path)
    with pytest.raises(ds.DataIntegrityError, match="does not match"):
        ds.MNIST(tmp_path).load(train=False)


def test_missing_file_names_the_file_and_where_to_put_it(tmp_path):
    with pytest.raises(ds.DataMissing) as error:
        ds.KMNIST(tmp_path).load(train=True)
    message = str(error.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "kmnist") in message
    assert "--download" in message


def test_missing_train_images_leave_the_test_split_usable(tmp_path, monkeypatch):
    fake_mnist(tmp_path, folder="kmnist")
    (tmp_path / "kmnist" / "train-images-idx3-ubyte.gz").unlink()
    trust_files(monkeypatch, ds.KMNIST, tmp_path)
    assert len(ds.KMNIST(tmp_path).load(train=False).y) == 20
    with pytest.raises(ds.DataMissing):
        ds.KMNIST(tmp_path).load(train=True)


def test_download_fetches_from_a_mirror_then_verifies(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    fake_mnist(mirror)
    trust_files(monkeypatch, ds.MNIST, mirror)
    monkeypatch.setattr(ds.MNIST, "mirrors", [(mirror / "mnist").as_uri()])
    root = tmp_path / "root"
    with pytest.raises(ds.DataMissing):
        ds.MNIST(root).load(train=False)
    assert len(ds.MNIST(root, download=True).load(train=False).y) == 20
    assert (root / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()


def _cifar_batch(n: int, seed: int) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(range(n))}


def test_cifar_tarball_and_npz_give_the_same_arrays(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10"
    folder.mkdir()
    batches = {f"data_batch_{i}": _cifar_batch(3, i) for i in range(1, 6)}
    batches["test_batch"] = _cifar_batch(4, 9)
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as archive:
        for name, batch in batches.items():
            payload = pickle.dumps(batch)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    test = batches["test_batch"]
    hwc = np.asarray(test[b"data"]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    np.savez(
        folder / "cifar10.npz", x_train=hwc, y_train=np.arange(4), x_test=hwc, y_test=np.arange(4)
    )
    trust_files(monkeypatch, ds.CIFAR10, tmp_path)
    from_tar = ds.CIFAR10(tmp_path).load(train=False)
    assert ds.CIFAR10(tmp_path).load(train=True).x.shape == (15, 3, 32, 32)
    (folder / "cifar-10-python.tar.gz").unlink()
    from_npz = ds.CIFAR10(tmp_path).load(train=False)
    np.testing.assert_array_equal(from_tar.x, from_npz.x)
    np.testing.assert_array_equal(from_tar.y, from_npz.y)


def test_cifar_without_either_file_names_both(tmp_path):
    with pytest.raises(ds.DataMissing, match=r"cifar-10-python\.tar\.gz.*cifar10\.npz"):
        ds.CIFAR10(tmp_path).load(train=False)


def test_kdd_one_hots_symbolic_fields_and_flags_normal_traffic(tmp_path, monkeypatch):
    fake_kdd(tmp_path)
    trust_files(monkeypatch, ds.KDDCUP99, tmp_path)
    data = ds.KDDCUP99(tmp_path).load()
    # duration + src_bytes + 3 protocols + 2 services + 1 flag
    assert data.x.shape == (60, 8) and data.x.dtype == np.float32
    assert data.y.sum() == 12 and data.y[0] == 1 and data.y[1] == 0
    assert set(np.unique(data.x[:, 2:])) == {0.0, 1.0}


def test_data_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv("STREAMMEM_DATA", str(tmp_path))
    assert ds.data_root("/explicit") == Path("/explicit")
    assert ds.data_root() == tmp_path
