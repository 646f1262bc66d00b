"""Times the model's share of an engine step without changing what the step does.

The model runner calls `model(...)` then `model.compute_logits(...)`; this stand-in
forwards both to the real model and records their wall time, so a step's time splits
into the pure forward and everything else (scheduling, input preparation, sampling,
postprocessing).
"""

from __future__ import annotations

import time

import torch

from workers.models.llama import LlamaForCausalLM


class TimedModel:
    def __init__(self, model: LlamaForCausalLM) -> None:
        self.model = model
        self.seconds: list[float] = []  # one entry per step: forward + logits
        self._start = 0.0

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        self._start = time.perf_counter()
        return self.model(*args, **kwargs)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.model.compute_logits(hidden)
        if logits.is_cuda:  # queued GPU work is not done work
            torch.cuda.synchronize(logits.device)
        self.seconds.append(time.perf_counter() - self._start)
        return logits

    def __getattr__(self, name: str):  # config, layers, ...: whatever else the runner reads
        return getattr(self.model, name)
