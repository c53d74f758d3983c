"""Builds models/built/dlib-face-resnet.onnx: dlib's face-recognition ResNet for ONNX Runtime.

dlib's own Python module runs this network on the CPU without BLAS here (dlib-bin), at 100-200 ms per face; the
same network under ONNX Runtime takes a few milliseconds. The weights come from the pip package
face-recognition-models (dlib_face_recognition_resnet_model_v1.dat, public domain, Davis King). dlib's Python
module gives no access to the layers, so this script reads the file itself: a numpy parser of dlib's serialization
format, written from dlib's sources (dlib/serialize.h, dlib/float_details.h, dlib/dnn/core.h, layers.h, input.h,
tensor.h, loss.h), rebuilds the network in torch and exports it. The architecture is the one of
tools/python/src/face_recognition.cpp (the same as examples/dnn_face_recognition_ex.cpp); the parser checks every
layer of the file against it and must consume the whole file, so a different model fails loudly.

The ONNX graph takes uint8 RGB face chips [N,150,150,3], aligned as dlib.get_face_chip(img, shape, size=150,
padding=0.25) makes them (which is what compute_face_descriptor does inside), and returns the 128-D descriptors
[N,128] that dlib's face_recognition_model_v1.compute_face_descriptor returns (num_jitters=0).

Writes a .partial file and renames it, so the output is whole or absent; skipped when the output exists.
Usage: .venv/bin/python scripts/build_face_embedder.py [output.onnx]
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from jerseynum.photos.identity import FACE_CHIP_PX, face_models_folder

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "models" / "built" / "dlib-face-resnet.onnx"
DAT_NAME = "dlib_face_recognition_resnet_model_v1.dat"


def model_file() -> Path:
    return face_models_folder() / DAT_NAME


# ---------------------------------------------------------------------------------------------------------------
# The architecture, as nested lists of layer specs, outermost layer first: the order in which dlib writes the
# version numbers of its layer wrappers (each add_layer writes its version, then its subnetwork, then its own
# fields, so the versions come outside-in and the fields inside-out). These mirror the C++ template aliases.


def block(n, stride, sub):  # BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>, BN = affine
    return [("affine",), ("con", n, 3, 1), ("relu",), ("affine",), ("con", n, 3, stride), *sub]


def ares(n, sub):  # relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [("relu",), ("add_prev", 1), *block(n, 1, [("tag", 1), *sub])]


def ares_down(n, sub):  # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return [("relu",), ("add_prev", 2), ("avg_pool", 2, 2), ("skip", 1), ("tag", 2), *block(n, 2, [("tag", 1), *sub])]


def architecture():
    stem = [("max_pool", 3, 2), ("relu",), ("affine",), ("con", 32, 7, 2)]  # the con sits on input_rgb_image_sized
    level4 = ares(32, ares(32, ares(32, stem)))
    level3 = ares(64, ares(64, ares(64, ares_down(64, level4))))
    level2 = ares(128, ares(128, ares_down(128, level3)))
    level1 = ares(256, ares(256, ares_down(256, level2)))
    level0 = ares_down(256, level1)
    return [("fc", 128), ("avg_pool", 0, 1), *level0]  # loss_metric<fc_no_bias<128,avg_pool_everything<...>>>


# ---------------------------------------------------------------------------------------------------------------
# dlib's serialization format (dlib/serialize.h).


class FormatError(Exception):
    pass


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def fail(self, message: str):
        raise FormatError(f"{DAT_NAME}, byte {self.pos}: {message}")

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            self.fail(f"file ends inside a field of {count} bytes")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def int(self) -> int:
        # A control byte (0x80: negative, low 4 bits: byte count; 0x70 is never written), then |value| little-endian.
        control = self.take(1)[0]
        size = control & 0x0F
        if control & 0x70 or size > 8:
            self.fail(f"bad integer control byte {control:#04x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def uint(self) -> int:
        value = self.int()
        if value < 0:
            self.fail(f"negative value {value} where an unsigned one belongs")
        return value

    def real(self) -> float:
        # float_details: an int64 mantissa then an int16 exponent, value mantissa * 2**exponent (exact in a double).
        mantissa, exponent = self.int(), self.int()
        if exponent >= 32000:  # float_details::is_inf, is_ninf, is_nan
            return (math.inf, -math.inf, math.nan)[min(exponent - 32000, 2)]
        return math.ldexp(mantissa, exponent)

    def string(self) -> str:
        return self.take(self.uint()).decode("latin-1")

    def bool(self) -> bool:
        char = self.take(1)
        if char not in (b"0", b"1"):
            self.fail(f"bad bool {char!r}")
        return char == b"1"

    def expect(self, value, expected, what: str):
        if value != expected:
            self.fail(f"{what}: expected {expected!r}, found {value!r}")
        return value

    def tensor(self) -> np.ndarray:
        self.expect(self.int(), 2, "tensor version")  # version 2: raw little-endian IEEE floats (tensor.h)
        shape = tuple(self.uint() for _ in range(4))  # num_samples, k, nr, nc
        count = math.prod(shape)
        return np.frombuffer(self.take(4 * count), dtype="<f4").astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, ...]:  # alias_tensor: only a shape, a view into the layer's params
        self.expect(self.int(), 1, "alias_tensor version")
        return tuple(self.uint() for _ in range(4))


def slices(params: np.ndarray, *shapes) -> list[np.ndarray]:
    """Splits a layer's flat params tensor into the alias_tensors laid end to end in it."""
    flat, parts, offset = params.reshape(-1), [], 0
    for shape in shapes:
        size = math.prod(shape)
        parts.append(flat[offset : offset + size].reshape(shape))
        offset += size
    if offset != flat.size:
        raise FormatError(f"params hold {flat.size} values, the aliases {offset}")
    return parts


def read_details(r: Reader, spec) -> dict:
    """One layer's own fields (layers.h), checked against its spec; returns the weights it needs."""
    kind = spec[0]
    if kind == "con":
        _, filters, size, stride = spec
        r.expect(r.string(), "con_4", "layer")
        params = r.tensor()
        fields = [r.int() for _ in range(7)]  # num_filters, nr, nc, stride_y, stride_x, padding_y, padding_x
        r.expect(fields[:5], [filters, size, size, stride, stride], "con_ geometry")
        # dlib pads by size/2 only when stride is 1; the file stores it, and older files differ, so take it.
        r.expect(fields[5], fields[6], "con_ padding_y == padding_x")
        weight_shape, bias_shape = r.alias(), r.alias()
        for _ in range(4):  # learning-rate and weight-decay multipliers: training only
            r.real()
        weight, bias = slices(params, weight_shape, bias_shape)
        return {"weight": weight, "bias": bias.reshape(-1), "stride": stride, "padding": fields[5]}
    if kind == "affine":  # a batch norm frozen into y = gamma*x + beta
        r.expect(r.string(), "affine_", "layer")
        params = r.tensor()
        gamma_shape, beta_shape = r.alias(), r.alias()
        r.expect(r.int(), 0, "affine_ mode (CONV_MODE: one gamma and beta per channel)")
        r.expect(gamma_shape, beta_shape, "affine_ gamma and beta shapes")
        r.expect((gamma_shape[0], *gamma_shape[2:]), (1, 1, 1), "affine_ gamma shape [1,k,1,1]")
        gamma, beta = slices(params, gamma_shape, beta_shape)
        return {"gamma": gamma, "beta": beta}
    if kind in ("relu", "add_prev"):
        r.expect(r.string(), kind + "_", "layer")
        return {}
    if kind in ("max_pool", "avg_pool"):
        _, size, stride = spec
        r.expect(r.string(), kind + "_2", "layer")
        fields = [r.int() for _ in range(6)]  # nr, nc, stride_y, stride_x, padding_y, padding_x
        r.expect(fields[:4], [size, size, stride, stride], f"{kind}_ geometry")
        r.expect(fields[4], fields[5], f"{kind}_ padding_y == padding_x")
        return {"padding": fields[4]}
    if kind == "fc":
        r.expect(r.string(), "fc_2", "layer")
        outputs, inputs = r.uint(), r.uint()
        r.expect(outputs, spec[1], "fc_ num_outputs")
        params = r.tensor()
        weight_shape, bias_shape = r.alias(), r.alias()
        r.expect(r.int(), 1, "fc_ bias mode (FC_NO_BIAS)")
        for _ in range(4):
            r.real()
        r.expect(weight_shape, (inputs, outputs, 1, 1), "fc_ weights shape")
        (weight,) = slices(params, weight_shape)  # [num_inputs, num_outputs]: output = input @ weight
        return {"weight": weight.reshape(inputs, outputs)}
    raise AssertionError(kind)


def read_add_layer_state(r: Reader, version: int) -> None:
    # add_layer's training state after the details: 3 bools, x_grad, cached_output, and from version 2 params_grad.
    for _ in range(3):
        r.bool()
    for _ in range(3 if version >= 2 else 2):
        r.tensor()


def parse(data: bytes):
    """The network's layers, innermost first, each as (spec, weights); and the input layer's channel means."""
    r = Reader(data)
    specs = architecture()
    r.expect(r.int(), 1, "add_loss_layer version")
    r.expect(r.string(), "loss_metric_2", "loss layer")
    r.real(), r.real()  # margin and distance threshold: training only
    versions = []
    for spec in specs[:-1]:
        version = r.int()
        if spec[0] in ("tag", "skip"):  # add_tag_layer, add_skip_layer: a version and the subnetwork, nothing else
            r.expect(version, 1, f"{spec[0]} layer version")
        elif version not in (1, 2):
            r.fail(f"add_layer version {version} (expected 1 or 2) for {spec}")
        versions.append(version)
    # The innermost add_layer, whose subnetwork is the input layer (its own serialize in core.h).
    version = r.int()
    if version not in (2, 3):
        r.fail(f"input add_layer version {version} (expected 2 or 3)")
    r.expect(r.string(), "input_rgb_image_sized", "input layer")
    means = [r.real() for _ in range(3)]  # avg_red, avg_green, avg_blue
    r.expect((r.uint(), r.uint()), (FACE_CHIP_PX, FACE_CHIP_PX), "input size")
    layers = [(specs[-1], read_details(r, specs[-1]))]
    for _ in range(3):
        r.bool()
    for _ in range(3):  # x_grad, cached_output, grad_final
        r.tensor()
    if version >= 3:
        r.uint()  # _sample_expansion_factor
    for spec, version in zip(reversed(specs[:-1]), reversed(versions)):
        if spec[0] in ("tag", "skip"):
            layers.append((spec, {}))
            continue
        layers.append((spec, read_details(r, spec)))
        read_add_layer_state(r, version)
    if r.pos != len(data):
        r.fail(f"{len(data) - r.pos} bytes left after the network")
    return layers, means


# ---------------------------------------------------------------------------------------------------------------
# The network in torch, run layer by layer as dlib does (innermost first), with the tag/skip/add_prev bookkeeping.


class DlibFaceResNet(torch.nn.Module):
    def __init__(self, layers, means):
        super().__init__()
        self.register_buffer("means", torch.tensor(means, dtype=torch.float32).view(1, 3, 1, 1))
        self.steps = []  # (kind, argument): the forward pass as a flat program
        self.weights = torch.nn.ModuleList()
        shape, tags = (3, FACE_CHIP_PX, FACE_CHIP_PX), {}  # static shapes, so that add_prev's padding is constant
        for spec, w in layers:
            kind = spec[0]
            if kind == "con":
                out_ch, in_ch, size, _ = w["weight"].shape
                if in_ch != shape[0]:
                    raise FormatError(f"con_ expects {in_ch} channels, gets {shape[0]}")
                conv = torch.nn.Conv2d(in_ch, out_ch, size, stride=w["stride"], padding=w["padding"])
                conv.weight.data = torch.from_numpy(w["weight"].copy())
                conv.bias.data = torch.from_numpy(w["bias"].copy())
                self.steps.append(("module", len(self.weights)))
                self.weights.append(conv)
                side = [1 + (s + 2 * w["padding"] - size) // w["stride"] for s in shape[1:]]
                shape = (out_ch, *side)
            elif kind == "affine":
                affine = torch.nn.Module()
                affine.register_buffer("gamma", torch.from_numpy(w["gamma"].copy()))
                affine.register_buffer("beta", torch.from_numpy(w["beta"].copy()))
                self.steps.append(("affine", len(self.weights)))
                self.weights.append(affine)
            elif kind == "relu":
                self.steps.append(("relu", None))
            elif kind in ("max_pool", "avg_pool"):
                _, size, stride = spec
                if size == 0:  # avg_pool_everything: one window over the whole plane
                    self.steps.append(("mean", None))
                    shape = (shape[0], 1, 1)
                    continue
                # dlib averages over the in-bounds part of a window (subm_clipped): count_include_pad=False.
                pool_class = torch.nn.MaxPool2d if kind == "max_pool" else torch.nn.AvgPool2d
                extra = {} if kind == "max_pool" else {"count_include_pad": False}
                self.steps.append(("module", len(self.weights)))
                self.weights.append(pool_class(size, stride, padding=w["padding"], **extra))
                side = [1 + (s + 2 * w["padding"] - size) // stride for s in shape[1:]]
                shape = (shape[0], *side)
            elif kind == "tag":
                self.steps.append(("tag", spec[1]))
                tags[spec[1]] = shape
            elif kind == "skip":
                self.steps.append(("skip", spec[1]))
                shape = tags[spec[1]]
            elif kind == "add_prev":
                # dlib adds tensors of different sizes into one of the larger size of each dimension, the smaller
                # read as zero beyond its end (cpu_dlib.cpp, add): pad each at the end of C, H and W.
                other = tags[spec[1]]
                out = tuple(max(a, b) for a, b in zip(shape, other))
                pads = [tuple(p for o, s in zip(out[::-1], x[::-1]) for p in (0, o - s)) for x in (shape, other)]
                self.steps.append(("add_prev", (spec[1], *pads)))
                shape = out
            elif kind == "fc":
                if math.prod(shape) != w["weight"].shape[0]:
                    raise FormatError(f"fc_ expects {w['weight'].shape[0]} inputs, gets {shape}")
                self.register_buffer("fc", torch.from_numpy(w["weight"].copy()))
                self.steps.append(("fc", None))
                shape = (w["weight"].shape[1],)
        self.output_shape = shape

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        # input_rgb_image_sized: (pixel - channel mean) / 256, channels first.
        x = (chips.permute(0, 3, 1, 2).float() - self.means) / 256.0
        tags = {}
        for kind, arg in self.steps:
            if kind == "module":
                x = self.weights[arg](x)
            elif kind == "affine":
                x = x * self.weights[arg].gamma + self.weights[arg].beta
            elif kind == "relu":
                x = F.relu(x)
            elif kind == "mean":
                x = x.mean(dim=(2, 3), keepdim=True)
            elif kind == "tag":
                tags[arg] = x
            elif kind == "skip":
                x = tags[arg]
            elif kind == "add_prev":
                tag, pad_x, pad_other = arg
                other = tags[tag]
                x = (F.pad(x, pad_x) if any(pad_x) else x) + (F.pad(other, pad_other) if any(pad_other) else other)
            elif kind == "fc":
                x = x.flatten(1) @ self.fc
        return x


def test_chips(count: int) -> np.ndarray:
    """Deterministic uint8 chips, smooth like faces rather than noise (noise keeps every ReLU unusually busy)."""
    rng = np.random.default_rng(0)
    coarse = torch.from_numpy(rng.integers(0, 256, size=(count, 3, 10, 10)).astype(np.float32))
    chips = F.interpolate(coarse, size=FACE_CHIP_PX, mode="bilinear").round().clamp(0, 255).to(torch.uint8)
    return chips.permute(0, 2, 3, 1).contiguous().numpy()


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else TARGET
    if target.is_file() and target.stat().st_size > 0:
        return
    source = model_file()
    layers, means = parse(source.read_bytes())
    model = DlibFaceResNet(layers, means).eval()
    if model.output_shape != (128,):
        raise FormatError(f"the network ends in {model.output_shape}, not 128 values")

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    chips = test_chips(2)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice and constant-folding remarks
        torch.onnx.export(model, (torch.from_numpy(chips),), partial, input_names=["chips"],
                          output_names=["descriptors"], dynamic_axes={"chips": {0: "batch"}, "descriptors": {0: "batch"}},
                          opset_version=17, dynamo=False)  # fmt: skip
    import dlib
    import onnx
    import onnxruntime

    graph = onnx.load(partial)
    graph.doc_string = (f"dlib's face-recognition ResNet ({DAT_NAME}, face-recognition-models 0.3.0), built by "
                        "scripts/build_face_embedder.py. Input: uint8 RGB face chips [N,150,150,3] as "
                        "dlib.get_face_chip(img, shape, size=150, padding=0.25) makes them. Output: the 128-D "
                        "descriptors of dlib's compute_face_descriptor.")  # fmt: skip
    onnx.save(graph, partial)
    # End to end, the file must give dlib's own descriptors before it takes the target's name (measured on real
    # faces: within 1e-6; dlib's same-person threshold on their distance is 0.6).
    session = onnxruntime.InferenceSession(str(partial), providers=["CPUExecutionProvider"])
    got = session.run(None, {"chips": chips})[0]
    recognizer = dlib.face_recognition_model_v1(str(source))
    expected = np.stack([np.array(recognizer.compute_face_descriptor(chip)) for chip in chips])
    if got.shape != expected.shape or np.abs(got - expected).max() > 1e-4:
        partial.unlink()
        sys.exit(f"build_face_embedder.py: the ONNX network differs from dlib's by {np.abs(got - expected).max():.3g}")
    partial.replace(target)
    print(f"built {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")


if __name__ == "__main__":
    main()
