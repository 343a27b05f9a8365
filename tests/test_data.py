import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from koopman_lib import data
from koopman_lib.data import DataError


def mnist_dir() -> Path | None:
    """The first data folder the library reads (KOOPMAN_DATA_DIR, then the download cache
    ~/.cache/koopman_lib, :func:`koopman_lib.data.data_dirs`) that holds MNIST, or None."""
    return next((d for d in data.data_dirs() if (d / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file()), None)


@pytest.fixture
def mnist_root() -> Path:
    """The integrity tests below run on the real files, wherever the library finds them: in
    CI the workflow downloads them into the cache first. They skip where there are none, and
    fail instead when KOOPMAN_REQUIRE_MNIST is set (the workflow sets it)."""
    d = mnist_dir()
    if d is None:
        msg = (f"MNIST (mnist/t10k-labels-idx1-ubyte.gz) not in {[str(p) for p in data.data_dirs()]}: "
               "set KOOPMAN_DATA_DIR or download it with koopman_lib.data.load_mnist")
        if os.environ.get("KOOPMAN_REQUIRE_MNIST"):
            pytest.fail(msg + " (KOOPMAN_REQUIRE_MNIST is set)")
        pytest.skip(msg)
    return d


def test_loads_mnist_test_split(mnist_root):
    x, y = data.load_mnist("test", download=False)
    assert x.shape == (10000, 784) and y.shape == (10000,)
    assert np.bincount(y.numpy()).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    raw, _ = data.load_mnist("test", normalize=None, download=False)
    assert 0.0 <= float(raw.min()) and float(raw.max()) <= 1.0


def make_copy(root, tmp_path, name="t10k-labels-idx1-ubyte.gz"):
    src = root / "mnist" / name
    dst = tmp_path / "mnist" / name
    dst.parent.mkdir(parents=True)
    shutil.copy(src, dst)
    return dst


def test_checksum_mismatch_is_a_clear_error(mnist_root, tmp_path, monkeypatch):
    dst = make_copy(mnist_root, tmp_path)
    with open(dst, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(DataError, match="checksum mismatch"):
        data.locate(dst.name, "mnist", data_dir=tmp_path, download=False)


def test_truncated_file_is_a_clear_error(mnist_root, tmp_path):
    dst = make_copy(mnist_root, tmp_path)
    dst.write_bytes(dst.read_bytes()[:500])
    with pytest.raises(DataError, match="checksum mismatch"):
        data.locate(dst.name, "mnist", data_dir=tmp_path, download=False)
    with pytest.raises(DataError, match="not a readable gzip|truncated"):
        data.read_idx(dst)


def test_read_idx_checks_header(tmp_path):
    p = tmp_path / "bad.gz"
    with gzip.open(p, "wb") as f:
        f.write((2049).to_bytes(4, "big") + (10).to_bytes(4, "big") + bytes(5))
    with pytest.raises(DataError, match="truncated"):
        data.read_idx(p)
    with gzip.open(p, "wb") as f:
        f.write((2049).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([1, 2, 3]))
    assert data.read_idx(p).tolist() == [1, 2, 3]


def test_missing_data_without_download_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("KOOPMAN_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="KOOPMAN_DATA_DIR"):
        data.locate("t10k-labels-idx1-ubyte.gz", "mnist", data_dir=tmp_path, download=False)
    with pytest.raises(DataError, match="unknown dataset"):
        data.locate("x", "cifar")


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("KOOPMAN_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setitem(data.MIRRORS, "mnist", ["http://127.0.0.1:9/"])  # nothing listens there
    with pytest.raises(DataError, match="could not download"):
        data.locate("t10k-labels-idx1-ubyte.gz", "mnist", data_dir=tmp_path)
