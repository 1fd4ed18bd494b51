"""Intervals for the figures the series measures: a rate with its 95% interval, a mean with its own.

A measured rate (the judge reads the colour right in 27 of 32 images) says little without its
uncertainty: 27/32 is 84%, but anything from 68% to 93% fits those 32 images. The Wilson
score interval (Wilson, 1927, "Probable inference, the law of succession, and statistical
inference", JASA 22) keeps its coverage for small samples and rates near 0 or 1, where the
textbook p +- 1.96 sqrt(p(1-p)/n) does not (Brown, Cai & DasGupta, 2001, Statistical Science 16).
"""
from __future__ import annotations

import math

import numpy as np

from .errors import InvalidInputError

Z95 = 1.959964  # the standard normal's 97.5% quantile: two-sided 95%


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (low, high) for a rate of `successes` out of `n`.

    Args:
        successes: how many trials came out right (0..n).
        n: how many trials (>= 1).
    """
    if n < 1 or not 0 <= successes <= n:
        raise InvalidInputError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(hits) -> tuple[float, float, float]:
    """(rate, low, high) of an array of booleans, with the Wilson 95% interval."""
    hits = np.asarray(hits, dtype=bool)
    low, high = wilson_interval(int(hits.sum()), len(hits))
    return float(hits.mean()), low, high


def mean_interval(values) -> tuple[float, float]:
    """The mean and the half-width of its 95% interval (normal approximation, 1.96 standard errors)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()) if len(values) else float("nan"), float("nan")
    return float(values.mean()), float(Z95 * values.std(ddof=1) / math.sqrt(len(values)))
