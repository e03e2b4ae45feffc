"""Optional dependencies (PyAV for video, onnx for export), imported only when a feature needs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["MissingDependencyError", "require"]  # the error lives in stylekit.errors; kept here for old imports


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"{feature} needs the package {module.split('.')[0]!r} ({e}); "
            f"install it with: pip install 'stylekit-nst[{extra}]'"
        ) from None
