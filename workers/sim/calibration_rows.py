"""Measured passes from files: CSV/JSON rows, or `laneway bench engine` decode points.

Row form (CSV header or JSON keys): batch_size, num_tokens, kv_tokens, step_time_s, and
optionally attention_pairs. `kv_tokens` is the K/V context the pass reads, summed over its
sequences; attention_pairs defaults to kv_tokens (true of decode passes). A decode point
of `laneway bench engine` (batch_size, mean_context, forward_ms or step_ms) is B
sequences each computing one token after mean_context tokens: num_tokens = B, kv_tokens
= B * mean_context. The forward time is preferred: it is the part the simulator replaces.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from workers.engine.cost_fit import FitError, MeasuredStep
from workers.engine.step_shape import StepShape

ROW_KEYS = ("batch_size", "num_tokens", "kv_tokens", "step_time_s")
CSV_KEYS = (*ROW_KEYS, "attention_pairs")


def read_rows(path: Path) -> list[MeasuredStep]:
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = [k for k in ROW_KEYS if k not in (reader.fieldnames or [])]
            if missing:
                raise FitError(f"{path}: CSV header lacks {missing}; expected {', '.join(ROW_KEYS)}")
            return [_row(r, f"{path}:{i + 2}") for i, r in enumerate(reader)]
    data = json.loads(path.read_text())
    rows: list[MeasuredStep] = []
    _collect(data, str(path), rows)
    if not rows:
        raise FitError(f"{path}: no rows with {', '.join(ROW_KEYS)} and no decode points "
                       f"(batch_size, mean_context, forward_ms/step_ms) found")
    return rows


def write_rows(path: Path, rows: list[MeasuredStep]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_KEYS)
        for r in rows:
            s = r.shape
            w.writerow([s.num_seqs, s.num_tokens, s.kv_tokens_read, f"{r.seconds:.6f}", s.attention_pairs])


def _collect(node: Any, where: str, rows: list[MeasuredStep]) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _collect(item, f"{where}[{i}]", rows)
    elif isinstance(node, dict):
        if all(k in node for k in ROW_KEYS):
            rows.append(_row(node, where))
        elif "batch_size" in node and "mean_context" in node and ("forward_ms" in node or "step_ms" in node):
            b, ctx = int(node["batch_size"]), float(node["mean_context"])
            ms = float(node["forward_ms"] if "forward_ms" in node else node["step_ms"])
            kv = round(b * ctx)
            rows.append(MeasuredStep(StepShape(b, b, kv, kv), ms / 1000.0))
        else:
            for k, v in node.items():
                _collect(v, f"{where}.{k}", rows)


def _row(r: dict, where: str) -> MeasuredStep:
    try:
        b, t, kv = int(r["batch_size"]), int(r["num_tokens"]), int(r["kv_tokens"])
        seconds = float(r["step_time_s"])
        pairs = int(r.get("attention_pairs") or kv)  # decode passes: one query per seq, pairs == kv
    except (TypeError, ValueError) as exc:
        raise FitError(f"{where}: {exc}") from None
    return MeasuredStep(StepShape(b, t, kv, pairs), seconds)
