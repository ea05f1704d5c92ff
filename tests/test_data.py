"""Tests for liftnet.data: IDX reader, loaders, CIFAR unpickler, teacher data, downloads."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from liftnet import data
from liftnet.data import DataError, Dataset, load_dataset, one_hot, read_idx

DATA_DIR = Path(os.environ.get("LIFTNET_DATA")
                or Path(__file__).resolve().parents[2] / "shared" / "data")
IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
             np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode ``arr`` in the IDX format (big-endian)."""
    code = IDX_CODES[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool = True) -> Path:
    raw = idx_bytes(arr)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def write_fake_mnist(folder: Path, n_train: int = 60, n_test: int = 20, seed: int = 0,
                     image_size: int = 28, max_label: int = 9) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, image_size, 28), np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, max_label + 1, n_train).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, image_size, 28), np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, max_label + 1, n_test).astype(np.uint8),
    }
    for name, arr in arrays.items():
        write_idx(folder / name, arr)
    return arrays


# ------------------------------------------------------------------------------ IDX


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dtype", list(IDX_CODES))
def test_idx_roundtrip(tmp_path, dtype, gz):
    rng = np.random.default_rng(1)
    for shape in [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 2)]:
        arr = (rng.standard_normal(shape) * 100).astype(dtype)
        out = read_idx(write_idx(tmp_path / "a.idx", arr, gz=gz))
        assert out.dtype == np.dtype(dtype) and out.dtype.isnative
        np.testing.assert_array_equal(out, arr)


def test_idx_gzip_detected_by_magic_not_name(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "raw.gz", arr, gz=False)), arr)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "packed", arr, gz=True)), arr)


def _bad_idx(tmp_path: Path, raw: bytes, gz: bool = True) -> str:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_idx_errors(tmp_path):
    good = idx_bytes(np.zeros((10, 28, 28), np.uint8))
    assert "magic" in _bad_idx(tmp_path, b"\x01\x00" + good[2:])
    assert "type code 0x07" in _bad_idx(tmp_path, good[:2] + b"\x07" + good[3:])
    assert "dimension count 0" in _bad_idx(tmp_path, b"\x00\x00\x08\x00")
    assert "dimension count 5" in _bad_idx(tmp_path, b"\x00\x00\x08\x05" + b"\x00" * 40)
    assert "header" in _bad_idx(tmp_path, good[:9])
    assert "header" in _bad_idx(tmp_path, b"", gz=False)
    msg = _bad_idx(tmp_path, good[:16 + 1000])
    assert "truncated IDX payload: expected 7840 bytes, got 1000" in msg
    assert "trailing data" in _bad_idx(tmp_path, good + b"\x00\x01", gz=False)


def test_idx_corrupt_gzip(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(5000, dtype=np.int32)))
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: corrupt or truncated gzip"):
        read_idx(path)
    broken = bytearray(packed)
    broken[len(broken) // 2] ^= 0xFF
    path.write_bytes(bytes(broken))
    with pytest.raises(DataError, match="gzip"):
        read_idx(path)
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "missing.gz")


# ------------------------------------------------------------------ MNIST-like loading


@pytest.fixture(scope="module", params=["mnist", "fashion-mnist"])
def real(request):
    name = request.param
    missing = [f for f in data._IDX_FILES.values() if not (DATA_DIR / name / f).is_file()]
    assert not missing, f"the real-data tests need {missing} in {DATA_DIR / name} ($LIFTNET_DATA)"
    return load_dataset(name, data_dir=DATA_DIR)


def test_real_mnist_like(real):
    assert real.X_train.shape == (60000, 784) and real.X_test.shape == (10000, 784)
    assert real.X_train.dtype == torch.float32 and real.y_train.dtype == torch.int64
    assert real.n_classes == 10 and real.image_shape == (1, 28, 28) and real.n_features == 784
    for X in (real.X_train, real.X_test):
        assert float(X.min()) == 0.0 and float(X.max()) == 1.0
    for y in (real.y_train, real.y_test):
        assert set(y.unique().tolist()) == set(range(10))
    first = {"mnist": (5, 7), "fashion-mnist": (9, 9)}[real.name]
    assert (int(real.y_train[0]), int(real.y_test[0])) == first


def test_real_subset_indices(real):
    n = len(real.X_train)
    a, b = data._subset_indices(n, 1000, 3), data._subset_indices(n, 1000, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, data._subset_indices(n, 1000, 4))
    assert len(np.unique(a)) == 1000 and a.max() < n
    assert set(real.y_train[torch.from_numpy(a)].tolist()) == set(range(10))


def test_fake_mnist_load_subset_standardize(tmp_path):
    arrays = write_fake_mnist(tmp_path / "fashion-mnist")
    full = load_dataset("Fashion_MNIST", data_dir=tmp_path)
    images = arrays["train-images-idx3-ubyte.gz"].reshape(60, -1)
    np.testing.assert_allclose(full.X_train.numpy(), images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(full.y_train.numpy(), arrays["train-labels-idx1-ubyte.gz"])
    sub = load_dataset("fashion-mnist", data_dir=tmp_path, n_train=25, seed=7)
    again = load_dataset("fashion-mnist", data_dir=tmp_path, n_train=25, seed=7)
    other = load_dataset("fashion-mnist", data_dir=tmp_path, n_train=25, seed=8)
    assert sub.X_train.shape == (25, 784) and torch.equal(sub.X_test, full.X_test)
    assert torch.equal(sub.X_train, again.X_train) and torch.equal(sub.y_train, again.y_train)
    assert not torch.equal(sub.X_train, other.X_train)
    idx = torch.from_numpy(data._subset_indices(60, 25, 7))
    assert torch.equal(sub.X_train, full.X_train[idx])
    for bad in (0, 61, -3):
        with pytest.raises(DataError, match="n_train"):
            load_dataset("fashion-mnist", data_dir=tmp_path, n_train=bad)
    std = load_dataset("fashion-mnist", data_dir=tmp_path, standardize=True, dtype=torch.float64)
    assert std.X_train.dtype == torch.float64
    torch.testing.assert_close(std.X_train.mean(0), torch.zeros(784, dtype=torch.float64))
    torch.testing.assert_close(std.X_train.std(0, unbiased=False),
                               torch.ones(784, dtype=torch.float64))


def test_standardize_constant_feature(tmp_path):
    folder = tmp_path / "mnist"
    arrays = write_fake_mnist(folder)
    arrays["train-images-idx3-ubyte.gz"][:, 0, 0] = 200
    write_idx(folder / "train-images-idx3-ubyte.gz", arrays["train-images-idx3-ubyte.gz"])
    ds = load_dataset("mnist", data_dir=tmp_path, standardize=True)
    assert torch.isfinite(ds.X_train).all() and torch.isfinite(ds.X_test).all()
    assert torch.all(ds.X_train[:, 0] == 0)


def test_uncompressed_files_accepted(tmp_path):
    arrays = write_fake_mnist(tmp_path / "mnist")
    for name in arrays:
        path = tmp_path / "mnist" / name
        path.with_suffix("").write_bytes(gzip.decompress(path.read_bytes()))
        path.unlink()
    assert load_dataset("mnist", data_dir=tmp_path).X_train.shape == (60, 784)


@pytest.mark.parametrize("kwargs, match", [
    ({"max_label": 10}, r"labels must lie in \[0, 9\]"),
    ({"image_size": 27}, r"\(N, 28, 28\)"),
])
def test_mnist_validation(tmp_path, kwargs, match):
    write_fake_mnist(tmp_path / "mnist", n_train=200, **kwargs)
    with pytest.raises(DataError, match=match):
        load_dataset("mnist", data_dir=tmp_path)


def test_mnist_count_mismatch(tmp_path):
    write_fake_mnist(tmp_path / "mnist")
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(DataError, match="expected 20 labels"):
        load_dataset("mnist", data_dir=tmp_path)


def test_mnist_float_labels_and_empty_files_rejected(tmp_path):
    write_fake_mnist(tmp_path / "mnist")
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    write_idx(labels, np.full(20, 2.5))  # a float64 IDX file: 2.5 must not become label 2
    with pytest.raises(DataError, match="t10k-labels.*labels must be integers"):
        load_dataset("mnist", data_dir=tmp_path)
    write_idx(labels, np.zeros(0, np.uint8))
    write_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", np.zeros((0, 28, 28), np.uint8))
    with pytest.raises(DataError, match="t10k-images.*holds no images"):
        load_dataset("mnist", data_dir=tmp_path)


def test_missing_files_error(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset("mnist", data_dir=tmp_path / "nowhere")
    msg = str(info.value)
    assert str(tmp_path / "nowhere" / "mnist") in msg
    for name in data._IDX_FILES.values():
        assert name in msg
    assert "--download" in msg and "--data-dir" in msg and "LIFTNET_DATA" in msg


def test_unknown_name_and_bad_dtype():
    with pytest.raises(DataError, match="valid names: digits, mnist, fashion-mnist"):
        load_dataset("imagenet")
    with pytest.raises(DataError, match="floating"):
        load_dataset("digits", dtype=torch.int64)
    with pytest.raises(DataError, match="floating point torch dtype, got float32"):
        load_dataset("digits", dtype="float32")
    for seed in (-1, 2.5, True, 2**63):
        with pytest.raises(DataError, match=r"seed must be an integer in \[0, 2\*\*63\)"):
            load_dataset("digits", seed=seed)
    assert len(load_dataset("digits", seed=np.int64(2**62), n_train=5).X_train) == 5


def test_nan_rejected(monkeypatch):
    X = np.zeros((4, 64))
    X[1, 3] = np.nan
    monkeypatch.setattr(data, "_load_digits", lambda: (X, np.zeros(4, int), X[:2], np.zeros(2)))
    with pytest.raises(DataError, match="NaN"):
        load_dataset("digits")


def test_data_dirs(monkeypatch, tmp_path):
    monkeypatch.setenv("LIFTNET_DATA", str(tmp_path / "d"))
    assert data.default_data_dir() == tmp_path / "d"
    assert data.resolve_data_dir(None) == tmp_path / "d"
    assert data.resolve_data_dir(str(tmp_path)) == tmp_path
    monkeypatch.delenv("LIFTNET_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.default_data_dir() == tmp_path / "cache" / "liftnet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.default_data_dir() == Path.home() / ".cache" / "liftnet"


# ---------------------------------------------------------------- digits, synthetic


def test_digits():
    ds = load_dataset("digits", seed=0)
    assert ds.X_train.shape == (1437, 64) and ds.X_test.shape == (360, 64)
    assert ds.image_shape == (1, 8, 8) and ds.n_classes == 10
    assert float(ds.X_train.min()) == 0.0 and float(ds.X_train.max()) == 1.0
    other = load_dataset("digits", seed=5)
    assert torch.equal(ds.X_train, other.X_train) and torch.equal(ds.y_test, other.y_test)
    d64 = ds.to(dtype=torch.float64)
    assert d64.X_train.dtype == torch.float64 and d64.y_train.dtype == torch.int64
    assert ds.X_train.dtype == torch.float32 and "digits" in repr(ds)


def test_synthetic():
    ds = load_dataset("synthetic", seed=3)
    assert ds.X_train.shape == (2000, 20) and ds.X_test.shape == (500, 20)
    assert ds.n_classes == 4 and ds.image_shape is None and ds.y_train.dtype == torch.int64
    assert set(ds.y_train.unique().tolist()) <= set(range(4))
    assert ds.y_train.bincount(minlength=4).min() > 200  # centred teacher: balanced classes
    same, other = load_dataset("synthetic", seed=3), load_dataset("synthetic", seed=4)
    assert torch.equal(ds.X_train, same.X_train) and torch.equal(ds.y_test, same.y_test)
    assert not torch.equal(ds.X_train, other.X_train)


def test_teacher_regression():
    ds = data.make_teacher_data(100, 30, sizes=(5, 8, 3), task="regression", noise=0.1,
                                seed=1, dtype=torch.float64)
    assert ds.n_classes == 0 and ds.y_train.shape == (100, 3) and ds.y_test.shape == (30, 3)
    assert ds.y_train.dtype == torch.float64
    f32 = ds.to(dtype=torch.float32)
    assert f32.y_train.dtype == torch.float32 and f32.X_test.dtype == torch.float32
    clean = data.make_teacher_data(100, 30, sizes=(5, 8, 3), task="regression", seed=1)
    assert torch.equal(clean.X_train, ds.X_train.float())
    assert not torch.allclose(clean.y_train, ds.y_train.float())
    with pytest.raises(DataError, match="task"):
        data.make_teacher_data(task="ranking")
    with pytest.raises(DataError, match="sizes"):
        data.make_teacher_data(sizes=(5,))
    for noise in (float("nan"), float("inf"), -0.1):
        with pytest.raises(DataError, match=f"finite noise >= 0, got .*noise={noise}"):
            data.make_teacher_data(noise=noise)


def test_one_hot():
    y = torch.tensor([0, 2, 1, 2])
    out = one_hot(y, 3)
    assert out.dtype == torch.get_default_dtype()
    assert torch.equal(out.argmax(1), y) and torch.equal(out.sum(1), torch.ones(4))
    assert one_hot(y, 3, dtype=torch.float64).dtype == torch.float64
    with pytest.raises(DataError, match=r"\[0, 2\]; found 3"):
        one_hot(torch.tensor([0, 3]), 3)
    with pytest.raises(DataError, match="found -1"):
        one_hot(torch.tensor([-1, 0]), 3)
    with pytest.raises(DataError, match="integer"):
        one_hot(torch.tensor([0.0, 1.0]), 3)


def test_dataset_shape_validation():
    X, y = torch.zeros(5, 3), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(DataError, match="shapes"):
        Dataset("x", X, y, X, torch.zeros(5, dtype=torch.int64), 2, None)


# -------------------------------------------------------------------------- CIFAR-10


def cifar_batch(rows: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"batch", b"labels": rng.integers(0, 10, rows).tolist(),
            b"data": rng.integers(0, 256, (rows, 3072), np.uint8),
            b"filenames": [b"img.png"] * rows}


def write_cifar(folder: Path, rows: int) -> dict[str, dict]:
    folder.mkdir(parents=True, exist_ok=True)
    names = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    batches = {name: cifar_batch(rows, seed) for seed, name in enumerate(names)}
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))  # like the real files
    return batches


@pytest.fixture
def small_cifar(monkeypatch):
    monkeypatch.setattr(data, "_CIFAR_ROWS", 12)


def test_cifar_load(tmp_path, small_cifar):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    batches = write_cifar(folder, 12)
    # the real files name the numpy 1.x module, which must resolve without importing it
    raw = pickle.dumps(batches["data_batch_2"], protocol=2)
    assert b"numpy._core.multiarray\n_reconstruct" in raw
    raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    (folder / "data_batch_2").write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_dataset("cifar10", data_dir=tmp_path)
    assert ds.X_train.shape == (60, 3072) and ds.X_test.shape == (12, 3072)
    assert ds.image_shape == (3, 32, 32) and ds.n_classes == 10
    first = batches["data_batch_1"]
    np.testing.assert_allclose(ds.X_train[:12].numpy(), first[b"data"] / 255.0, rtol=1e-6)
    assert ds.y_train[:12].tolist() == first[b"labels"]
    assert ds.y_test.tolist() == batches["test_batch"][b"labels"]
    assert ds.y_train[12:24].tolist() == batches["data_batch_2"][b"labels"]
    img = ds.X_train[0].reshape(3, 32, 32)  # channel-major: red plane first
    assert torch.equal(img[0].flatten(), ds.X_train[0, :1024])


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_refuses_malicious_pickle(tmp_path, small_cifar):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    write_cifar(folder, 12)
    marker = tmp_path / "pwned"
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": _Evil(marker)}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_3: refusing .*forbidden global"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("payload, match", [
    (pickle.dumps([1, 2], protocol=2), "expected a dict"),
    (pickle.dumps({b"data": np.zeros((12, 3072), np.float32), b"labels": [0] * 12}), "uint8"),
    (pickle.dumps({b"data": np.zeros((11, 3072), np.uint8), b"labels": [0] * 11}), "shape"),
    (pickle.dumps({b"data": np.zeros((12, 3072), np.uint8), b"labels": [10] * 12}), "labels"),
    (pickle.dumps(cifar_batch(12, 0), protocol=2)[:500], "cannot read CIFAR batch"),
    (pickle.dumps({b"data": np.zeros((12, 3072), np.uint8), b"labels": [[0, 1]] + [0] * 11}),
     "not a flat list of integers"),
    (pickle.dumps({b"data": np.zeros((12, 3072), np.uint8), b"labels": [0.5] * 12}),
     "integer labels, got float64"),
])
def test_cifar_validation(tmp_path, small_cifar, payload, match):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    write_cifar(folder, 12)
    (folder / "test_batch").write_bytes(payload)
    with pytest.raises(DataError, match=match):
        load_dataset("cifar10", data_dir=tmp_path)


def test_cifar_missing(tmp_path):
    with pytest.raises(DataError, match="data_batch_1.*test_batch.*--download"):
        load_dataset("cifar10", data_dir=tmp_path)


# ------------------------------------------------------------------------- download


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A file:// mirror holding fake MNIST files, with a matching checksum table."""
    arrays = write_fake_mnist(tmp_path / "mirror")
    table = {n: sha((tmp_path / "mirror" / n).read_bytes()) for n in arrays}
    monkeypatch.setitem(data.SHA256, "mnist", table)
    return (tmp_path / "mirror").as_uri() + "/"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_good(tmp_path, mirror):
    folder = data.download_dataset("mnist", tmp_path / "dl", mirrors=[mirror])
    assert folder == tmp_path / "dl" / "mnist"
    assert leftovers(folder) == sorted(data.SHA256["mnist"])
    for name in data.SHA256["mnist"]:
        assert (folder / name).read_bytes() == (tmp_path / "mirror" / name).read_bytes()


def test_download_via_load_dataset(tmp_path, mirror, monkeypatch):
    monkeypatch.setitem(data.MIRRORS, "mnist", ((tmp_path / "nope").as_uri() + "/", mirror))
    ds = load_dataset("mnist", data_dir=tmp_path / "dl", download=True)
    assert ds.X_train.shape == (60, 784)


def test_download_bad_checksum(tmp_path, mirror, monkeypatch):
    monkeypatch.setitem(data.SHA256["mnist"], "train-images-idx3-ubyte.gz", "0" * 64)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: sha256 mismatch"):
        data.download_dataset("mnist", tmp_path / "dl", mirrors=[mirror])
    assert leftovers(tmp_path / "dl" / "mnist") == []  # neither the file nor a temporary


def test_failed_download_keeps_existing_target(tmp_path, mirror):
    target = tmp_path / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(b"precious")
    with pytest.raises(DataError, match="sha256 mismatch"):
        data._fetch(mirror + target.name, target, "1" * 64, timeout=5)
    assert target.read_bytes() == b"precious" and leftovers(tmp_path) == [
        "mirror", target.name]
    with pytest.raises(OSError, match=r"No such file or directory.*absent\.gz"):
        data._fetch(mirror + "absent.gz", target, "1" * 64, timeout=5)
    assert target.read_bytes() == b"precious"
    folder = tmp_path / "dl" / "mnist"  # download_dataset leaves present files alone
    folder.mkdir(parents=True)
    (folder / target.name).write_bytes(b"mine")
    data.download_dataset("mnist", tmp_path / "dl", mirrors=[mirror])
    assert (folder / target.name).read_bytes() == b"mine"


def test_download_unknown_and_all_mirrors_fail(tmp_path, mirror):
    with pytest.raises(DataError, match="downloadable"):
        data.download_dataset("digits", tmp_path)
    bad = (tmp_path / "nope").as_uri() + "/"
    with pytest.raises(DataError, match="could not download train-images") as info:
        data.download_dataset("mnist", tmp_path / "dl", mirrors=[bad, bad + "x/"])
    assert str(info.value).count("\n  file://") == 2
    with pytest.raises(DataError, match="sequence of base URLs, not one string: pass"):
        data.download_dataset("mnist", tmp_path / "dl", mirrors=bad)


def test_download_mirrors_as_an_iterator_empty_or_a_data_dir_that_is_a_file(tmp_path, mirror):
    # an iterator serves every file (it was used up by the first one)
    folder = data.download_dataset("mnist", tmp_path / "dl", mirrors=iter([mirror]))
    assert leftovers(folder) == sorted(data.SHA256["mnist"])
    with pytest.raises(DataError, match="mirrors is empty"):
        data.download_dataset("mnist", tmp_path / "dl2", mirrors=[])
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="cannot create the data folder .*file/mnist"):
        data.download_dataset("mnist", tmp_path / "file", mirrors=[mirror])


def test_download_cifar(tmp_path, monkeypatch, small_cifar):
    src = tmp_path / "src" / "cifar-10-batches-py"
    batches = write_cifar(src, 12)
    tarball = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    tarball.parent.mkdir()
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
        evil = tarfile.TarInfo("cifar-10-batches-py/../../escaped")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    monkeypatch.setitem(data.SHA256, "cifar10", {tarball.name: sha(tarball.read_bytes())})
    monkeypatch.setitem(data.MIRRORS, "cifar10", (tarball.parent.as_uri() + "/",))
    ds = load_dataset("cifar10", data_dir=tmp_path / "dl", download=True)
    assert ds.y_test.tolist() == batches["test_batch"][b"labels"]
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "dl" / "escaped").exists()


def _cifar_mirror(tmp_path, monkeypatch, damage=None, drop=None) -> dict:
    """A local CIFAR-10 mirror: the tarball of small batches (without the file ``drop``;
    its bytes passed through ``damage``), with its checksum registered."""
    src = tmp_path / "src" / "cifar-10-batches-py"
    batches = write_cifar(src, 12)
    if drop is not None:
        (src / drop).unlink()
    tarball = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    tarball.parent.mkdir()
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    if damage is not None:
        tarball.write_bytes(damage(tarball.read_bytes()))
    monkeypatch.setitem(data.SHA256, "cifar10", {tarball.name: sha(tarball.read_bytes())})
    monkeypatch.setitem(data.MIRRORS, "cifar10", (tarball.parent.as_uri() + "/",))
    return batches


def test_download_cifar_completes_a_folder_without_its_test_batch(tmp_path, monkeypatch,
                                                                  small_cifar):
    batches = _cifar_mirror(tmp_path, monkeypatch)
    folder = tmp_path / "dl" / "cifar10" / "cifar-10-batches-py"
    write_cifar(folder, 12)
    (folder / "test_batch").unlink()
    ds = load_dataset("cifar10", data_dir=tmp_path / "dl", download=True)
    assert ds.y_test.tolist() == batches["test_batch"][b"labels"]


@pytest.mark.parametrize("damage, match", [
    (lambda b: b[: len(b) * 3 // 4], "cannot extract CIFAR-10 archive"),  # inside a member
    (lambda b: b[: len(b) * 9 // 10], "cannot extract CIFAR-10 archive"),
    (lambda b: gzip.compress(b"not a tar"), "cannot extract CIFAR-10 archive"),
])
def test_a_damaged_cifar_archive_is_named_and_leaves_no_partial_files(tmp_path, monkeypatch,
                                                                      small_cifar, damage,
                                                                      match):
    _cifar_mirror(tmp_path, monkeypatch, damage)
    with pytest.raises(DataError, match=match):
        load_dataset("cifar10", data_dir=tmp_path / "dl", download=True)
    assert not list((tmp_path / "dl").rglob("*.part"))


def test_a_cifar_archive_without_the_test_batch_is_named(tmp_path, monkeypatch, small_cifar):
    _cifar_mirror(tmp_path, monkeypatch, drop="test_batch")
    with pytest.raises(DataError, match="archive lacks test_batch"):
        load_dataset("cifar10", data_dir=tmp_path / "dl", download=True)


def test_validation_split_is_held_out_seeded_and_standardised_on_training_only(tmp_path):
    """val_size holds a seeded random part of the training set out (after n_train): disjoint
    from what stays, together the same samples, and the standardisation statistics are those
    of the remaining training samples."""
    write_fake_mnist(tmp_path / "mnist")
    full = load_dataset("mnist", data_dir=tmp_path, n_train=50, seed=3)
    ds = load_dataset("mnist", data_dir=tmp_path, n_train=50, seed=3, val_size=10)
    assert len(ds.X_train) == 40 and len(ds.X_val) == 10 and torch.equal(ds.X_test, full.X_test)
    rows = {tuple(r) for r in full.X_train.tolist()}
    kept, held = ({tuple(r) for r in X.tolist()} for X in (ds.X_train, ds.X_val))
    assert kept | held == rows and not kept & held
    def pairs(X, y):
        return {(tuple(x), int(c)) for x, c in zip(X.tolist(), y.tolist(), strict=True)}

    assert pairs(ds.X_val, ds.y_val) <= pairs(full.X_train, full.y_train)  # labels go along
    again = load_dataset("mnist", data_dir=tmp_path, n_train=50, seed=3, val_size=10)
    other = load_dataset("mnist", data_dir=tmp_path, n_train=50, seed=4, val_size=10)
    assert torch.equal(ds.X_val, again.X_val) and not torch.equal(
        load_dataset("mnist", data_dir=tmp_path, seed=3, val_size=10).X_val,
        load_dataset("mnist", data_dir=tmp_path, seed=4, val_size=10).X_val)
    assert len(other.X_val) == 10
    share = load_dataset("mnist", data_dir=tmp_path, val_size=0.25)
    assert (len(share.X_train), len(share.X_val)) == (45, 15)
    assert "n_val=15" in repr(share)
    std = load_dataset("mnist", data_dir=tmp_path, n_train=50, seed=3, val_size=10,
                       standardize=True, dtype=torch.float64)
    X = ds.X_train.double()
    const = X.amax(0) == X.amin(0)
    mean = torch.where(const, X[0], X.mean(0))
    sd = X.std(0, unbiased=False).clamp_min(1e-8).masked_fill(const, 1.0)
    torch.testing.assert_close(std.X_val, (ds.X_val.double() - mean) / sd)
    torch.testing.assert_close(std.X_test, (ds.X_test.double() - mean) / sd)
    moved = std.to(dtype=torch.float32)
    assert moved.X_val.dtype == torch.float32 and moved.y_val.dtype == torch.int64


@pytest.mark.parametrize("val_size, match", [
    (0, "val_size must be >= 1, got 0"), (-2, "val_size must be >= 1"),
    (60, "holds out 60 of the 60 training samples; at least one must remain"),
    (1.0, r"share must lie in \(0, 1\)"), (0.0, r"share must lie in \(0, 1\)"),
    (True, "val_size must be a count"), ("5", "val_size must be a count"),
])
def test_bad_validation_sizes_get_a_clear_error(tmp_path, val_size, match):
    write_fake_mnist(tmp_path / "mnist")
    with pytest.raises(DataError, match=match):
        load_dataset("mnist", data_dir=tmp_path, val_size=val_size)
    with pytest.raises(DataError, match="both X_val and y_val"):
        Dataset("d", torch.zeros(3, 2), torch.zeros(3), torch.zeros(1, 2), torch.zeros(1), 0,
                X_val=torch.zeros(1, 2))
    with pytest.raises(DataError, match="train and validation have different feature counts"):
        Dataset("d", torch.zeros(3, 2), torch.zeros(3), torch.zeros(1, 2), torch.zeros(1), 0,
                X_val=torch.zeros(1, 3), y_val=torch.zeros(1))
