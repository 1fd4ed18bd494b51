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


def rate_of(fraction: float, n: int) -> tuple[float, float, float]:
    """(rate, low, high) of a rate already measured as a fraction of n trials (e.g. `bench.adherence`'s)."""
    successes = round(fraction * n)
    if abs(successes - fraction * n) > 1e-6 * n:
        raise InvalidInputError(f"{fraction} is not a count out of n = {n}: pass the n the rate was measured on")
    low, high = wilson_interval(successes, n)
    return float(fraction), low, high


# Student's t 97.5% quantiles for 1..30 degrees of freedom (any table; e.g. NIST/SEMATECH e-Handbook, 1.3.6.7.2)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(dof: int) -> float:
    """Student's t 97.5% quantile: from the table up to 30 degrees of freedom, beyond by the Cornish-Fisher
    expansion around the normal quantile (within 0.001 of the exact value there)."""
    if dof < 1:
        raise InvalidInputError(f"need at least 1 degree of freedom, got {dof}")
    if dof <= len(_T975):
        return _T975[dof - 1]
    z = Z95
    return z + (z**3 + z) / (4 * dof) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)


def mean_interval(values) -> tuple[float, float]:
    """The mean and the half-width of its 95% interval: Student's t times the standard error, which for
    few values (8 noise draws, say) is wider than the normal approximation's 1.96."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()) if len(values) else float("nan"), float("nan")
    return float(values.mean()), float(t975(len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
