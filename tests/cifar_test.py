"""lcreg_keras.data.cifar: the CIFAR archives and folders, offline."""

import os
import pickle

import numpy as np
import pytest

from lcreg_keras import data
from tests import fakes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------
# CIFAR (the `cifar_offline` fixture is in conftest.py)


@pytest.mark.parametrize("num_classes", [10, 100])
@pytest.mark.parametrize("archive", [True, False])
def test_cifar_round_trip(tmp_path, cifar_offline, num_classes, archive):
    folder = str(tmp_path / "cifar")
    (x, y), (xt, yt) = fakes.fake_cifar(folder, num_classes, n_train=30, n_test=12, archive=archive)
    (x2, y2), (xt2, yt2), source = data.load_cifar(num_classes, folder, return_source=True)
    assert x2.dtype == np.uint8 and x2.shape == (30, 32, 32, 3) and xt2.shape == (12, 32, 32, 3)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(xt2, xt)
    np.testing.assert_array_equal(yt2, yt)
    assert source.startswith(folder)
    assert source.endswith(".tar.gz") == archive


def test_cifar_extracted_folder_as_data_dir_and_keras_cache(tmp_path, cifar_offline):
    fakes.fake_cifar(str(tmp_path / "c"), 10, archive=False)
    inner = str(tmp_path / "c" / "cifar-10-batches-py")
    (x, _), _, source = data.load_cifar(10, inner, return_source=True)
    assert source == inner and len(x) == 60
    # Keras 3 extracts its download into cifar-100-python-target/.
    fakes.fake_cifar(str(cifar_offline / "cifar-100-python-target"), 100, archive=False)
    (_, y), _, source = data.load_cifar(100, return_source=True)
    assert "cifar-100-python-target" in source and y.max() <= 99


def test_cifar_missing_everywhere_lists_places(tmp_path, cifar_offline):
    with pytest.raises(FileNotFoundError) as error:
        data.load_cifar(10, str(tmp_path / "nothing"))
    message = str(error.value)
    assert str(tmp_path / "nothing") in message and str(cifar_offline) in message
    assert "cifar-10-python.tar.gz" in message and "allow_download=False" in message
    with pytest.raises(ValueError, match="num_classes"):
        data.load_cifar(20)


def test_cifar_corrupt_archive_and_foreign_pickle(tmp_path, cifar_offline):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b\x08 this is not gzip")
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz"):
        data.load_cifar(10, str(folder))
    # A pickle that would run code is refused, naming the file.
    evil = tmp_path / "evil" / "cifar-100-python"
    evil.mkdir(parents=True)
    for name in ("train", "test"):
        with open(evil / name, "wb") as f:
            pickle.dump({b"data": os.system}, f, protocol=2)
    with pytest.raises(ValueError, match=r"cifar-100-python/train.*refusing"):
        data.load_cifar(100, str(tmp_path / "evil"))
