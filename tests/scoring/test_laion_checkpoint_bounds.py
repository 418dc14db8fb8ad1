"""A crafted LAION checkpoint cannot make the reader view memory outside a tensor's storage:
offset, shape and strides are checked before `as_strided`, and the error says what is wrong."""

from __future__ import annotations

import collections
import io
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from image_ranking.scoring import laion_onnx


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    """Write a checkpoint shaped like PyTorch's, with one tensor's view as given."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:  # pickled as the global torch.FloatStorage, as PyTorch does
        pass

    def _rebuild_tensor_v2(*args):  # only its name is pickled
        raise AssertionError("never called while writing")

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch.FloatStorage, torch._utils, utils._rebuild_tensor_v2 = (
        FloatStorage,
        utils,
        _rebuild_tensor_v2,
    )
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class Storage:
        pass

    def write(*, offset=0, size=(2, 2), stride=(2, 1), raw: bytes | None = None) -> Path:
        class Tensor:
            def __reduce__(self):
                args = (Storage(), offset, size, stride, False, collections.OrderedDict())
                return _rebuild_tensor_v2, args

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, Storage):
                    return ("storage", FloatStorage, "0", "cpu", 4)
                return None

        buffer = io.BytesIO()
        Pickler(buffer, protocol=2).dump(collections.OrderedDict({"layers.0.weight": Tensor()}))
        path = tmp_path / "head.pth"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", buffer.getvalue())
            data = np.arange(4, dtype="<f4").tobytes() if raw is None else raw
            archive.writestr("archive/data/0", data)
        return path

    return write


def test_a_well_formed_view_reads_its_values(checkpoint):
    state = laion_onnx.read_state_dict(checkpoint(offset=1, size=(3,), stride=(1,)))
    np.testing.assert_array_equal(state["layers.0.weight"], [1.0, 2.0, 3.0])
    transposed = laion_onnx.read_state_dict(checkpoint(size=(2, 2), stride=(1, 2)))
    np.testing.assert_array_equal(transposed["layers.0.weight"], [[0, 2], [1, 3]])


@pytest.mark.parametrize(
    ("view", "message"),
    [
        ({"offset": 10}, r"reaches element 13 of a storage of 4"),
        ({"stride": (100, 1)}, r"reaches element 101 of a storage of 4"),
        ({"size": (10**6, 10**6), "stride": (0, 0)}, r"larger than its storage"),
        ({"stride": (-2, 1)}, r"must hold non-negative integers"),
        ({"stride": (1,)}, r"differ in length"),
        ({"offset": "0"}, r"offset '0' must be a non-negative integer"),
        ({"size": [2] * 40, "stride": [0] * 40}, r"at most 8 integers"),
        ({"raw": b"\x00" * 5}, r"not a whole number"),
    ],
    ids=["offset", "stride", "broadcast-bomb", "negative", "rank", "offset-type", "dims", "raw"],
)
def test_a_crafted_view_is_refused_with_a_clear_error(checkpoint, view, message):
    path = checkpoint(**view)
    with pytest.raises(laion_onnx.ConversionError, match=message) as error:
        laion_onnx.read_state_dict(path)
    assert str(path) in str(error.value)


def test_a_pickle_that_is_not_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(laion_onnx.ConversionError, match="not a state dict"):
        laion_onnx.read_state_dict(path)
