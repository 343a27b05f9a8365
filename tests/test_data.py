import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from koopman_lib import data
from koopman_lib.data import DataError


def have_shared():
    d = os.environ.get("KOOPMAN_DATA_DIR")
    return d and (Path(d) / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file()


@pytest.mark.skipif(not have_shared(), reason="KOOPMAN_DATA_DIR with mnist/ not available")
def test_loads_mnist_test_split():
    x, y = data.load_mnist("test", download=False)
    assert x.shape == (10000, 784) and y.shape == (10000,)
    assert np.bincount(y.numpy()).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    raw, _ = data.load_mnist("test", normalize=None, download=False)
    assert 0.0 <= float(raw.min()) and float(raw.max()) <= 1.0


def make_copy(tmp_path, name="t10k-labels-idx1-ubyte.gz"):
    src = Path(os.environ["KOOPMAN_DATA_DIR"]) / "mnist" / name
    dst = tmp_path / "mnist" / name
    dst.parent.mkdir(parents=True)
    shutil.copy(src, dst)
    return dst


@pytest.mark.skipif(not have_shared(), reason="KOOPMAN_DATA_DIR with mnist/ not available")
def test_checksum_mismatch_is_a_clear_error(tmp_path, monkeypatch):
    dst = make_copy(tmp_path)
    with open(dst, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(DataError, match="checksum mismatch"):
        data.locate(dst.name, "mnist", data_dir=tmp_path, download=False)


@pytest.mark.skipif(not have_shared(), reason="KOOPMAN_DATA_DIR with mnist/ not available")
def test_truncated_file_is_a_clear_error(tmp_path):
    dst = make_copy(tmp_path)
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
