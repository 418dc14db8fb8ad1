"""An independent plain-numpy NIMA forward pass, layer by layer as Keras 2.1.6 defined it.

It reads the original HDF5 directly (not through our converter) and applies each layer's
own semantics: ZeroPadding2D((1, 1)) then a 'valid' convolution, BatchNormalization with its
four arrays (epsilon 1e-3, not folded), ReLU6, global average pooling, Dense + softmax. The
ONNX model must agree with it; the benchmark also uses it as the naive baseline.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

STRIDE_2_BLOCKS = {2, 4, 6, 12}


def load_layers(path: Path) -> dict[str, dict[str, np.ndarray]]:
    layers = {}
    with h5py.File(path, "r") as h5:
        for raw in h5.attrs["layer_names"]:
            name = raw.decode()
            group = h5[name]
            layers[name] = {
                w.decode().split("/")[-1].split(":")[0]: np.asarray(group[w.decode()])
                for w in group.attrs["weight_names"]
            }
    return layers


def _zero_pad(x: np.ndarray) -> np.ndarray:
    return np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))


def _windows(x: np.ndarray, stride: int) -> list[tuple[int, int, np.ndarray]]:
    """The nine 3x3-kernel taps of a 'valid' convolution on padded NHWC input."""
    out_h = (x.shape[1] - 3) // stride + 1
    out_w = (x.shape[2] - 3) // stride + 1
    return [
        (i, j, x[:, i : i + stride * out_h : stride, j : j + stride * out_w : stride, :])
        for i in range(3)
        for j in range(3)
    ]


def conv3x3(x: np.ndarray, kernel: np.ndarray, stride: int) -> np.ndarray:
    """Full 3x3 conv, kernel (3, 3, in, out), no bias."""
    return sum(tap @ kernel[i, j] for i, j, tap in _windows(_zero_pad(x), stride))


def depthwise3x3(x: np.ndarray, kernel: np.ndarray, stride: int) -> np.ndarray:
    """Depthwise 3x3 conv, kernel (3, 3, channels, 1), no bias."""
    return sum(tap * kernel[i, j, :, 0] for i, j, tap in _windows(_zero_pad(x), stride))


def batch_norm(x: np.ndarray, bn: dict[str, np.ndarray], eps: float = 1e-3) -> np.ndarray:
    return (x - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + eps) * bn["gamma"] + bn["beta"]


def relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def forward(layers: dict, batch_uint8: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Probabilities [N, 10] for preprocessed RGB input [N, 224, 224, 3] uint8."""
    cast = {k: {n: a.astype(dtype) for n, a in v.items()} for k, v in layers.items()}
    x = batch_uint8.astype(dtype) / dtype(127.5) - dtype(1.0)
    x = relu6(batch_norm(conv3x3(x, cast["conv1"]["kernel"], 2), cast["conv1_bn"]))
    for block in range(1, 14):
        stride = 2 if block in STRIDE_2_BLOCKS else 1
        dw = depthwise3x3(x, cast[f"conv_dw_{block}"]["depthwise_kernel"], stride)
        x = relu6(batch_norm(dw, cast[f"conv_dw_{block}_bn"]))
        pw = x @ cast[f"conv_pw_{block}"]["kernel"][0, 0]
        x = relu6(batch_norm(pw, cast[f"conv_pw_{block}_bn"]))
    features = x.mean(axis=(1, 2))
    logits = features @ cast["dense_1"]["kernel"] + cast["dense_1"]["bias"]
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)
