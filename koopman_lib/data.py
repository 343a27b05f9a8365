"""MNIST / Fashion-MNIST from the original IDX gzip files, checksum-verified.

Lookup order for the data directory (which holds ``mnist/`` and ``fashion-mnist/``):
the ``data_dir`` argument, the environment variable ``KOOPMAN_DATA_DIR``, then
``~/.cache/koopman_lib``. Missing files are downloaded from public mirrors into the
cache and verified; a wrong checksum is always an error.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class DataError(RuntimeError):
    """The data set could not be found, verified or read (the message says what to do)."""


def data_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    dirs = []
    if data_dir is not None:
        dirs.append(Path(data_dir))
    if os.environ.get("KOOPMAN_DATA_DIR"):
        dirs.append(Path(os.environ["KOOPMAN_DATA_DIR"]))
    dirs.append(cache_dir())
    return dirs


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "koopman_lib"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verified(path: Path, dataset: str) -> bool:
    want = SHA256[dataset][path.name]
    got = sha256(path)
    if got != want:
        raise DataError(
            f"checksum mismatch for {path}: sha256 {got[:16]}... expected {want[:16]}...; the file is "
            "corrupted or truncated. Delete it and download it again (or point KOOPMAN_DATA_DIR at a good copy)."
        )
    return True


def _download(name: str, dataset: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in MIRRORS[dataset]:
        url = mirror + name
        try:
            with urllib.request.urlopen(url, timeout=30) as r, tempfile.NamedTemporaryFile(dir=dest, delete=False) as tmp:
                shutil.copyfileobj(r, tmp)
            tmp_path = Path(tmp.name)
            if sha256(tmp_path) != SHA256[dataset][name]:
                tmp_path.unlink()
                errors.append(f"{url}: checksum mismatch")
                continue
            final = dest / name
            os.replace(tmp_path, final)
            return final
        except OSError as e:
            errors.append(f"{url}: {e}")
    raise DataError(
        f"could not find {dataset}/{name} in {[str(d) for d in data_dirs()]} and could not download it "
        f"({'; '.join(errors)}). Set KOOPMAN_DATA_DIR to a folder holding {dataset}/{name}."
    )


def locate(name: str, dataset: str = "mnist", data_dir=None, download: bool = True) -> Path:
    """Path of a verified IDX file, downloading it into the cache if needed."""
    if dataset not in SHA256:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {sorted(SHA256)}")
    for d in data_dirs(data_dir):
        p = d / dataset / name
        if p.is_file() and _verified(p, dataset):
            return p
    if not download:
        raise DataError(f"{dataset}/{name} not found in {[str(d) for d in data_dirs(data_dir)]}; set KOOPMAN_DATA_DIR")
    return _download(name, dataset, cache_dir() / dataset)


def read_idx(path: Path) -> np.ndarray:
    """Read a gzip IDX file (big-endian header) into a uint8 array."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable gzip file ({e}); delete it and download again") from e
    if len(raw) < 8:
        raise DataError(f"{path} is truncated (only {len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic >> 8 != 0x08:
        raise DataError(f"{path}: IDX magic {magic} is not an unsigned-byte IDX file")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    need = int(np.prod(dims))
    if len(raw) - offset != need:
        raise DataError(f"{path}: header says {dims} ({need} bytes) but {len(raw) - offset} bytes follow; truncated?")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def load_mnist(split: str = "train", dataset: str = "mnist", data_dir=None, normalize: tuple[float, float] | None =
               (MNIST_MEAN, MNIST_STD), dtype=torch.float32, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 784)`` scaled to [0, 1] then ``(x - mean) / std``, and labels ``(N,)`` int64."""
    if split not in FILES:
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    img_name, lab_name = FILES[split]
    images = read_idx(locate(img_name, dataset, data_dir, download))
    labels = read_idx(locate(lab_name, dataset, data_dir, download))
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{images.shape[0]} images but {labels.shape[0]} labels in {dataset}/{split}")
    x = torch.from_numpy(images.reshape(images.shape[0], -1).astype(np.float32) / 255.0)
    if normalize is not None:
        x = (x - normalize[0]) / normalize[1]
    return x.to(dtype), torch.from_numpy(labels.astype(np.int64))
