"""Self-checking exercises: a check runs even before the learner answers, so notebooks run top to bottom.

    answer = None          # your answer here
    check_answer("ex1", answer, expected=0.18215, hint="1 / std of the latents")

prints "ex1: not attempted yet" while `answer` is None, "ex1: correct" when it matches (numbers
with a tolerance, tensors with `torch.allclose`), and "ex1: not quite -- <hint>" otherwise.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

NOT_ATTEMPTED, CORRECT, WRONG = "not attempted yet", "correct", "not quite"


def _matches(answer: Any, expected: Any, rtol: float, atol: float) -> bool:
    if isinstance(expected, torch.Tensor) or isinstance(answer, torch.Tensor):
        a, e = torch.as_tensor(answer).float(), torch.as_tensor(expected).float()
        return a.shape == e.shape and torch.allclose(a, e, rtol=rtol, atol=atol)
    if isinstance(expected, (int, float, np.floating, np.integer)) and not isinstance(expected, bool):
        is_number = isinstance(answer, (int, float, np.floating, np.integer))
        return is_number and bool(np.isclose(answer, expected, rtol=rtol, atol=atol))
    if isinstance(expected, np.ndarray):
        a = np.asarray(answer)
        return a.shape == expected.shape and np.allclose(a, expected, rtol=rtol, atol=atol)
    return answer == expected


class Verdict(str):
    """A verdict that equals its text; as a cell's last value it is not shown again (it was printed)."""

    def _ipython_display_(self) -> None:
        pass


def check_answer(name: str, answer: Any, expected: Any = None, *, predicate: Callable[[Any], bool] | None = None,
                 hint: str = "", rtol: float = 1e-3, atol: float = 1e-6) -> Verdict:
    """Print and return the verdict on an exercise: not attempted yet / correct / not quite.

    Args:
        name: the exercise's label, e.g. "Exercise 1".
        answer: the learner's answer; None means not attempted.
        expected: the right answer (compared with a tolerance for numbers and tensors), or
        predicate: a function that says whether an answer is right (for open questions).
        hint: shown when the answer is not right.
    """
    if answer is None:
        verdict = NOT_ATTEMPTED
    else:
        try:
            ok = predicate(answer) if predicate is not None else _matches(answer, expected, rtol, atol)
        except Exception as err:  # a malformed answer is a wrong answer, not a crash
            ok, hint = False, f"{hint} (checking raised {type(err).__name__}: {err})".strip()
        verdict = CORRECT if ok else WRONG
    print(f"{name}: {verdict}" + (f" -- {hint}" if verdict == WRONG and hint else ""))
    return Verdict(verdict)
