"""Loaders for the bench's data sets in their upstream on-disk formats (torchvision style).

Every data set lists its files as ``resources = [(filename, md5), ...]`` under
``<root>/<folder>/``. A file is used only after its MD5 matches; a missing file raises
:class:`DataMissing` naming the file and where to put it. Nothing is downloaded unless the caller
asks for it (``download=True``, the ``--download`` flag of ``python -m bench.reproduce``).

The data root is, in order: the explicit argument, the ``STREAMMEM_DATA`` environment variable,
``../shared/datasets`` beside the repository when it exists, then ``~/.cache/streammem``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

__all__ = [
    "CIFAR10",
    "DATASETS",
    "KDDCUP99",
    "KMNIST",
    "MNIST",
    "ADBench",
    "DataIntegrityError",
    "DataMissing",
    "Dataset",
    "FashionMNIST",
    "ImageDataset",
    "Split",
    "data_root",
    "get_dataset",
    "md5sum",
    "read_idx",
]

_REPO_ROOT = Path(__file__).resolve().parents[1]


class DataMissing(FileNotFoundError):
    """A data file is absent; the message names it and the folder it belongs in."""


class DataIntegrityError(RuntimeError):
    """A data file is present but its MD5 does not match the expected one."""


@dataclass
class Split:
    """Features ``x`` (uint8 images (n, C, H, W) or float32 rows (n, F)) and labels ``y``."""

    x: np.ndarray
    y: np.ndarray


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data root: argument, ``$STREAMMEM_DATA``, ``../shared/datasets``, cache dir."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("STREAMMEM_DATA"):
        return Path(os.environ["STREAMMEM_DATA"]).expanduser()
    shared = _REPO_ROOT.parent / "shared" / "datasets"
    if shared.is_dir():
        return shared
    return Path("~/.cache/streammem").expanduser()


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file (the MNIST format): magic, big-endian dims, uint8 payload."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    magic = int.from_bytes(raw[:4], "big")
    if magic >> 8 != 0x08:
        raise DataIntegrityError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


class Dataset:
    """Base: a folder of ``resources`` under the data root, checked by MD5 before use.

    Parameters
    ----------
    root
        The data root (the folder holding ``mnist/``, ``cifar-10/``, ...); ``None`` resolves it
        with :func:`data_root`.
    download
        Fetch missing files from ``mirrors`` (then verify them). Off by default.
    """

    name: ClassVar[str]
    folder: ClassVar[str]
    resources: ClassVar[list[tuple[str, str]]]
    mirrors: ClassVar[list[str]] = []

    def __init__(self, root: str | os.PathLike[str] | None = None, download: bool = False) -> None:
        self.root = data_root(root)
        self.download = download
        self._verified: set[str] = set()

    @property
    def directory(self) -> Path:
        """``<root>/<folder>``, where the resources live."""
        return self.root / self.folder

    def _md5(self, filename: str) -> str:
        return dict(self.resources)[filename]

    def available(self, filename: str) -> bool:
        """Whether ``filename`` is on disk (its MD5 is checked only when it is read)."""
        return (self.directory / filename).is_file()

    def path(self, filename: str) -> Path:
        """The verified path of one resource, downloading it first when allowed."""
        target = self.directory / filename
        if not target.is_file():
            if not self.download:
                raise DataMissing(
                    f"{self.name}: missing {filename!r}; put the upstream file at {target} "
                    f"(MD5 {self._md5(filename)}), set --data-root / STREAMMEM_DATA to the folder "
                    f"that holds {self.folder}/, or pass --download"
                )
            self._fetch(filename, target)
        if filename not in self._verified:
            found = md5sum(target)
            if found != self._md5(filename):
                raise DataIntegrityError(
                    f"{target}: MD5 {found} does not match the expected {self._md5(filename)}"
                )
            self._verified.add(filename)
        return target

    def _fetch(self, filename: str, target: Path) -> None:
        if not self.mirrors:
            raise DataMissing(
                f"{self.name}: no mirror is known for {filename!r}; put it at {target}"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        errors = []
        for mirror in self.mirrors:
            url = mirror.rstrip("/") + "/" + filename
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    partial = target.with_suffix(target.suffix + ".part")
                    with open(partial, "wb") as out:
                        shutil.copyfileobj(response, out)
                partial.replace(target)
                return
            except OSError as error:
                errors.append(f"{url}: {error}")
        raise DataMissing(f"{self.name}: could not download {filename!r}: " + "; ".join(errors))

    def load(self, train: bool) -> Split:  # pragma: no cover - abstract
        """The training (``train=True``) or test split."""
        raise NotImplementedError


class ImageDataset(Dataset):
    """Ten-class greyscale 28x28 images in IDX format (MNIST and its drop-in replacements)."""

    num_classes: ClassVar[int] = 10
    image_shape: ClassVar[tuple[int, int, int]] = (1, 28, 28)

    def load(self, train: bool) -> Split:
        prefix = "train" if train else "t10k"
        images = read_idx(self.path(f"{prefix}-images-idx3-ubyte.gz"))
        labels = read_idx(self.path(f"{prefix}-labels-idx1-ubyte.gz"))
        return Split(images[:, None, :, :], labels.astype(np.int64))


class MNIST(ImageDataset):
    """LeCun et al.'s handwritten digits (upstream MD5s as in torchvision)."""

    name = "mnist"
    folder = "mnist"
    mirrors: ClassVar[list[str]] = [
        "https://ossci-datasets.s3.amazonaws.com/mnist",
        "http://yann.lecun.com/exdb/mnist",
    ]
    resources: ClassVar[list[tuple[str, str]]] = [
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ]


class FashionMNIST(ImageDataset):
    """Zalando's Fashion-MNIST."""

    name = "fashion"
    folder = "fashion-mnist"
    mirrors: ClassVar[list[str]] = [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
    ]
    resources: ClassVar[list[tuple[str, str]]] = [
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ]


class KMNIST(ImageDataset):
    """Kuzushiji-MNIST (Clanuwat et al.)."""

    name = "kmnist"
    folder = "kmnist"
    mirrors: ClassVar[list[str]] = ["http://codh.rois.ac.jp/kmnist/dataset/kmnist"]
    resources: ClassVar[list[tuple[str, str]]] = [
        ("train-images-idx3-ubyte.gz", "bdb82020997e1d708af4cf47b453dcf7"),
        ("train-labels-idx1-ubyte.gz", "e144d726b3acfaa3e44228e80efcd344"),
        ("t10k-images-idx3-ubyte.gz", "5c965bf0a639b31b8f53240b1b52f4d7"),
        ("t10k-labels-idx1-ubyte.gz", "7320c461ea6c1c855c0b718fb2a4b134"),
    ]


class CIFAR10(Dataset):
    """CIFAR-10 from the upstream ``cifar-10-python.tar.gz`` or the lossless ``cifar10.npz``.

    The tarball is preferred when present; the npz repack (keys ``x_train`` (n,32,32,3) uint8,
    ``y_train``, ``x_test``, ``y_test``; upstream pixel order) is accepted as an alternative, each
    verified by its own MD5. The mirror serves only the tarball.
    """

    name = "cifar10"
    folder = "cifar-10"
    num_classes: ClassVar[int] = 10
    image_shape: ClassVar[tuple[int, int, int]] = (3, 32, 32)
    tarball = "cifar-10-python.tar.gz"
    repack = "cifar10.npz"
    mirrors: ClassVar[list[str]] = ["https://www.cs.toronto.edu/~kriz"]
    resources: ClassVar[list[tuple[str, str]]] = [
        (tarball, "c58f30108f718f92721af3b95e74349a"),
        (repack, "a67a3c8d70d1a215b5d0bdb728ac672c"),
    ]

    def path(self, filename: str) -> Path:
        if filename == self.repack and not self.available(self.repack):
            raise DataMissing(
                f"{self.name}: neither {self.tarball!r} nor {self.repack!r} is in "
                f"{self.directory}; put the upstream tarball there (MD5 "
                f"{self._md5(self.tarball)}) or pass --download"
            )
        return super().path(filename)

    def load(self, train: bool) -> Split:
        if self.available(self.tarball) or (self.download and not self.available(self.repack)):
            return self._from_tarball(self.path(self.tarball), train)
        with np.load(self.path(self.repack)) as data:
            x = data["x_train" if train else "x_test"]
            y = data["y_train" if train else "y_test"]
        return Split(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y.astype(np.int64))

    @staticmethod
    def _from_tarball(path: Path, train: bool) -> Split:
        names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        images, labels = [], []
        with tarfile.open(path, "r:gz") as archive:
            for name in names:
                member = archive.extractfile(f"cifar-10-batches-py/{name}")
                if member is None:
                    raise DataIntegrityError(f"{path}: no member cifar-10-batches-py/{name}")
                batch = pickle.load(io.BytesIO(member.read()), encoding="bytes")
                images.append(np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32))
                labels.append(np.asarray(batch[b"labels"], np.int64))
        return Split(np.concatenate(images), np.concatenate(labels))


class KDDCUP99(Dataset):
    """The KDD Cup 1999 10% set with its ``kddcup.names`` schema.

    :meth:`load` returns every row (the DAGMM protocol splits them itself): the ``symbolic``
    fields with more than two values (protocol_type, service, flag) one-hot encoded over the
    values present (sorted), the rest as floats; ``y = 1`` for ``normal.`` traffic, which the
    DAGMM/MemAE protocol treats as the anomaly class (about 20%).
    """

    name = "kddcup"
    folder = "kddcup99"
    data_file = "kddcup.data_10_percent.gz"
    names_file = "kddcup.names"
    mirrors: ClassVar[list[str]] = ["http://kdd.ics.uci.edu/databases/kddcup99"]
    resources: ClassVar[list[tuple[str, str]]] = [
        (data_file, "c421989ff187d340c1265ac3080a3229"),
        (names_file, "cf9e1f3ea81c847ebfb49d03875acd2d"),
    ]
    categorical: ClassVar[tuple[str, ...]] = ("protocol_type", "service", "flag")

    def schema(self) -> list[str]:
        """Feature names in file order, read from ``kddcup.names``."""
        lines = self.path(self.names_file).read_text().splitlines()[1:]
        return [line.split(":")[0].strip() for line in lines if ":" in line]

    def records(self):
        """Every row as read from the file: 41 named fields (3 of them strings) and ``label``."""
        import pandas as pd

        columns = [*self.schema(), "label"]
        return pd.read_csv(self.path(self.data_file), header=None, names=columns)

    def load(self, train: bool = True) -> Split:
        import pandas as pd

        frame = self.records()
        y = (frame.pop("label") == "normal.").to_numpy(np.int64)
        encoded = pd.get_dummies(frame, columns=list(self.categorical), dtype=np.float32)
        return Split(encoded.to_numpy(np.float32), y)


class ADBench(Dataset):
    """The 35 "Classical" tabular sets of ADBench (Han et al., 2022) that ``../shared`` holds.

    Each ``<n>_<name>.npz`` holds ``X`` (n, d) and ``y`` (0 normal, 1 anomaly), read with
    ``allow_pickle=False``. :meth:`load_set` takes the name without its number (``"wine"``).
    """

    name = "adbench"
    folder = "adbench"
    mirrors: ClassVar[list[str]] = [
        "https://raw.githubusercontent.com/Minqi824/ADBench/main/adbench/datasets/Classical",
    ]
    resources: ClassVar[list[tuple[str, str]]] = [
        ("1_ALOI.npz", "c96b1210dc07e39e1b89a34ed0a59dff"),
        ("2_annthyroid.npz", "74ef1a81e5ea99f8f4301955ac098dcb"),
        ("4_breastw.npz", "96e58457dfc23008bed3c92aa588508f"),
        ("5_campaign.npz", "94e199d29329c04e1bab5c1d801e74e5"),
        ("7_Cardiotocography.npz", "4c2320f92ae5cddb53fc257d827f488c"),
        ("8_celeba.npz", "9a8d16006073a83c9036e56cd12418b1"),
        ("11_donors.npz", "b080142231908238da79d1c71cb95216"),
        ("12_fault.npz", "c86d624d8e1d20ed5a1de05fb5d20731"),
        ("14_glass.npz", "5ba1269dcdf614f36324214a3bc37d22"),
        ("15_Hepatitis.npz", "781c11ab8e9cbdd4da1c6ce4f21a21d3"),
        ("16_http.npz", "76dc1779321ca38667d220340d0b5292"),
        ("17_InternetAds.npz", "cd375473c9ad623861d0b1220c0477ca"),
        ("19_landsat.npz", "aab3e2c3ffcbdd4803a5e2cf8c9d886d"),
        ("20_letter.npz", "318aba5ebfad6434caad90f32e95c90e"),
        ("21_Lymphography.npz", "841d224e60c16c3a66b9de61fa1fd3d2"),
        ("22_magic.gamma.npz", "09c97bfd1ec25f490511e1107592db14"),
        ("24_mnist.npz", "860892dc3da88d8e057d0968db2c86c3"),
        ("25_musk.npz", "758440ea2aa4cdc8050cfcfd28e08679"),
        ("26_optdigits.npz", "1736a110a5b69527d07d65eaac6f28cb"),
        ("27_PageBlocks.npz", "8b3450949bffc8ea4d250ecf0d0d7dee"),
        ("28_pendigits.npz", "fbb543e7858febad363f41067c2e68d2"),
        ("33_skin.npz", "d93a51d89f19211aa2e08a32946f9077"),
        ("34_smtp.npz", "c2413c8c03f4805f9c179686d37a175e"),
        ("35_SpamBase.npz", "c6616f4e109af4e197170ec0ccc9a87e"),
        ("37_Stamps.npz", "3cb876b34ad5b70e59a4f98e8b463f28"),
        ("38_thyroid.npz", "92ecac40ecc0e8a721a7f22aea27968a"),
        ("39_vertebral.npz", "8ae9ac06c4acb82e1dc65b873e85ebea"),
        ("40_vowels.npz", "340f95495f1dbb028ff01178074718de"),
        ("41_Waveform.npz", "d161d021b16af3e87ce8c48e6bf9ab70"),
        ("42_WBC.npz", "ad26f94049535e66dda1272999e44b95"),
        ("43_WDBC.npz", "00be8f7a21c461d68152a9db0b16875c"),
        ("44_Wilt.npz", "87b6945a02fd23a290365606105333df"),
        ("45_wine.npz", "4bbdc5cb37197239b385fbfc2c50b03b"),
        ("46_WPBC.npz", "f258c71a375ffaf9bf8cbec45b0d0690"),
        ("47_yeast.npz", "0949fba2331639eb47b6889dcd6ff764"),
    ]

    @classmethod
    def set_names(cls) -> list[str]:
        """Set names in ADBench's order (``"ALOI"``, ``"annthyroid"``, ...)."""
        return [file.split("_", 1)[1].removesuffix(".npz") for file, _ in cls.resources]

    def load_set(self, set_name: str) -> Split:
        """Features (float64) and labels of one set."""
        files = {file.split("_", 1)[1].removesuffix(".npz"): file for file, _ in self.resources}
        if set_name not in files:
            raise ValueError(f"unknown ADBench set {set_name!r}; choose from {list(files)}")
        with np.load(self.path(files[set_name]), allow_pickle=False) as data:
            return Split(data["X"].astype(np.float64), data["y"].astype(np.int64))

    def load(self, train: bool = True) -> Split:
        raise TypeError("ADBench holds many sets: use load_set(name)")


DATASETS: dict[str, type[Dataset]] = {
    cls.name: cls for cls in (MNIST, FashionMNIST, KMNIST, CIFAR10, KDDCUP99, ADBench)
}


def get_dataset(
    name: str, root: str | os.PathLike[str] | None = None, download: bool = False
) -> Dataset:
    """The data set called ``name`` (one of :data:`DATASETS`)."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose from {sorted(DATASETS)}")
    return DATASETS[name](root, download)
