"""What building a worker's engine yields (workers/build.py, workers/sim/build.py)."""

from __future__ import annotations

from typing import NamedTuple

from workers.engine.config import SchedulerConfig
from workers.engine.engine_loop import EngineLoop
from workers.engine.tokenizer import Tokenizer
from workers.models.config import ModelConfig


class BuiltEngine(NamedTuple):
    """What a worker serves with; unpacks as (loop, tokenizer, model_config, scheduler_config)."""

    loop: EngineLoop  # not started: the caller starts it once telemetry is attached
    tokenizer: Tokenizer
    model_config: ModelConfig  # vocab and eos ids the wire checks requests against
    scheduler_config: SchedulerConfig  # as served: max_model_len capped by the model's positions
