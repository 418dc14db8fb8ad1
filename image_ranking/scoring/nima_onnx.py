"""Convert idealo's Keras 2.1.6 NIMA MobileNet weights (HDF5) to ONNX, without TensorFlow.

The graph is rebuilt from the layer list in the file with the semantics of Keras 2.1.6: a
one-pixel zero padding on every side before `conv1` and every depthwise conv, then a 'valid'
convolution (today's Keras pads bottom/right only at stride 2, which shifts scores). Batch
normalisation (epsilon 1e-3) is folded into the preceding bias-free convolution.

Model contract: input `image` uint8 [N, 224, 224, 3] (RGB, already resized), output `probs`
float32 [N, 10], the probabilities of ratings 1..10. The `x / 127.5 - 1` normalisation and
the NHWC -> NCHW transpose are inside the graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# onnx, h5py and onnxruntime are imported inside the conversion functions: a scorer imports
# this module for its constants and never loads them.

INPUT_NAME = "image"
OUTPUT_NAME = "probs"
INPUT_SIZE = 224
BN_EPSILON = 1e-3
OPSET = 17
STRIDE_2_BLOCKS = {2, 4, 6, 12}
EXPECTED_PARAMETERS = 3_239_114


class ConversionError(ValueError):
    """The HDF5 file does not hold the expected MobileNet NIMA weights."""


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_keras_weights(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """{layer: {short weight name: array}} in the file's layer order (Keras `layer_names`)."""
    import h5py  # conversion only (see the top)

    layers: dict[str, dict[str, np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as h5:
            root = h5.get("model_weights", h5)
            for layer in (_text(n) for n in root.attrs["layer_names"]):
                group = root[layer]
                weights = {}
                for full in (_text(n) for n in group.attrs["weight_names"]):
                    short = full.split("/")[-1].split(":")[0]
                    weights[short] = np.asarray(group[full], dtype=np.float32)
                layers[layer] = weights
    except (OSError, KeyError) as exc:
        raise ConversionError(f"{path}: not a Keras weights file ({exc})") from exc
    total = sum(a.size for w in layers.values() for a in w.values())
    if total != EXPECTED_PARAMETERS:
        raise ConversionError(f"{path}: {total} parameters, expected {EXPECTED_PARAMETERS}")
    return layers


def _fold_bn(kernel_oihw: np.ndarray, bn: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Conv (no bias) followed by inference-mode BN == conv with scaled kernel and a bias."""
    scale = bn["gamma"].astype(np.float64) / np.sqrt(bn["moving_variance"] + BN_EPSILON)
    weight = kernel_oihw.astype(np.float64) * scale[:, None, None, None]
    bias = bn["beta"] - bn["moving_mean"] * scale
    return weight.astype(np.float32), bias.astype(np.float32)


def build_onnx(layers: dict[str, dict[str, np.ndarray]]):
    """The ONNX ModelProto of the NIMA MobileNet for these weights."""
    from onnx import TensorProto, helper, numpy_helper  # conversion only (see the top)

    nodes, inits = [], []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def conv_bn_relu6(x: str, name: str, kernel: np.ndarray, stride: int, group: int) -> str:
        weight, bias = _fold_bn(kernel, layers[f"{name}_bn"])
        pad = 1 if kernel.shape[-1] == 3 else 0
        out = f"{name}_relu"
        nodes.append(
            helper.make_node(
                "Conv",
                [x, const(f"{name}_W", weight), const(f"{name}_B", bias)],
                [f"{name}_out"],
                name=name,
                kernel_shape=list(kernel.shape[2:]),
                strides=[stride, stride],
                pads=[pad] * 4,
                group=group,
            )
        )
        nodes.append(
            helper.make_node(
                "Clip",
                [
                    f"{name}_out",
                    const(f"{name}_lo", np.float32(0)),
                    const(f"{name}_hi", np.float32(6)),
                ],
                [out],
                name=f"{name}_relu6",
            )
        )
        return out

    nodes.append(helper.make_node("Cast", [INPUT_NAME], ["x_f"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Div", ["x_f", const("c127_5", np.float32(127.5))], ["x_d"]))
    nodes.append(helper.make_node("Sub", ["x_d", const("c1", np.float32(1.0))], ["x_n"]))
    nodes.append(helper.make_node("Transpose", ["x_n"], ["x_nchw"], perm=[0, 3, 1, 2]))

    # Keras kernels: conv (kh, kw, in, out) -> OIHW; depthwise (kh, kw, c, 1) -> (c, 1, kh, kw).
    x = conv_bn_relu6("x_nchw", "conv1", layers["conv1"]["kernel"].transpose(3, 2, 0, 1), 2, 1)
    for block in range(1, 14):
        dw = layers[f"conv_dw_{block}"]["depthwise_kernel"].transpose(2, 3, 0, 1)
        stride = 2 if block in STRIDE_2_BLOCKS else 1
        x = conv_bn_relu6(x, f"conv_dw_{block}", dw, stride, dw.shape[0])
        pw = layers[f"conv_pw_{block}"]["kernel"].transpose(3, 2, 0, 1)
        x = conv_bn_relu6(x, f"conv_pw_{block}", pw, 1, 1)

    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["features"], axis=1))
    dense = layers["dense_1"]
    nodes.append(
        helper.make_node(
            "Gemm",
            ["features", const("dense_W", dense["kernel"]), const("dense_B", dense["bias"])],
            ["logits"],
        )
    )
    nodes.append(helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], axis=1))

    graph = helper.make_graph(
        nodes,
        "nima_mobilenet_aesthetic",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.UINT8, ["N", INPUT_SIZE, INPUT_SIZE, 3]
            )
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="city-wiki image_ranking",
        doc_string="NIMA MobileNet (idealo, AVA aesthetic) converted from Keras 2.1.6 weights",
    )
    model.ir_version = 8
    return model


def validate_onnx(path: Path, input_shape: list, output_shape: list) -> None:
    """onnx.checker plus the expected input/output names and shapes (symbolic batch)."""
    import onnx  # conversion only (see the top)

    try:
        onnx.checker.check_model(str(path))
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ConversionError(f"{path}: invalid ONNX model ({exc})") from exc

    def shape(value_info) -> list:
        dims = value_info.type.tensor_type.shape.dim
        return [d.dim_value if d.HasField("dim_value") else None for d in dims]

    inputs = [shape(v) for v in model.graph.input]
    outputs = [shape(v) for v in model.graph.output]
    if not inputs or inputs[0][1:] != input_shape[1:] or len(inputs[0]) != len(input_shape):
        raise ConversionError(f"{path}: input shape {inputs[:1]}, expected {input_shape}")
    if not outputs or outputs[0][1:] != output_shape[1:] or len(outputs[0]) != len(output_shape):
        raise ConversionError(f"{path}: output shape {outputs[:1]}, expected {output_shape}")


def convert(h5_path: Path, onnx_path: Path) -> None:
    """Read the Keras weights, build the graph, write and validate it."""
    import onnx  # conversion only (see the top)

    model = build_onnx(read_keras_weights(h5_path))
    onnx.save(model, str(onnx_path))
    validate_onnx(onnx_path, [None, INPUT_SIZE, INPUT_SIZE, 3], [None, 10])
