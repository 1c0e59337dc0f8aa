"""SFace (OpenCV Zoo ``face_recognition_sface_2021dec``) as a float PyTorch module, and its ONNX reader.

The int8 ONNX of the zoo is a MobileFaceNet-style network: a 3x3 stem and thirteen depthwise 3x3 +
pointwise 1x1 pairs, every convolution followed by BatchNorm and PReLU (27 units), then
BatchNorm, dropout (identity at inference), a fully connected layer to 128 values and a final
BatchNorm. Its convolution and fully connected weights are stored block-quantized
(``DequantizeLinear`` with ``block_size``/``axis``: int8 values, one float scale and one int8 zero
point per block of ``block_size`` values along ``axis``); everything else is float.

:func:`state_dict_from_onnx` dequantizes every weight once, checks that the graph is exactly the
network :class:`SFace` builds (operators, kernel sizes, strides, groups, epsilons, input scaling)
and returns its state dict. The network computes what the ONNX graph computes, in float.

Input: NCHW RGB in 0..255 of the 112x112 ArcFace-template crop (OpenCV's ``FaceRecognizerSF``
feeds ``blobFromImage(crop, swapRB=true)`` of its BGR crop); the graph's own first two nodes,
``(x - 127.5) * 0.0078125``, are part of the module (buffers read from the file). Output: the
128-d feature, not normalised (``FaceRecognizerSF.feature`` returns it as is).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

#: (name in the ONNX graph, in channels, out channels, kernel, stride, groups) of the 27 units.
_POINTWISE = (64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)
_DW_STRIDE = {3: 2, 5: 2, 7: 2, 13: 2}


def _units() -> tuple[tuple[str, int, int, int, int, int], ...]:
    units = [("conv_1", 3, 32, 3, 1, 1)]
    c = 32
    for i, out in enumerate(_POINTWISE, start=2):
        units.append((f"conv_{i}_dw", c, c, 3, _DW_STRIDE.get(i, 1), c))
        units.append((f"conv_{i}", c, out, 1, 1, 1))
        c = out
    return tuple(units)


UNITS = _units()
INPUT_SIZE = 112
EMBEDDING_DIM = 128
FEATURE_CHANNELS = UNITS[-1][2]
FEATURE_SIDE = INPUT_SIZE // 16  # four stride-2 units
UNIT_BN_EPS = 1e-3
HEAD_BN_EPS = 2e-5


class SFace(nn.Module):
    """The SFace network in float: (N, 3, 112, 112) RGB 0..255 -> (N, 128) feature (not normalised)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.tensor(127.5))
        self.register_buffer("input_scale", torch.tensor(1 / 128))
        self.features = nn.Sequential(*[
            nn.Sequential(
                nn.Conv2d(cin, cout, k, stride=s, padding=k // 2, groups=g, bias=False),
                nn.BatchNorm2d(cout, eps=UNIT_BN_EPS),
                nn.PReLU(cout),
            )
            for _, cin, cout, k, s, g in UNITS
        ])
        self.bn = nn.BatchNorm2d(FEATURE_CHANNELS, eps=HEAD_BN_EPS)
        self.fc = nn.Linear(FEATURE_CHANNELS * FEATURE_SIDE**2, EMBEDDING_DIM)
        self.fc_bn = nn.BatchNorm1d(EMBEDDING_DIM, eps=HEAD_BN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"SFace takes (N, 3, {INPUT_SIZE}, {INPUT_SIZE}) RGB in 0..255; got {tuple(x.shape)}")
        x = (x - self.input_mean) * self.input_scale
        x = self.bn(self.features(x))
        return self.fc_bn(self.fc(torch.flatten(x, 1)))


def fused(model: SFace) -> nn.Module:
    """An inference copy of ``model`` with each unit's BatchNorm folded into its convolution
    (``torch.nn.utils.fusion.fuse_conv_bn_eval``): the same function to float rounding, about a
    sixth faster one face at a time on one CPU thread. Frozen, eval mode; ``model`` is left as it is."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    out = copy.deepcopy(model).eval()
    for unit in out.features:  # (conv, BatchNorm, PReLU)
        unit[0], unit[1] = fuse_conv_bn_eval(unit[0], unit[1]), nn.Identity()
    return out.requires_grad_(False)


# ------------------------------------------------------------------------------------- ONNX reading


class SFaceGraphError(ValueError):
    """The ONNX graph is not the SFace network this module builds."""


def _attrs(node) -> dict:  # noqa: ANN001 - onnx.NodeProto
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int = 1,
               block_size: int = 0) -> np.ndarray:
    """ONNX ``DequantizeLinear``: ``(q - zero_point) * scale`` in float32.

    ``block_size`` > 0: ``scale`` (and ``zero_point``) hold one value per block of ``block_size``
    consecutive elements along ``axis`` (their shape is ``q``'s with that axis ceil-divided);
    otherwise ``scale`` is a scalar (per tensor) or a 1-D array along ``axis`` (per axis).
    """
    q = np.asarray(q)
    scale = np.asarray(scale, dtype=np.float32)
    zp = np.zeros_like(scale, dtype=np.int32) if zero_point is None else np.asarray(zero_point).astype(np.int32)
    axis = axis % q.ndim
    if block_size > 0:
        blocks = -(-q.shape[axis] // block_size)
        expected = q.shape[:axis] + (blocks,) + q.shape[axis + 1:]
        if scale.shape != expected or zp.shape != expected:
            raise SFaceGraphError(f"block scales of shape {scale.shape} / zero points {zp.shape} do not fit "
                                  f"{q.shape} in blocks of {block_size} along axis {axis} (expected {expected})")
        take = np.arange(q.shape[axis])
        scale = np.take(np.repeat(scale, block_size, axis=axis), take, axis=axis)
        zp = np.take(np.repeat(zp, block_size, axis=axis), take, axis=axis)
    elif scale.ndim == 1 and scale.size > 1:
        if scale.size != q.shape[axis]:
            raise SFaceGraphError(f"{scale.size} per-axis scales for axis {axis} of {q.shape}")
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q.astype(np.int32) - zp).astype(np.float32) * scale).astype(np.float32)


def _values(graph) -> dict[str, np.ndarray]:  # noqa: ANN001 - onnx.GraphProto
    """Initializers, constants, dequantized and reshaped weights by tensor name."""
    from onnx import numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            values[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
        elif node.op_type == "DequantizeLinear":
            a = _attrs(node)
            zp = values[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            values[node.output[0]] = dequantize(values[node.input[0]], values[node.input[1]], zp,
                                                a.get("axis", 1), a.get("block_size", 0))
        elif node.op_type == "Reshape" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]].reshape(tuple(int(d) for d in values[node.input[1]]))
    return values


def _bn(values: dict[str, np.ndarray], node, eps: float, where: str, problems: list[str]) -> dict[str, Tensor]:  # noqa: ANN001
    got = _attrs(node).get("epsilon", 1e-5)
    if abs(got - eps) > 1e-9:
        problems.append(f"{where}: BatchNormalization epsilon {got}, expected {eps}")
    gamma, beta, mean, var = (torch.from_numpy(np.ascontiguousarray(values[n], dtype=np.float32))
                              for n in node.input[1:5])
    return {"weight": gamma, "bias": beta, "running_mean": mean, "running_var": var,
            "num_batches_tracked": torch.tensor(0, dtype=torch.long)}


def state_dict_from_onnx(file: str | Path) -> dict[str, Tensor]:
    """Dequantized float weights of the SFace ONNX ``file`` as a :class:`SFace` state dict.

    Raises :class:`SFaceGraphError` when the graph differs from the network :class:`SFace` builds.
    """
    import onnx

    graph = onnx.load(str(file)).graph
    values = _values(graph)
    ops = [n for n in graph.node if n.op_type not in ("Constant", "DequantizeLinear", "Reshape")]
    kinds = [n.op_type for n in ops]
    expected = ["Sub", "Mul", *["Conv", "BatchNormalization", "PRelu"] * len(UNITS),
                "BatchNormalization", "Dropout", "Flatten", "Gemm", "BatchNormalization"]
    if kinds != expected:
        raise SFaceGraphError(f"{file}: operators {kinds[:8]}... ({len(kinds)}) are not SFace's ({len(expected)})")
    problems: list[str] = []
    state: dict[str, Tensor] = {
        "input_mean": torch.tensor(float(values[ops[0].input[1]].reshape(()))),
        "input_scale": torch.tensor(float(values[ops[1].input[1]].reshape(()))),
    }
    for i, (name, cin, cout, k, s, g) in enumerate(UNITS):
        conv, bn, prelu = ops[2 + 3 * i: 5 + 3 * i]
        a = _attrs(conv)
        weight = values[conv.input[1]]
        got = (tuple(weight.shape), list(a.get("strides", [1, 1])), a.get("group", 1), list(a.get("pads", [0] * 4)),
               len(conv.input))
        want = ((cout, cin // g, k, k), [s, s], g, [k // 2] * 4, 2)
        if got != want or not conv.output[0].startswith(name):
            problems.append(f"unit {i} ({conv.output[0]}): weight, strides, groups, pads, inputs {got}; expected {want}")
            continue
        state[f"features.{i}.0.weight"] = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
        state.update({f"features.{i}.1.{k_}": v for k_, v in _bn(values, bn, UNIT_BN_EPS, name, problems).items()})
        slope = values[prelu.input[1]]
        if slope.size != cout:
            problems.append(f"{name}: PReLU slope of shape {slope.shape}, expected {cout} values")
        state[f"features.{i}.2.weight"] = torch.from_numpy(np.ascontiguousarray(slope.reshape(cout), dtype=np.float32))
    head_bn, _, _, gemm, fc_bn = ops[2 + 3 * len(UNITS):]
    state.update({f"bn.{k_}": v for k_, v in _bn(values, head_bn, HEAD_BN_EPS, "bn1", problems).items()})
    ga = _attrs(gemm)
    if (ga.get("transA", 0), ga.get("transB", 0), ga.get("alpha", 1.0), ga.get("beta", 1.0)) != (0, 1, 1.0, 1.0):
        problems.append(f"Gemm attributes {ga}, expected transB=1, alpha=beta=1")
    state["fc.weight"] = torch.from_numpy(np.ascontiguousarray(values[gemm.input[1]], dtype=np.float32))
    state["fc.bias"] = torch.from_numpy(np.ascontiguousarray(values[gemm.input[2]], dtype=np.float32))
    state.update({f"fc_bn.{k_}": v for k_, v in _bn(values, fc_bn, HEAD_BN_EPS, "fc1", problems).items()})
    if problems:
        raise SFaceGraphError(f"{file} is not the expected SFace graph: " + "; ".join(problems))
    try:  # names and shapes must fit exactly
        SFace().load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise SFaceGraphError(f"{file}: weights do not fit SFace: {exc}") from exc
    return state
