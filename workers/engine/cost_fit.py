"""Fit a LinearCost to measured passes by weighted least squares (`laneway calibrate`, and the
worker's own step-time model, online_cost.py).

Each row is one measured pass: its StepShape and its seconds. The fit minimises the
*relative* error (rows weighted by 1/time^2): passes range from a few ms (decode, B=1) to
hundreds (long prefills), and a plain fit would let the long ones decide everything.
A term the rows cannot tell apart from another (pure-decode rows have num_seqs ==
num_tokens) is an error naming both, never a silently arbitrary split.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from operator import mul

from workers.engine.linear_cost import LinearCost
from workers.engine.step_shape import StepShape

TERMS = ("fixed", "per_token", "per_kv_token", "per_pair", "per_seq")
HOST_TERMS = ("fixed", "per_seq", "per_token")  # host work: per sequence (sampling, detokenizing), per token


def default_terms(rows: list[MeasuredStep]) -> tuple[str, ...]:
    """The terms these rows can tell apart: per_kv_token only if the context per sequence
    varies (one context makes KV tokens a multiple of tokens), per_pair only if some row
    is a prefill chunk (decode rows have pairs == KV tokens)."""
    contexts = [r.shape.kv_tokens_read / r.shape.num_seqs for r in rows if r.shape.num_seqs]
    terms: tuple[str, ...] = ("fixed", "per_token")
    if contexts and max(contexts) > 1.25 * min(contexts):
        terms += ("per_kv_token",)
    if any(r.shape.attention_pairs != r.shape.kv_tokens_read for r in rows):
        terms += ("per_pair",)
    return terms


class FitError(ValueError):
    """The rows cannot determine the requested terms."""


@dataclass(frozen=True)
class MeasuredStep:
    shape: StepShape
    seconds: float


@dataclass(frozen=True)
class Fit:
    cost: LinearCost
    num_rows: int
    rms_rel_error: float  # sqrt(mean((pred - meas) / meas)^2)
    max_rel_error: float
    residuals: tuple[float, ...]  # (pred - meas) / meas, per row in input order

    def summary(self) -> str:
        return (f"{self.cost.describe()}\n  fit over {self.num_rows} passes: RMS relative error "
                f"{self.rms_rel_error:.1%}, worst {self.max_rel_error:.1%}")


# Each term's feature of a pass. A worker refits its model every few dozen steps on its engine
# thread (online_cost.py), so the fit runs over plain lists: no per-row dict, each row's
# features computed once, dot products in C (sum(map(mul, ...))), summed in row order as before.
_FEATURE: dict[str, Callable[[StepShape], float]] = {
    "fixed": lambda s: 1.0, "per_token": lambda s: float(s.num_tokens),
    "per_kv_token": lambda s: float(s.kv_tokens_read), "per_pair": lambda s: float(s.attention_pairs),
    "per_seq": lambda s: float(s.num_seqs),
}


def _features(shape: StepShape, terms: tuple[str, ...]) -> list[float]:
    return [_FEATURE[t](shape) for t in terms]


def fit_linear_cost(rows: list[MeasuredStep], terms: tuple[str, ...] | None = None, source: str = "") -> Fit:
    terms = default_terms(rows) if terms is None else terms
    unknown = [t for t in terms if t not in TERMS]
    if unknown:
        raise FitError(f"unknown terms {unknown}; choose from {', '.join(TERMS)}")
    if len(rows) < len(terms):
        raise FitError(f"{len(rows)} measured passes cannot fit {len(terms)} terms ({', '.join(terms)})")
    bad = [r for r in rows if r.seconds <= 0]
    if bad:
        raise FitError(f"a measured pass took {bad[0].seconds} s; times must be positive")
    feats = [_features(r.shape, terms) for r in rows]
    # Rows scaled by 1/time; columns then scaled to unit size so the normal equations stay well conditioned.
    cols = [[f / r.seconds for f, r in zip(col, rows)] for col in zip(*feats)]
    scale = [max(map(abs, col)) or 1.0 for col in cols]
    cols = [[v / sc for v in col] for col, sc in zip(cols, scale)]
    ata = [[sum(map(mul, ci, cj)) for cj in cols] for ci in cols]
    atb = [sum(col) for col in cols]  # targets are time/time = 1
    coef_scaled = _solve(ata, atb, terms)
    coefs = [c / sc for c, sc in zip(coef_scaled, scale)]
    coef = dict(zip(terms, coefs))
    cost = LinearCost(fixed_s=coef.get("fixed", 0.0), per_token_s=coef.get("per_token", 0.0),
                      per_kv_token_s=coef.get("per_kv_token", 0.0), per_pair_s=coef.get("per_pair", 0.0),
                      per_seq_s=coef.get("per_seq", 0.0), source=source)
    residuals = tuple((sum(map(mul, coefs, f)) - r.seconds) / r.seconds for f, r in zip(feats, rows))
    return Fit(cost, len(rows), math.sqrt(sum(e * e for e in residuals) / len(rows)),
               max(abs(e) for e in residuals), residuals)


def _solve(a: list[list[float]], b: list[float], terms: tuple[str, ...]) -> list[float]:
    """Gaussian elimination with partial pivoting; a near-zero pivot names the dependent term."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-9 * max(1.0, max(abs(v) for row in a for v in row)):
            raise FitError(f"the measurements cannot separate term {terms[col]!r} from {', '.join(terms[:col])}: "
                           f"vary the shapes (batch sizes, contexts, prefill chunks) or drop the term")
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(col + 1, n):
            f = m[r][col] / m[col][col]
            for c in range(col, n + 1):
                m[r][c] -= f * m[col][c]
    out = [0.0] * n
    for r in range(n - 1, -1, -1):
        out[r] = (m[r][n] - sum(m[r][c] * out[c] for c in range(r + 1, n))) / m[r][r]
    return out
