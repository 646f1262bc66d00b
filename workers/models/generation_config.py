"""generation_config.json: a checkpoint's end-of-sequence ids and its default sampling.

transformers' `generate()` stops on this file's `eos_token_id` (an int or a list: many
instruct models list their end-of-turn ids only here). Its sampling values are the model
author's defaults; Laneway applies them the way vLLM does with `--generation-config auto`:

    the request's value  >  the endpoint policy's default  >  generation_config.json  >  OpenAI's default

(OpenAI's defaults: temperature 1, top_p 1, top_k off). Only temperature, top_p and top_k
are read; `do_sample` is ignored as vLLM ignores it, so a file with `do_sample: false` and a
temperature samples at that temperature. An endpoint that must serve OpenAI's defaults
whatever the model says sets them in its policy's `sampling` block.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.models.errors import ModelLoadError

FILE_NAME = "generation_config.json"


@dataclass(frozen=True)
class SamplingDefaults:
    """The model's own sampling defaults; None where the checkpoint sets none."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None


@dataclass(frozen=True)
class GenerationConfig:
    eos_token_ids: tuple[int, ...] = ()
    sampling: SamplingDefaults = SamplingDefaults()


def read_generation_config(path: Path) -> GenerationConfig:
    """The checkpoint directory's generation_config.json; a missing file sets nothing."""
    file = path / FILE_NAME
    if not file.is_file():
        return GenerationConfig()
    try:
        raw = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{file} is not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{file} must hold a JSON object")
    return parse_generation_config(raw, source=str(file))


def parse_generation_config(raw: dict[str, Any], source: str = FILE_NAME) -> GenerationConfig:
    """Values the engine could not sample with raise ModelLoadError naming `source` and the field."""
    sampling = SamplingDefaults(
        temperature=_number(raw, "temperature", source, lambda v: 0.0 <= v <= 2.0, "in [0, 2]"),
        top_p=_number(raw, "top_p", source, lambda v: 0.0 < v <= 1.0, "in (0, 1]"),
        top_k=_top_k(raw, source),
    )
    return GenerationConfig(eos_token_ids=token_ids(raw, "eos_token_id", source), sampling=sampling)


def token_ids(raw: dict[str, Any], key: str, source: str) -> tuple[int, ...]:
    """A field holding a token id, a list of them, or null (shared with config.json's)."""
    value = raw.get(key)
    ids = value if isinstance(value, list) else [] if value is None else [value]
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
        raise ModelLoadError(f"{source}: field '{key}' must be a token id or a list of them, got {value!r}")
    return tuple(ids)


def _number(raw: dict[str, Any], key: str, source: str, is_valid: Any, expected: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not is_valid(value):
        raise ModelLoadError(f"{source}: field '{key}' must be a number {expected}, got {value!r}")
    return float(value)


def _top_k(raw: dict[str, Any], source: str) -> int | None:
    value = raw.get("top_k")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ModelLoadError(f"{source}: field 'top_k' must be an integer >= 0 (0: off), got {value!r}")
    return value
