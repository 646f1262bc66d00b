"""The worker's step-time model: a calibrated linear fit, kept current by the steps it runs.

The scheduler sizes every step by time (scheduler.py), so before each step it needs one
number: how long a step of this shape takes on this machine, now. That is the fit
`laneway calibrate` makes (step = a + b*tokens + c*context + ...), over whole engine steps
(schedule, forward, sample, detokenize: everything a stream waits for between tokens).

Two kinds of rows feed it. Anchor rows come from the warm-up sweep at start (warmup.py)
or a cached calibration; they span decode batches and prefill chunks, so every term stays
separable. Recent rows are the last `window` real steps; they track what the machine does
now (another process on the cores, a hotter cache). Every `refit_every` observed steps the
model refits on both, robustly (a step the OS descheduled is dropped as an outlier). A fit
that fails, or that is mostly noise, keeps the previous one: a planner with a slightly
stale model beats one with none.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from workers.engine.cost_fit import Fit, FitError, MeasuredStep, default_terms, fit_linear_cost
from workers.engine.linear_cost import LinearCost
from workers.engine.step_shape import StepShape

MAX_RMS_REL_ERROR = 0.6  # a refit worse than this on its own rows is noise, not a model
FIRST_FIT_MAX_ERROR = 1.5  # ...but the warm-up's fit only has to beat having no model
OUTLIER_FACTOR = 3.0  # a row this many times the median error off the fit is an outlier...
MAX_OUTLIER_SHARE = 0.2  # ...but at most this share of the rows is ever dropped


class OnlineStepCost:
    def __init__(self, base: LinearCost, anchors: Iterable[MeasuredStep] = (), window: int = 256,
                 refit_every: int = 32) -> None:
        if window < 1 or refit_every < 1:
            raise ValueError(f"window and refit_every must be >= 1, got {window}, {refit_every}")
        self._cost = base
        self._anchors = list(anchors)
        self._recent: deque[MeasuredStep] = deque(maxlen=window)
        self._refit_every = refit_every
        self._since_refit = 0
        self.num_refits = 0

    @classmethod
    def fitted(cls, rows: list[MeasuredStep], source: str, **kwargs: int) -> OnlineStepCost:
        """A model fitted to `rows`, which stay as its anchors. The first fit accepts a
        noisier one than refits do (a rough model beats none; refits improve it). Raises
        FitError when the rows cannot determine a fit."""
        return cls(_fit(rows, source, max_error=FIRST_FIT_MAX_ERROR), anchors=rows, **kwargs)

    @property
    def cost(self) -> LinearCost:
        return self._cost

    def step_time(self, shape: StepShape) -> float:
        return self._cost.step_time(shape)

    def describe(self) -> str:
        return self._cost.describe()

    def observe(self, shape: StepShape, seconds: float) -> None:
        """One step that ran: its shape and its wall time. Cheap; refits now and then."""
        if shape.num_tokens == 0 or seconds <= 0:
            return
        self._recent.append(MeasuredStep(shape, seconds))
        self._since_refit += 1
        if self._since_refit >= self._refit_every:
            self._since_refit = 0
            self.refit()

    def refit(self) -> bool:
        """Refit on anchors plus recent steps; True if the model changed."""
        rows = self._anchors + list(self._recent)
        try:
            cost = _fit(rows, self._cost.source)
        except FitError:
            return False
        self._cost = cost
        self.num_refits += 1
        return True


def _fit(rows: list[MeasuredStep], source: str, max_error: float = MAX_RMS_REL_ERROR) -> LinearCost:
    """The richest fit the rows support: all the terms they can tell apart, else the two
    every row determines. A fit must keep the base terms non-negative (the planner sizes
    small steps most often) and explain the rows to within `max_error`."""
    problems = []
    for terms in (default_terms(rows), ("fixed", "per_token")):
        fit = _robust_fit(rows, terms, source)
        if fit.cost.fixed_s < 0 or fit.cost.per_token_s < 0:
            problems.append(f"{'+'.join(terms)}: a negative base term")
        elif fit.rms_rel_error > max_error:
            problems.append(f"{'+'.join(terms)}: error {fit.rms_rel_error:.0%} over {fit.num_rows} steps")
        else:
            return fit.cost
    raise FitError("; ".join(problems))


def _robust_fit(rows: list[MeasuredStep], terms: tuple[str, ...], source: str) -> Fit:
    """Fit, drop the worst outliers (a step the OS descheduled, a GC pause), fit again."""
    fit = fit_linear_cost(rows, terms, source=source)
    errors = sorted(abs(e) for e in fit.residuals)
    cutoff = max(OUTLIER_FACTOR * errors[len(errors) // 2], errors[int(len(errors) * (1 - MAX_OUTLIER_SHARE))])
    kept = [r for r, e in zip(rows, fit.residuals) if abs(e) <= cutoff]
    if len(kept) == len(rows) or len(kept) < len(terms):
        return fit
    return fit_linear_cost(kept, terms, source=source)
