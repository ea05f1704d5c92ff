"""Data sets: loading, validation, splitting and (optional) downloading.

Every loader returns a :class:`Dataset` with batch-first ``(N, d)`` float inputs scaled to
``[0, 1]`` and ``(N,)`` int64 labels.  Files are read from ``<data_dir>/<name>/``; nothing is
fetched from the network unless ``download=True`` is asked for explicitly.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import math
import numbers
import os
import pickle
import struct
import tarfile
import tempfile
import urllib.request
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from http.client import HTTPException
from pathlib import Path
from typing import IO

import numpy as np
import torch

try:  # numpy >= 2 moved the array internals to numpy._core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

__all__ = [
    "DATASETS", "MAX_CLASSES", "DataError", "Dataset", "default_data_dir", "download_dataset",
    "file_sha256", "is_array_file", "load_dataset", "load_npz", "make_teacher_data", "one_hot",
    "read_idx", "resolve_data_dir", "validation_count",
]

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar10", "synthetic")


class DataError(ValueError):
    """A data set is missing, malformed or inconsistent."""


@dataclass(repr=False)
class Dataset:
    """A train/test split of a supervised data set, batch first.

    Attributes:
        name: Data set name.
        X_train: ``(N, d)`` floating inputs.
        y_train: ``(N,)`` int64 class labels, or ``(N, k)`` float targets for regression.
        X_test: ``(M, d)`` floating inputs.
        y_test: Labels or targets of the test inputs.
        n_classes: Number of classes; 0 for a regression data set.
        image_shape: ``(C, H, W)`` of one flattened input, or None when not an image.
        X_val, y_val: A validation set held out of the training set (``load_dataset``'s
            ``val_size``), or None.
        input_mean, input_std: ``(d,)`` float64 statistics the inputs were standardised with
            (``load_dataset``'s ``standardize``: x -> (x - mean) / std), or None.
    """

    name: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    image_shape: tuple[int, ...] | None = None
    X_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    input_mean: torch.Tensor | None = None
    input_std: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if (self.X_val is None) != (self.y_val is None):
            raise DataError(f"{self.name}: give both X_val and y_val, or neither")
        for split, X, y in self._splits():
            if X.ndim != 2 or y.shape[:1] != X.shape[:1]:
                raise DataError(f"{self.name}: bad {split} shapes X{tuple(X.shape)}, "
                                f"y{tuple(y.shape)}: expected (N, d) inputs and N labels")
            if X.shape[1] != self.X_train.shape[1]:
                raise DataError(f"{self.name}: train and {split} have different feature counts")

    def _splits(self) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        out = [("train", self.X_train, self.y_train), ("test", self.X_test, self.y_test)]
        if self.X_val is not None:
            out.append(("validation", self.X_val, self.y_val))
        return out

    @property
    def n_features(self) -> int:
        """Number of input features ``d``."""
        return int(self.X_train.shape[1])

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> Dataset:
        """Return a copy on ``device`` with inputs (and regression targets) cast to ``dtype``.

        Class labels stay int64.
        """
        ydt = dtype if self.n_classes == 0 else torch.int64
        parts = ("train", "test") if self.X_val is None else ("train", "test", "val")
        x = {f"X_{k}": getattr(self, f"X_{k}").to(device=device, dtype=dtype) for k in parts}
        y = {f"y_{k}": getattr(self, f"y_{k}").to(device=device, dtype=ydt) for k in parts}
        return replace(self, **x, **y)

    def __repr__(self) -> str:
        val = "" if self.X_val is None else f", n_val={len(self.X_val)}"
        return (f"Dataset({self.name!r}, n_train={len(self.X_train)}{val}, "
                f"n_test={len(self.X_test)}, n_features={self.n_features}, "
                f"n_classes={self.n_classes}, image_shape={self.image_shape}, "
                f"dtype={self.X_train.dtype})")


def default_data_dir() -> Path:
    """``$LIFTNET_DATA`` if set, else ``$XDG_CACHE_HOME/liftnet`` (default ``~/.cache/liftnet``)."""
    if env := os.environ.get("LIFTNET_DATA"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "liftnet"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """Return ``data_dir`` as a Path, or :func:`default_data_dir` when it is None."""
    return default_data_dir() if data_dir is None else Path(data_dir).expanduser()


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw, or gzip-compressed as detected from its magic bytes).

    Raises:
        DataError: If the file cannot be read, is corrupt, truncated or has trailing data.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read file: {exc}") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    if len(raw) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    if raw[:2] != b"\x00\x00":
        raise DataError(f"{path}: bad IDX magic number 0x{raw[:4].hex()}: "
                        "the first two bytes must be zero")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{code:02x}")
    if not 1 <= ndim <= 4:
        raise DataError(f"{path}: unsupported IDX dimension count {ndim} (expected 1 to 4)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected, got = math.prod(shape) * dtype.itemsize, len(raw) - header
    if got < expected:
        raise DataError(f"{path}: truncated IDX payload: expected {expected} bytes, got {got}")
    if got > expected:
        raise DataError(f"{path}: trailing data after IDX payload: expected {expected} bytes, "
                        f"got {got}")
    arr = np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=header)
    return arr.reshape(shape).astype(dtype.newbyteorder("="))


_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_CIFAR_TARBALL = "cifar-10-python.tar.gz"
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_NEEDED = (*_CIFAR_TRAIN, "test_batch")  # what load_dataset reads
_CIFAR_EXTRACT = (*_CIFAR_NEEDED, "batches.meta", "readme.html")
_CIFAR_ROWS = 10000  # images per CIFAR-10 batch file

MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
}

# sha256 of the files as served by the original sites (recompressed copies differ), in the
# order of _IDX_FILES for MNIST and Fashion-MNIST.
SHA256: dict[str, dict[str, str]] = {
    "mnist": dict(zip(_IDX_FILES.values(), (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"), strict=True)),
    "fashion-mnist": dict(zip(_IDX_FILES.values(), (
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"), strict=True)),
    "cifar10": {_CIFAR_TARBALL: "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"},
}


def _fetch(url: str, target: Path, sha256: str, timeout: float) -> None:
    """Download ``url`` to ``target`` atomically, verifying its sha256 first."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256.lower():
            raise DataError(f"{url}: sha256 mismatch: expected {sha256}, "
                            f"got {digest.hexdigest()}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _extract_cifar(tarball: Path, dest: Path) -> None:
    """Extract only the known CIFAR-10 batch files (regular files, fixed names) from the tar."""
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {f"{_CIFAR_DIR}/{name}": name for name in _CIFAR_EXTRACT}
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                name = wanted.get(member.name.removeprefix("./"))
                if name is None or not member.isfile():
                    continue
                src = tar.extractfile(member)
                fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".part")
                try:
                    with os.fdopen(fd, "wb") as out:
                        out.write(src.read())
                    os.chmod(tmp, 0o644)
                    os.replace(tmp, dest / name)
                finally:  # a damaged archive leaves no partial file behind
                    if os.path.exists(tmp):
                        os.unlink(tmp)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{tarball}: cannot extract CIFAR-10 archive ({exc}); delete it to "
                        "download it again") from exc
    missing = [f for f in _CIFAR_NEEDED if not (dest / f).is_file()]
    if missing:
        raise DataError(f"{tarball}: the CIFAR-10 archive lacks {', '.join(missing)}")


def download_dataset(name: str, data_dir: str | os.PathLike[str] | None, *,
                     mirrors: Sequence[str] | None = None, timeout: float = 60) -> Path:
    """Download ``name`` into ``<data_dir>/<name>/`` and return that folder.

    Files already present are left alone.  Each file is written to a temporary file in the
    same folder and moved into place only once its sha256 matched :data:`SHA256`.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"`` or ``"cifar10"``.
        data_dir: Root data folder (None: :func:`default_data_dir`).
        mirrors: Base URLs to try in order instead of :data:`MIRRORS`.
        timeout: Socket timeout in seconds.

    Raises:
        DataError: Unknown name, or no mirror delivered a file with the right checksum.
    """
    if isinstance(mirrors, (str, bytes)):
        raise DataError(f"mirrors must be a sequence of base URLs, not one string: "
                        f"pass [{mirrors!r}]")
    if mirrors is not None:  # an iterator would be used up by the first file
        mirrors = list(mirrors)
        if not mirrors:
            raise DataError("mirrors is empty: give at least one base URL (or None for the "
                            "known mirrors)")
    name = _normalize_name(name)
    if name not in SHA256:
        raise DataError(f"cannot download {name!r}: downloadable data sets are {tuple(SHA256)}")
    folder = resolve_data_dir(data_dir) / name
    if name == "cifar10" and all((folder / _CIFAR_DIR / f).is_file() for f in _CIFAR_NEEDED):
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the data folder {folder}: {exc}") from None
    for filename, sha in SHA256[name].items():
        target = folder / filename
        if target.is_file():
            continue
        errors = []
        for base in mirrors if mirrors is not None else MIRRORS[name]:
            url = base if base.endswith(filename) else base.rstrip("/") + "/" + filename
            try:
                _fetch(url, target, sha, timeout)
                break
            except (OSError, ValueError, HTTPException) as exc:
                errors.append(f"  {url}: {exc}")
        else:
            raise DataError(f"could not download {filename} for {name}:\n" + "\n".join(errors))
    if name == "cifar10":
        _extract_cifar(folder / _CIFAR_TARBALL, folder / _CIFAR_DIR)
    return folder


def _missing_error(name: str, folder: Path, files: Sequence[str]) -> DataError:
    return DataError(
        f"{name}: data not found in {folder}; expected the files {', '.join(files)}. "
        f"Get them with `--download` (load_dataset(..., download=True)), or point "
        f"`--data-dir` / $LIFTNET_DATA at a folder that contains {name}/ with these files.")


def _load_mnist_like(name: str, root: Path, download: bool) -> tuple[np.ndarray, ...]:
    folder = root / name
    paths = {}
    for key, fname in _IDX_FILES.items():  # also accept already decompressed files
        gz, plain = folder / fname, folder / fname.removesuffix(".gz")
        paths[key] = plain if plain.is_file() and not gz.is_file() else gz
    if not all(p.is_file() for p in paths.values()):
        if not download:
            raise _missing_error(name, folder, list(_IDX_FILES.values()))
        download_dataset(name, root)
        paths = {key: folder / fname for key, fname in _IDX_FILES.items()}
    out = []
    for split in ("train", "test"):
        img_path, lab_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        images, labels = read_idx(img_path), read_idx(lab_path)
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
            raise DataError(f"{img_path}: expected uint8 images of shape (N, 28, 28), got "
                            f"{images.dtype} {images.shape}")
        if len(images) == 0:
            raise DataError(f"{img_path}: the file holds no images")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{lab_path}: expected {len(images)} labels to match {img_path.name},"
                            f" got shape {labels.shape}")
        if labels.dtype.kind not in "iu":
            raise DataError(f"{lab_path}: labels must be integers, got IDX type {labels.dtype}")
        if labels.min() < 0 or labels.max() > 9:
            raise DataError(f"{lab_path}: labels must lie in [0, 9], found "
                            f"[{labels.min()}, {labels.max()}]")
        out += [images.reshape(len(images), -1), labels]
    return tuple(out)


_SAFE_GLOBALS = {  # all that the CIFAR-10 pickles need to rebuild their numpy arrays
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the globals needed to rebuild numpy arrays."""

    def __init__(self, file: IO[bytes], path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> object:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(f"{self.path}: refusing to unpickle forbidden global "
                            f"{module}.{name}") from None


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: cannot read CIFAR batch ({type(exc).__name__}: {exc})") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path}: expected a dict with b'data' and b'labels'")
    data = batch[b"data"]
    try:
        labels = np.asarray(batch[b"labels"])
    except ValueError as exc:  # ragged nested lists
        raise DataError(f"{path}: b'labels' is not a flat list of integers ({exc})") from None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8
            and data.shape == (_CIFAR_ROWS, 3072)):
        raise DataError(f"{path}: expected uint8 data of shape ({_CIFAR_ROWS}, 3072), got "
                        f"{getattr(data, 'dtype', type(data))} {getattr(data, 'shape', '')}")
    if labels.shape != (_CIFAR_ROWS,) or labels.dtype.kind not in "iu":
        raise DataError(f"{path}: expected {_CIFAR_ROWS} integer labels, got {labels.dtype} "
                        f"of shape {labels.shape}")
    if labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: labels must lie in [0, 9]")
    return data, labels.astype(np.int64)


def _load_cifar10(root: Path, download: bool) -> tuple[np.ndarray, ...]:
    folder = root / "cifar10" / _CIFAR_DIR
    if not all((folder / f).is_file() for f in _CIFAR_NEEDED):
        if not download:
            raise _missing_error("cifar10", folder, _CIFAR_NEEDED)
        download_dataset("cifar10", root)
    train = [_read_cifar_batch(folder / f) for f in _CIFAR_TRAIN]
    X_train, y_train = (np.concatenate(parts) for parts in zip(*train, strict=True))
    return (X_train, y_train, *_read_cifar_batch(folder / "test_batch"))


def _load_digits() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    perm = np.random.default_rng(0).permutation(len(bunch.target))
    X, y = bunch.data[perm], bunch.target[perm]
    return X[:1437], y[:1437], X[1437:], y[1437:]


def make_teacher_data(n_train: int = 2000, n_test: int = 500,
                      sizes: Sequence[int] = (20, 50, 4), task: str = "classification",
                      noise: float = 0.0, seed: int = 0,
                      dtype: torch.dtype = torch.float32) -> Dataset:
    """Data labelled by a random ReLU teacher network.

    Inputs are ``x ~ N(0, I)`` of dimension ``sizes[0]``; the teacher has weights
    ``N(0, 1/fan_in)``, no biases, ReLU between layers and a linear output of size
    ``sizes[-1]``.  Regression targets are the output plus ``noise`` times standard Gaussian
    noise; classification labels are the argmax of that, after subtracting the teacher's mean
    output (estimated on 10,000 reference inputs) so that the classes are roughly balanced.

    Returns:
        A Dataset; for regression ``y`` is float ``(N, sizes[-1])`` and ``n_classes`` is 0.
    """
    if task not in ("classification", "regression"):
        raise DataError(f"task must be 'classification' or 'regression', got {task!r}")
    if len(sizes) < 2 or min(sizes) < 1 or (task == "classification" and sizes[-1] < 2):
        raise DataError(f"bad teacher sizes {tuple(sizes)}")
    if n_train < 1 or n_test < 0 or not 0 <= noise < math.inf:
        raise DataError(f"need n_train >= 1, n_test >= 0 and a finite noise >= 0, got "
                        f"n_train={n_train}, n_test={n_test}, noise={noise}")
    gen = torch.Generator().manual_seed(seed)
    weights = [torch.randn(fan_out, fan_in, generator=gen, dtype=torch.float64) / fan_in**0.5
               for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True)]
    def teacher(x: torch.Tensor) -> torch.Tensor:
        for W in weights[:-1]:
            x = (x @ W.T).relu()
        return x @ weights[-1].T

    # the mean output over a fixed reference sample is removed before the argmax: without it
    # the (nonnegative) hidden units make one class dominate
    offset = teacher(torch.randn(10000, sizes[0], generator=gen, dtype=torch.float64)).mean(0)
    X = torch.randn(n_train + n_test, sizes[0], generator=gen, dtype=torch.float64)
    out = teacher(X) + noise * torch.randn(n_train + n_test, sizes[-1], generator=gen,
                                           dtype=torch.float64)
    y = (out - offset).argmax(dim=1) if task == "classification" else out.to(dtype)
    return Dataset(name="synthetic", X_train=X[:n_train].to(dtype), y_train=y[:n_train],
                   X_test=X[n_train:].to(dtype), y_test=y[n_train:],
                   n_classes=sizes[-1] if task == "classification" else 0)


def check_seed(seed: object, error: type[ValueError] = ValueError) -> int:
    """``seed`` as a plain int: an integer (NumPy's too, not a bool) in [0, 2**63), the
    range of every seeded generator here; otherwise ``error`` naming the value."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not (
            0 <= seed < 2**63):
        raise error(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def _normalize_name(name: str | os.PathLike[str]) -> str:
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise DataError(f"a data set is named by a string or a path, got {name!r}")
    return name.strip().lower().replace("_", "-")


def is_array_file(name: str | os.PathLike[str]) -> bool:
    """True for a data set given as a ``.npz`` file of the user's own arrays."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    return isinstance(name, str) and name.strip().lower().endswith(".npz")


_NPZ_KEYS = ("X_train", "y_train", "X_test", "y_test")
#: the most classes a data file's labels may name (labels 0..k-1; one output unit each)
MAX_CLASSES = 100_000


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes (hex), read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of a data file, or a DataError that says what is wrong with it."""
    import zipfile

    if not path.is_file():
        raise DataError(f"no data file at {path}")
    if not zipfile.is_zipfile(path):  # e.g. a .npy or a text file given another name
        raise DataError(f"{path} is not a readable .npz data file (numpy.savez with "
                        f"{', '.join(_NPZ_KEYS)}): it is not a zip archive")
    try:
        with np.load(path, allow_pickle=False) as npz:
            found = list(npz.files)
            missing = [k for k in _NPZ_KEYS if k not in found]
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(missing)}; a data file "
                                f"holds {', '.join(_NPZ_KEYS)} (found: "
                                f"{', '.join(found) or 'none'})")
            arrays = {k: npz[k] for k in _NPZ_KEYS}
            extra = [k for k in found if k not in _NPZ_KEYS]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, TypeError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{path} is not a readable .npz data file (numpy.savez with "
                        f"{', '.join(_NPZ_KEYS)}; no pickled objects): {exc}") from None
    odd = [k for k, v in arrays.items() if not isinstance(v, np.ndarray)]
    if odd:  # zip members that are not .npy arrays come back as bytes
        raise DataError(f"{path}: {', '.join(odd)} not stored as numpy arrays (write the file "
                        "with numpy.savez)")
    if extra:  # X_val, y_val, a name with a typo: say that they are not read
        warnings.warn(f"{path}: {', '.join(extra)} not read (a data file's arrays are "
                      f"{', '.join(_NPZ_KEYS)}; --val-size / val_size holds a validation set "
                      "out of the training split)", UserWarning, stacklevel=4)
    return arrays


def _check_range(path: Path, key: str, a: np.ndarray, dtype: torch.dtype) -> None:
    """A DataError when ``a`` holds values that ``dtype`` cannot represent (they would
    become inf)."""
    if a.size and a.dtype.kind in "fiu":
        top = float(np.abs(a).max())
        if top > torch.finfo(dtype).max:
            raise DataError(f"{path}: {key} holds values up to {top:.3g}, beyond the range of "
                            f"{dtype} (at most {torch.finfo(dtype).max:.3g}); rescale them or "
                            "load in a wider dtype")


def _npz_inputs(path: Path, split: str, a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """(N, d) inputs of one split: flattened, uint8 pixels scaled to [0, 1], in ``dtype``
    (one conversion, no float64 detour)."""
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise DataError(f"{path}: X_{split} contains NaN or infinite values")
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    _check_range(path, f"X_{split}", a, dtype)
    out = torch.from_numpy(np.ascontiguousarray(a.reshape(len(a), -1), dtype=np_dtype))
    if a.dtype == np.uint8:
        out /= 255.0  # as the built-in image sets: the same floats for the same pixels
    return out.to(dtype)


def _npz_labels(path: Path, split: str, labels: np.ndarray) -> torch.Tensor:
    """Class labels of one split as int64, (N,) (an (N, 1) column is taken as (N,))."""
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"{path}: class labels y_{split} must be 1-D (one integer per "
                        f"sample), got shape {labels.shape}")
    if len(labels) and labels.min() < 0:
        raise DataError(f"{path}: class labels must be 0, 1, ..., k-1; y_{split} holds "
                        f"{int(labels.min())}")
    if len(labels) and int(labels.max()) >= MAX_CLASSES:
        raise DataError(f"{path}: class labels must be 0, 1, ..., k-1 with k <= {MAX_CLASSES} "
                        f"(one output unit per class); y_{split} holds {int(labels.max())}: "
                        "number the classes from 0")
    return torch.from_numpy(labels.astype(np.int64))


def load_npz(path: str | os.PathLike[str], dtype: torch.dtype = torch.float32) -> Dataset:
    """A data set from the user's own arrays: a ``.npz`` file (``numpy.savez``) holding
    ``X_train``, ``y_train``, ``X_test``, ``y_test``.

    Inputs are ``(N, d)`` features, ``(N, H, W)`` grey images or ``(N, C, H, W)`` images
    (flattened, their shape kept for convolutional networks); ``uint8`` inputs are pixels and
    are scaled to ``[0, 1]`` like the built-in image sets, other numbers are taken as they
    are.  Integer (or boolean) targets are class labels 0..k-1 (k = the largest label + 1,
    at most :data:`MAX_CLASSES`; ``(N,)`` or ``(N, 1)``); float targets, ``(N,)`` or
    ``(N, k)``, make a regression data set.  No pickled objects are read.

    Raises:
        DataError: A missing or unreadable file, a missing array, mismatched lengths or
            shapes, non-numeric arrays, NaN/inf, negative or too large labels or a single
            class.
    """
    path = Path(path).expanduser()
    arrays = _read_npz(path)
    shape = None
    for split in ("train", "test"):
        X, y = arrays[f"X_{split}"], arrays[f"y_{split}"]
        if X.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
            raise DataError(f"{path}: X_{split} and y_{split} must be numeric arrays, got "
                            f"{X.dtype} and {y.dtype}")
        if X.ndim not in (2, 3, 4) or X.size == 0:
            raise DataError(f"{path}: X_{split} must be (N, d) features or (N, H, W) / "
                            f"(N, C, H, W) images with N, d >= 1, got shape {X.shape}")
        if y.ndim not in (1, 2) or len(y) != len(X) or y.ndim == 2 and y.shape[1] == 0:
            raise DataError(f"{path}: y_{split} must hold one label or target row per sample "
                            f"of X_{split} ({len(X)}), got shape {y.shape}")
        if X.ndim > 2:
            here = (1, *X.shape[1:]) if X.ndim == 3 else tuple(X.shape[1:])
            if shape is not None and here != shape:
                raise DataError(f"{path}: train images are {shape}, test images {here}")
            shape = here
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise DataError(f"{path}: y_{split} contains NaN or infinite values")
    if (arrays["X_train"].ndim > 2) != (arrays["X_test"].ndim > 2):
        raise DataError(f"{path}: X_train and X_test must both be images or both features")
    kinds = {arrays["y_train"].dtype.kind == "f", arrays["y_test"].dtype.kind == "f"}
    if len(kinds) > 1:
        raise DataError(f"{path}: y_train and y_test must both be class labels (integers) or "
                        "both regression targets (floats)")
    if kinds == {True}:  # regression
        for split in ("train", "test"):
            _check_range(path, f"y_{split}", arrays[f"y_{split}"], dtype)
        y = {k: torch.from_numpy(arrays[f"y_{k}"].reshape(len(arrays[f"y_{k}"]), -1)
                                 .astype(np.float64)).to(dtype) for k in ("train", "test")}
        if y["train"].shape[1] != y["test"].shape[1]:
            raise DataError(f"{path}: y_train has {y['train'].shape[1]} target columns, "
                            f"y_test {y['test'].shape[1]}")
        n_classes = 0
    else:
        y = {split: _npz_labels(path, split, arrays[f"y_{split}"]) for split in ("train", "test")}
        n_classes = int(max(y["train"].max(), y["test"].max())) + 1
        if n_classes < 2:
            raise DataError(f"{path}: the labels hold a single class (0); classification "
                            "needs at least 2")
        absent = sorted(set(range(n_classes)) - set(torch.unique(y["train"]).tolist()))
        if absent:  # an output the training never fits: a test-only class, 1-based labels
            shown = ", ".join(map(str, absent[:10])) + (", ..." if len(absent) > 10 else "")
            raise DataError(
                f"{path}: class{'es' if len(absent) > 1 else ''} {shown} of 0..{n_classes - 1} "
                "never occur" + ("s" if len(absent) == 1 else "") + " in y_train; labels must "
                "be 0..k-1 with every class in the training split (labels counted from 1, or "
                "y_test encoded differently from y_train?)")
    pixels = {split: arrays[f"X_{split}"].dtype == np.uint8 for split in ("train", "test")}
    if pixels["train"] != pixels["test"]:  # one would be scaled by 1/255, the other not
        raise DataError(
            f"{path}: X_train is {arrays['X_train'].dtype} and X_test {arrays['X_test'].dtype}; "
            "uint8 inputs are pixels scaled to [0, 1], so store both splits as uint8 or both "
            "as numbers on the same scale")
    X = {split: _npz_inputs(path, split, arrays[f"X_{split}"], dtype)
         for split in ("train", "test")}
    if X["train"].shape[1] != X["test"].shape[1]:
        raise DataError(f"{path}: X_train has {X['train'].shape[1]} features per sample, "
                        f"X_test {X['test'].shape[1]}")
    return Dataset(str(path), X["train"], y["train"], X["test"], y["test"], n_classes, shape)


def _subset_indices(n_available: int, n_train: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of size ``n_train``."""
    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)):
        raise DataError(f"n_train must be an integer, got {n_train!r}")
    if not 1 <= n_train <= n_available:
        raise DataError(f"n_train must be between 1 and {n_available}, got {n_train}")
    return np.sort(np.random.default_rng(seed).choice(n_available, n_train, replace=False))


def validation_count(val_size: int | float, n_available: int) -> int:
    """Number of samples ``val_size`` holds out of ``n_available`` training samples: an integer
    >= 1 is a count, a float in (0, 1) a share (rounded, at least 1).  At least one training
    sample must remain."""
    if isinstance(val_size, bool) or not isinstance(val_size, (int, float, np.integer,
                                                               np.floating)):
        raise DataError(f"val_size must be a count (int >= 1) or a share (float in (0, 1)), "
                        f"got {val_size!r}")
    if isinstance(val_size, (float, np.floating)):
        if not 0.0 < val_size < 1.0:
            raise DataError(f"val_size as a share must lie in (0, 1), got {val_size}")
        count = max(1, round(float(val_size) * n_available))
    else:
        count = int(val_size)
        if count < 1:
            raise DataError(f"val_size must be >= 1, got {count}")
    if count >= n_available:
        raise DataError(f"val_size {val_size} holds out {count} of the {n_available} training "
                        "samples; at least one must remain for training")
    return count


def _validation_indices(n_available: int, count: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random validation subset (its own stream of ``seed``: the
    training subset of ``n_train`` uses another)."""
    rng = np.random.default_rng([seed, 1])
    return np.sort(rng.choice(n_available, count, replace=False))


def load_dataset(name: str | os.PathLike[str], *,
                 data_dir: str | os.PathLike[str] | None = None, n_train: int | None = None,
                 seed: int = 0, standardize: bool = False,
                 download: bool = False, dtype: torch.dtype = torch.float32,
                 val_size: int | float | None = None) -> Dataset:
    """Load a data set by name.

    Args:
        name: One of :data:`DATASETS`, or the path of a ``.npz`` file of your own arrays
            (:func:`load_npz`).
        data_dir: Root data folder holding ``<name>/`` (None: :func:`default_data_dir`).
        n_train: Keep a random training subset of this size (seeded by ``seed``).
        seed: Seed of the training subset, of the validation split and of the ``synthetic``
            teacher.
        standardize: Scale features to zero mean, unit variance using training statistics
            (features constant on the training set are only centred; with a validation set,
            the statistics of the remaining training samples).
        download: Download missing files (MNIST, Fashion-MNIST, CIFAR-10).
        dtype: Floating dtype of the inputs.
        val_size: Hold out a random validation set (seeded by ``seed``) from the training set
            (after ``n_train``): a count (int) or a share (float in (0, 1)); it becomes
            ``X_val``, ``y_val`` and leaves the training set.  None: no validation set.

    Raises:
        DataError: Unknown name, missing or malformed files, bad ``n_train`` or ``val_size``,
            NaN/inf values.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise DataError(f"dtype must be a floating point torch dtype, got {dtype}")
    seed = check_seed(seed, DataError)
    key = _normalize_name(name)
    if is_array_file(name):
        ds = load_npz(name, dtype)
        key = ds.name
    elif key not in DATASETS:
        raise DataError(f"unknown data set {name!r}; valid names: {', '.join(DATASETS)}, or "
                        "a .npz file of your own arrays")
    elif key == "synthetic":
        ds = make_teacher_data(2000, 500, seed=seed, dtype=dtype)
    else:
        root = resolve_data_dir(data_dir)
        if key == "digits":  # pixel values 0..16
            arrays, shape, scale = _load_digits(), (1, 8, 8), 16.0
        elif key == "cifar10":
            arrays, shape, scale = _load_cifar10(root, download), (3, 32, 32), 255.0
        else:
            arrays, shape, scale = _load_mnist_like(key, root, download), (1, 28, 28), 255.0
        Xtr, ytr, Xte, yte = (torch.as_tensor(a) for a in arrays)
        ds = Dataset(key, Xtr.to(dtype) / scale, ytr.long(), Xte.to(dtype) / scale, yte.long(),
                     10, shape)
    for split, X in (("train", ds.X_train), ("test", ds.X_test)):
        if not torch.isfinite(X).all():
            raise DataError(f"{key}: {split} inputs contain NaN or infinite values")
    if n_train is not None:
        idx = torch.from_numpy(_subset_indices(len(ds.X_train), n_train, seed))
        ds = replace(ds, X_train=ds.X_train[idx], y_train=ds.y_train[idx])
    if val_size is not None:
        n = len(ds.X_train)
        held = torch.from_numpy(_validation_indices(n, validation_count(val_size, n), seed))
        keep = torch.ones(n, dtype=torch.bool)
        keep[held] = False
        ds = replace(ds, X_train=ds.X_train[keep], y_train=ds.y_train[keep],
                     X_val=ds.X_train[held], y_val=ds.y_train[held])
    if standardize:
        X = ds.X_train
        const = X.amax(dim=0) == X.amin(dim=0)
        # in float64 (float32 values near the dtype's limit overflow a float32 mean), a few
        # rows at a time (no float64 copy of the data)
        mean = X.sum(dim=0, dtype=torch.float64) / len(X)
        var = sum(((rows.to(torch.float64) - mean) ** 2).sum(dim=0) for rows in X.split(8192))
        mean = torch.where(const, X[0].to(torch.float64), mean)  # exact zeros for constants
        std = (var / len(X)).sqrt().clamp_min(1e-8).masked_fill(const, 1.0)
        scaled = {k: torch.cat([((rows.to(torch.float64) - mean) / std).to(X.dtype)
                                for rows in getattr(ds, k).split(8192)])
                  for k in ("X_train", "X_test", "X_val") if getattr(ds, k) is not None}
        for k, Xs in scaled.items():
            if not torch.isfinite(Xs).all():
                raise DataError(f"{key}: standardised {k} values overflow {X.dtype} (a test "
                                "value far outside the training range); rescale the data")
        ds = replace(ds, **scaled, input_mean=mean, input_std=std)
    return ds


def one_hot(y: torch.Tensor, n_classes: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """One-hot encode integer labels ``y`` of shape ``(N,)`` into ``(N, n_classes)``.

    Raises:
        DataError: If ``y`` is not a 1-D integer tensor or a label is outside
            ``[0, n_classes)``.
    """
    if y.ndim != 1 or y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise DataError(f"one_hot expects a 1-D integer label tensor, got {y.dtype} "
                        f"of shape {tuple(y.shape)}")
    if n_classes < 1:
        raise DataError(f"n_classes must be >= 1, got {n_classes}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        bad = y[(y < 0) | (y >= n_classes)]
        raise DataError(f"labels must lie in [0, {n_classes - 1}]; found {int(bad[0])} "
                        f"({bad.numel()} out of range)")
    out = torch.zeros(len(y), n_classes, dtype=dtype or torch.get_default_dtype(),
                      device=y.device)
    return out.scatter_(1, y.long().unsqueeze(1), 1)
