"""sdlab's one exception family: every error a learner can meet says what went wrong and the fix.

    try:
        pipe = sdlab.load_pipeline("sd15")
    except sdlab.SdlabError as err:
        print(err)            # names the fix: download once, use a mirror, or use "tiny"
"""
from __future__ import annotations


class SdlabError(Exception):
    """Base class of every error sdlab raises on purpose."""


class UnknownEngineError(SdlabError, ValueError):
    """The engine name is neither a known engine, a local folder, nor a Hub id."""


class WeightsNotFoundError(SdlabError, OSError):
    """The weights are not in the local cache and cannot be downloaded."""


class DeviceNotAvailableError(SdlabError, RuntimeError):
    """A device (CUDA, MPS) was asked for that this machine does not have."""


class InvalidInputError(SdlabError, ValueError):
    """An argument to a pipeline call has the wrong type or value."""


class OutOfMemoryError(SdlabError, RuntimeError):
    """The accelerator ran out of memory during generation."""


class SdlabWarning(UserWarning):
    """A stated change of plan: fp16 asked on a CPU, a prompt cut at 77 tokens, ..."""


class SafetyCheckerWarning(SdlabWarning):
    """The safety checker replaced one or more images with black ones."""
