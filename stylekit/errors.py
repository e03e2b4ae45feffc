"""The exceptions stylekit raises for bad input (all derive from :class:`StylekitError`), and
the one warning it gives (:class:`PerformanceWarning`)."""

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


class MissingDependencyError(StylekitError, ImportError):
    """An optional package that a feature needs is not installed (the message names the pip extra
    that brings it, e.g. ``pip install 'stylekit-nst[video]'``)."""


class PerformanceWarning(UserWarning):
    """A request that works but runs far slower than it could, such as bf16 on a CPU without
    bf16 hardware: the message says what to ask for instead. Nothing is changed behind your back.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("error", PerformanceWarning)  # an exception instead, here
    """
