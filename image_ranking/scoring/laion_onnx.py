"""Convert the LAION aesthetic head (a PyTorch zip checkpoint) to ONNX without PyTorch.

The checkpoint is a zip: `archive/data.pkl` (a pickled state dict whose tensors refer to raw
little-endian storages `archive/data/<key>`). A restricted unpickler accepts only the few
globals a plain state dict needs, so a hostile file cannot run code.

Head contract: input `embedding` float32 [N, 768] (L2-normalised CLIP embedding), output
`score` float32 [N, 1]. Five Linear layers, no activations (dropout is a no-op at inference).
"""

from __future__ import annotations

import collections
import math
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .nima_onnx import ConversionError as NimaConversionError
from .nima_onnx import validate_onnx

# onnx, h5py and onnxruntime are imported inside the conversion functions: a scorer imports
# this module for its constants and never loads them.

EMBED_DIM = 768
HEAD_LAYERS = ["layers.0", "layers.2", "layers.4", "layers.6", "layers.7"]
HEAD_SHAPES = [(1024, 768), (128, 1024), (64, 128), (16, 64), (1, 16)]
ENCODER_INPUT = [None, 3, 224, 224]
ENCODER_OUTPUT = [None, EMBED_DIM]
OPSET = 17
MAX_DIMS = 8
MAX_STORAGE_BYTES = 256 * 1024 * 1024  # the head's storages total about 3.7 MB
_DTYPES = {"FloatStorage": np.float32, "HalfStorage": np.float16, "DoubleStorage": np.float64}


class ConversionError(ValueError):
    """The checkpoint or encoder is not what the LAION predictor needs."""


def _whole_numbers(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or len(value) > MAX_DIMS:
        raise ConversionError(f"tensor {what} must be a tuple of at most {MAX_DIMS} integers")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise ConversionError(f"tensor {what} {value!r} must hold non-negative integers")
    return tuple(value)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *args: Any) -> np.ndarray:
    """A tensor as a float32 copy of its storage, refusing any view that would reach outside it.

    `as_strided` trusts its arguments and would read arbitrary memory, so offset, shape and
    strides from the (untrusted) pickle are checked against the storage's length first.
    """
    if not (isinstance(storage, tuple) and len(storage) == 2):
        raise ConversionError("tensor without a storage")
    raw, dtype = storage
    itemsize = dtype.itemsize
    if len(raw) % itemsize:
        raise ConversionError(f"storage of {len(raw)} bytes is not a whole number of {dtype}")
    length = len(raw) // itemsize
    shape, strides = _whole_numbers(size, "shape"), _whole_numbers(stride, "strides")
    if len(shape) != len(strides):
        raise ConversionError(f"tensor shape {shape} and strides {strides} differ in length")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ConversionError(f"tensor offset {offset!r} must be a non-negative integer")
    count = math.prod(shape)
    if count > length:
        raise ConversionError(f"tensor of {count} elements is larger than its storage ({length})")
    last = offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True)) if count else 0
    if count and last >= length:
        raise ConversionError(
            f"tensor (offset {offset}, shape {shape}, strides {strides}) reaches element {last}"
            f" of a storage of {length}"
        )
    if not count:
        return np.zeros(shape, dtype=np.float32)
    flat = np.frombuffer(raw, dtype=dtype)
    view = np.lib.stride_tricks.as_strided(
        flat[offset:], shape=shape, strides=tuple(s * itemsize for s in strides), writeable=False
    )
    return np.array(view, dtype=np.float32)


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, handle, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(handle)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return name
        raise ConversionError(f"checkpoint refers to {module}.{name}, not a plain state dict")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5):
            raise ConversionError(f"unsupported storage {pid!r:.100}")
        kind, storage_type, key, _location, _numel = pid
        if kind != "storage" or storage_type not in _DTYPES or not isinstance(key, str):
            raise ConversionError(f"unsupported storage {pid!r:.100}")
        name = f"{self.prefix}/data/{key}"
        if self.archive.getinfo(name).file_size > MAX_STORAGE_BYTES:
            raise ConversionError(f"storage {key} is larger than {MAX_STORAGE_BYTES} bytes")
        raw = self.archive.read(name)
        return raw, np.dtype(_DTYPES[storage_type]).newbyteorder("<")


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The checkpoint's tensors by name; ConversionError for anything but a plain state dict."""
    try:
        with zipfile.ZipFile(path) as archive:
            pkl = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
            prefix = pkl.rsplit("/", 1)[0]
            with archive.open(pkl) as handle:
                state = _StateDictUnpickler(handle, archive, prefix).load()
    except ConversionError as exc:
        raise ConversionError(f"{path}: {exc}") from exc
    except (
        zipfile.BadZipFile,
        StopIteration,
        KeyError,
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        IndexError,
        AttributeError,
    ) as exc:
        raise ConversionError(f"{path}: not a PyTorch zip checkpoint ({exc})") from exc
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items()
    ):
        raise ConversionError(f"{path}: not a state dict of named tensors")
    return dict(state)


def build_head(state: dict[str, np.ndarray]):
    from onnx import TensorProto, helper, numpy_helper  # conversion only (see the top)

    nodes, inits, x = [], [], "embedding"
    for index, (layer, shape) in enumerate(zip(HEAD_LAYERS, HEAD_SHAPES, strict=True)):
        weight, bias = state.get(f"{layer}.weight"), state.get(f"{layer}.bias")
        if weight is None or bias is None or weight.shape != shape or bias.shape != shape[:1]:
            raise ConversionError(f"layer {layer}: expected weight {shape} and bias")
        inits += [
            numpy_helper.from_array(weight, f"W{index}"),
            numpy_helper.from_array(bias, f"B{index}"),
        ]
        out = "score" if index == len(HEAD_LAYERS) - 1 else f"h{index}"
        nodes.append(helper.make_node("Gemm", [x, f"W{index}", f"B{index}"], [out], transB=1))
        x = out
    graph = helper.make_graph(
        nodes,
        "laion_aesthetic_head",
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", EMBED_DIM])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def convert_head(pth: Path, onnx_path: Path) -> None:
    import onnx  # conversion only (see the top)

    onnx.save(build_head(read_state_dict(pth)), str(onnx_path))
    try:
        validate_onnx(onnx_path, [None, EMBED_DIM], [None, 1])
    except NimaConversionError as exc:
        raise ConversionError(str(exc)) from exc


def encoder_output_name(session) -> str:
    """The [N, 768] embedding output: `image_embeds` when the export has it, else the only one."""
    embeddings = [o for o in session.get_outputs() if len(o.shape) == 2 and o.shape[1] == EMBED_DIM]
    named = [o.name for o in embeddings if o.name == "image_embeds"]
    if named:
        return named[0]
    if len(embeddings) != 1:
        found = [(o.name, o.shape) for o in session.get_outputs()]
        raise ConversionError(f"no [N, {EMBED_DIM}] image embedding output among {found}")
    return embeddings[0].name


def validate_encoder(path: Path) -> None:
    """onnx.checker on the file, then the input [N, 3, 224, 224] and a 768-d embedding output."""
    import onnx  # conversion only (see the top)
    import onnxruntime as ort  # conversion only (see the top)

    try:
        onnx.checker.check_model(str(path))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ConversionError(f"invalid ONNX model ({exc})") from exc
    inputs = session.get_inputs()
    shape = inputs[0].shape if inputs else None
    if len(inputs) != 1 or len(shape) != 4 or list(shape[1:]) != ENCODER_INPUT[1:]:
        raise ConversionError(
            f"encoder input {[(i.name, i.shape) for i in inputs]}, expected [N, 3, 224, 224]"
        )
    encoder_output_name(session)
