"""The one error a model directory or preset name the engine cannot serve raises."""

from __future__ import annotations


class ModelLoadError(ValueError):
    """Bad external input: names the file (or spec) and the field or weight at fault."""
