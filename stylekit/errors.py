"""The exceptions stylekit raises for bad input. All derive from :class:`StylekitError`."""

from __future__ import annotations


class StylekitError(Exception):
    """Base class of every error stylekit raises on purpose."""


class ImageError(StylekitError, ValueError):
    """An image argument could not be used (missing, unreadable, truncated, too small, too big...)."""


class ShapeError(StylekitError, ValueError):
    """An array or tensor has the wrong shape, dtype or values."""


class ArgumentError(StylekitError, ValueError):
    """A non-image argument (alpha, device, size, ...) is out of range or unknown."""


class WeightsError(StylekitError):
    """A weights file is missing, corrupted, has the wrong checksum or does not fit the model."""
