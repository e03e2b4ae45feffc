"""Export the whole pipeline (VGG encoder + AdaIN + decoder) as one ONNX or TorchScript graph.

The graph takes ``content`` (B, 3, H, W) and ``style`` (B or 1, 3, h, w), float32 RGB in
[0, 1], and ``alpha``, a float32 scalar in [0, 1]; it returns ``image`` (B, 3, H, W) in
[0, 1]. H, W, h, w are dynamic (at least 16 px each): the content is reflection-padded to a
multiple of 8 inside the graph and the result cropped back, as :func:`stylekit.transfer` does.
The style is used at the size it is given: stylekit itself first scales a style down so its
short side is at most the content's (but not below 64 px) and at most 512 px (with ``size=``:
to ``size``).

Example:
    >>> import stylekit
    >>> stylekit.export_onnx("stylekit.onnx")  # doctest: +SKIP
    PosixPath('stylekit.onnx')
    >>> import onnxruntime as ort  # doctest: +SKIP
    >>> sess = ort.InferenceSession("stylekit.onnx")  # doctest: +SKIP
    >>> image, = sess.run(None, {"content": c, "style": s, "alpha": np.array(0.8, np.float32)})  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._deps import require
from .decoder import Decoder
from .encoder import VGGEncoder
from .errors import ArgumentError
from .model import AdaINModel

__all__ = ["StylizeGraph", "export_onnx", "export_torchscript", "INPUT_NAMES", "OUTPUT_NAMES", "DEFAULT_OPSET",
           "DYNAMO_MIN_OPSET"]

DEFAULT_OPSET = 17
DYNAMO_MIN_OPSET = 18
"""The oldest opset the ``torch.export``-based exporter (``dynamo=True``) writes."""
INPUT_NAMES = ("content", "style", "alpha")
OUTPUT_NAMES = ("image",)
_EXAMPLE_SIZE = (56, 72)  # any size works; not a multiple of 8 on purpose, so the padding is traced


class StylizeGraph(nn.Module):
    """``(content, style, alpha) -> image``: the exportable form of :func:`stylekit.transfer`.

    Args:
        model: the :class:`~stylekit.AdaINModel` to wrap (used as is, not copied).

    Example:
        >>> g = StylizeGraph(AdaINModel(VGGEncoder(), Decoder()))
        >>> g(torch.rand(1, 3, 20, 30), torch.rand(1, 3, 16, 16), torch.tensor(0.5)).shape
        torch.Size([1, 3, 20, 30])
    """

    def __init__(self, model: AdaINModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, content: Tensor, style: Tensor, alpha: Tensor) -> Tensor:
        h, w = content.shape[-2], content.shape[-1]
        ph, pw = (-h) % 8, (-w) % 8
        top, left = ph // 2, pw // 2
        x = F.pad(content, (left, pw - left, top, ph - top), mode="reflect")
        y = self.model.stylize(x, self.model.style_stats(style), alpha)
        return y[..., top : top + h, left : left + w].clamp(0.0, 1.0)


def _graph(model: AdaINModel | Decoder | None) -> StylizeGraph:
    if model is None:
        model = AdaINModel.from_pretrained()
    elif isinstance(model, Decoder):
        model = AdaINModel(VGGEncoder.from_pretrained(), copy.deepcopy(model))
    elif isinstance(model, AdaINModel):
        model = copy.deepcopy(model)
    else:
        raise ArgumentError(f"model must be an AdaINModel, a Decoder or None, got {type(model).__name__}")
    model = model.to("cpu", torch.float32).eval().requires_grad_(False)
    return StylizeGraph(model).eval()


def _example_inputs() -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, *_EXAMPLE_SIZE, generator=g), torch.rand(1, 3, 64, 64, generator=g), torch.tensor(1.0)


def _check_path(path: str | Path, suffixes: tuple[str, ...]) -> Path:
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise ArgumentError(f"path={str(p)!r} should end in {' or '.join(suffixes)}")
    if p.is_dir():
        raise ArgumentError(f"path={str(p)!r} is a directory")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def export_onnx(
    path: str | Path, *, opset: int = DEFAULT_OPSET, model: AdaINModel | Decoder | None = None, dynamo: bool = False
) -> Path:
    """Write the encoder + AdaIN + decoder graph as one self-contained ONNX file.

    Inputs ``content`` (B, 3, H, W), ``style`` (B or 1, 3, h, w) and ``alpha`` (a float32
    scalar); output ``image`` (B, 3, H, W). Batch and spatial sizes are dynamic. fp32 weights
    (about 28 MB). The stylekit version and the decoder's metadata are
    stored in the file's metadata properties.

    Args:
        path: the ``.onnx`` file to write (parent folders are created).
        opset: ONNX opset version. The default exporter (TorchScript-based) does 11 to 20;
            with ``dynamo=True`` opset 18 and up.
        model: an :class:`~stylekit.AdaINModel` or a :class:`~stylekit.Decoder` (paired with
            the shipped encoder) to export instead of the shipped model. It is copied, not changed.
        dynamo: use PyTorch's ``torch.export``-based exporter (needs ``onnxscript``; slower).

    Returns:
        The path written.

    Raises:
        stylekit.MissingDependencyError: ``onnx`` (or, with ``dynamo=True``, ``onnxscript``) is missing.
        ArgumentError: a bad ``path``, ``opset`` or ``model``.
        WeightsError: ``model`` is None and the shipped weights are missing.
    """
    onnx = require("onnx", "export", "export_onnx")
    if isinstance(opset, bool) or not isinstance(opset, int) or not (11 <= opset <= 30):
        raise ArgumentError(f"opset must be an int between 11 and 30, got {opset!r}")
    if dynamo:
        if opset < DYNAMO_MIN_OPSET:
            raise ArgumentError(f"opset={opset}: the dynamo exporter needs opset {DYNAMO_MIN_OPSET} or later")
        require("onnxscript", "export", "export_onnx(dynamo=True)")
    p = _check_path(path, (".onnx",))
    graph = _graph(model)
    args = _example_inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings on the input checks, exporter deprecation notes
        if dynamo:
            dims = {n: {0: torch.export.Dim.AUTO, 2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO} for n in INPUT_NAMES[:2]}
            program = torch.onnx.export(
                graph, args, dynamo=True, opset_version=opset, input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES), dynamic_shapes={**dims, "alpha": None}, verbose=False,
            )  # fmt: skip
            assert program is not None  # dynamo=True returns the program
            proto = program.model_proto
        else:
            buf = io.BytesIO()
            axes = {"content": {0: "batch", 2: "height", 3: "width"}, "style": {0: "style_batch", 2: "style_height", 3: "style_width"},
                    "image": {0: "batch", 2: "height", 3: "width"}}  # fmt: skip
            torch.onnx.export(
                graph, args, buf,  # type: ignore[arg-type]  # a file object works; the stubs say path
                dynamo=False, opset_version=opset, input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES), dynamic_axes=axes,
            )  # fmt: skip
            proto = onnx.load_from_string(buf.getvalue())
    got = {o.domain: o.version for o in proto.opset_import}.get("", opset)
    if got != opset:
        raise ArgumentError(f"the exporter produced opset {got}, not the requested {opset}")
    _add_metadata(onnx, proto, graph.model)
    onnx.checker.check_model(proto)
    tmp = p.with_name(p.name + ".tmp")
    onnx.save_model(proto, str(tmp))
    tmp.replace(p)
    return p


def _metadata(model: AdaINModel) -> dict[str, str]:
    from . import __version__

    meta = {"stylekit_version": __version__, "inputs": "content (B,3,H,W), style (B|1,3,h,w): RGB float32 in [0,1]; alpha: float32 scalar in [0,1]"}
    meta.update({f"decoder_{k}": str(v) for k, v in getattr(model.decoder, "meta", {}).items()})
    return meta


def _add_metadata(onnx, proto, model: AdaINModel) -> None:
    proto.doc_string = "stylekit AdaIN style transfer: VGG-19 encoder + AdaIN + decoder"
    for k, v in _metadata(model).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v


def export_torchscript(path: str | Path, *, model: AdaINModel | Decoder | None = None) -> Path:
    """Write the same graph as :func:`export_onnx` as a traced TorchScript file (``torch.jit.load``).

    Same inputs and output, with dynamic sizes. Note that PyTorch has deprecated TorchScript in
    favour of ``torch.export``; the file loads with ``torch.jit.load`` (and from C++ with libtorch).

    Example:
        >>> export_torchscript("stylekit.pt")  # doctest: +SKIP
        >>> g = torch.jit.load("stylekit.pt")  # doctest: +SKIP
        >>> g(torch.rand(1, 3, 100, 150), torch.rand(1, 3, 128, 128), torch.tensor(0.8)).shape  # doctest: +SKIP
        torch.Size([1, 3, 100, 150])
    """
    p = _check_path(path, (".pt", ".pth", ".ts", ".torchscript"))
    graph = _graph(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings on the input checks; jit deprecation notes
        traced = torch.jit.trace(graph, _example_inputs(), check_trace=False)
        tmp = p.with_name(p.name + ".tmp")
        torch.jit.save(traced, str(tmp), _extra_files={"stylekit.json": json.dumps(_metadata(graph.model))})
    tmp.replace(p)
    return p
