"""sdlab: take Stable Diffusion apart in Jupyter.

    import sdlab
    pipe = sdlab.load_pipeline("auto")          # real SD v1.5 on a GPU, the tiny model elsewhere
    image = sdlab.generate(pipe, "a large red circle on the left", seed=0).images[0]

Layers (each imports only those below it): `shapes` (the world and its judge) and `engines`
(devices, loading, errors); lesson helpers; `viz` and `widgets`; the notebooks. Beside them:
`train` and `bench`.
"""
import logging as _logging
import os as _os

# We deliberately do not install torchvision (it would pull a multi-GB CUDA build of torch);
# transformers then announces, on every import of diffusers, that CLIPImageProcessor falls back
# to its PIL implementation -- which is exactly what we want. Silence that one logger only.
_logging.getLogger("transformers.utils.import_utils").setLevel(_logging.ERROR)

from .engines import ENGINES, SD15_MODEL_ID, choose_device, choose_dtype, generate, load_pipeline, make_generator  # noqa: E402
from .errors import (DeviceNotAvailableError, InvalidInputError, OutOfMemoryError, SafetyCheckerWarning,  # noqa: E402
                     SdlabError, SdlabWarning, UnknownEngineError, WeightsNotFoundError)

if _os.environ.get("SDLAB_COUNT_UNET"):  # python -m sdlab.cost counts the notebooks' UNet calls this way
    from .cost import install_from_environment as _count_unet_calls  # noqa: E402

    _count_unet_calls()

__version__ = "0.1.0"
__all__ = [
    "ENGINES", "SD15_MODEL_ID", "choose_device", "choose_dtype", "generate", "load_pipeline", "make_generator",
    "SdlabError", "SdlabWarning", "UnknownEngineError", "WeightsNotFoundError", "DeviceNotAvailableError",
    "InvalidInputError", "OutOfMemoryError", "SafetyCheckerWarning",
]
