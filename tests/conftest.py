"""Shared test setup."""

import os

# The stylekit command tunes the process's malloc (stylekit.device.tune_malloc); the tests call
# the command in this process, whose memory the reliability tests measure: keep it as it is.
os.environ["STYLEKIT_MALLOC"] = "default"
