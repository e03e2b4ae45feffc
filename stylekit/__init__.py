"""stylekit: arbitrary-style transfer with AdaIN (Huang & Belongie, ICCV 2017)."""

from .api import Style, StyleTransfer, transfer
from .decoder import Decoder
from .encoder import VGGEncoder
from .errors import (
    ArgumentError,
    ImageError,
    MissingDependencyError,
    PerformanceWarning,
    ShapeError,
    StylekitError,
    WeightsError,
)
from .export import export_onnx, export_torchscript
from .image import load_image, save_image
from .model import AdaINModel
from .ops import AdaIN, adain, mean_std

__version__ = "0.1.0"

__all__ = [
    "AdaIN", "AdaINModel", "ArgumentError", "Decoder", "ImageError", "ShapeError",
    "StylekitError", "VGGEncoder", "WeightsError", "adain", "mean_std", "__version__",
    "Style", "StyleTransfer", "transfer", "load_image", "save_image",
]  # fmt: skip
__all__ += ["export_onnx", "export_torchscript", "PerformanceWarning", "MissingDependencyError"]
