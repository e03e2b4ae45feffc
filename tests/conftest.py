"""Shared test setup: the malloc setting, and the model with a random decoder most tests use."""

import os

import pytest
import torch

from stylekit import AdaINModel, Decoder, StyleTransfer, VGGEncoder

# The stylekit command tunes the process's malloc (stylekit.device.tune_malloc); the tests call
# the command in this process, whose memory the reliability tests measure: keep it as it is.
os.environ["STYLEKIT_MALLOC"] = "default"


@pytest.fixture(scope="module")
def tiny_model() -> AdaINModel:
    """The shipped encoder with a seeded random decoder: fast, and independent of training."""
    torch.manual_seed(0)
    return AdaINModel(VGGEncoder.from_pretrained(), Decoder())


@pytest.fixture(scope="module")
def stx(tiny_model: AdaINModel) -> StyleTransfer:
    """A fp32 CPU StyleTransfer around :func:`tiny_model`."""
    return StyleTransfer("cpu", "fp32", model=tiny_model)
