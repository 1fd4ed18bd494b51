"""sdlab: take Stable Diffusion apart in Jupyter.

    import sdlab
    pipe = sdlab.load_pipeline("auto")          # real SD v1.5 on a GPU, the tiny model elsewhere
    image = sdlab.generate(pipe, "a large red circle on the left", seed=0).images[0]

Layers, lowest first (each module imports only from the layers below it; tests/test_layers.py
holds the table and checks every import):

- foundations: `errors`, `checks` (input checks that name the fix), `stats`, `tiny`
  (the tiny engine's architecture), `tiny_flow` (the tiny-flow engine's: SD3's classes), `images`
  (uint8 <-> [-1, 1] <-> [0, 1], written once), `shapes`
  (the world and its judge);
- `engines`: devices, loading, `generate`;
- lesson helpers: `schedule`, `text`, `latents`, `sampling`, `editing`, `losses`, `flow`, `grounding`,
  `attention`, `finetune`, `architectures` (SDXL, SD3, Flux counted on the meta device), and the
  exercises' checks (`exercises`, `exercise_checks`);
- presentation: `viz`, `widgets`;
- tools with a command line: `train` (with `train_flow`), `bench`, `cost`, `gpubench`, `sdshaped`.
"""
import logging as _logging
import os as _os

# We deliberately do not install torchvision (it would pull a multi-GB CUDA build of torch);
# transformers then announces, on every import of diffusers, that CLIPImageProcessor falls back
# to its PIL implementation -- which is exactly what we want. Silence that one logger only.
_logging.getLogger("transformers.utils.import_utils").setLevel(_logging.ERROR)

from .engines import ENGINES, SD15_MODEL_ID, choose_device, choose_dtype, generate, load_pipeline, make_generator  # noqa: E402
from .errors import (  # noqa: E402
    DeviceNotAvailableError,
    InvalidInputError,
    OutOfMemoryError,
    SafetyCheckerWarning,
    SdlabError,
    SdlabWarning,
    UnknownEngineError,
    WeightsNotFoundError,
)

if _os.environ.get("SDLAB_COUNT_UNET"):  # python -m sdlab.cost counts the notebooks' UNet calls this way
    from .cost import install_from_environment as _count_unet_calls

    _count_unet_calls()

__version__ = "0.1.0"
__all__ = [
    "ENGINES", "SD15_MODEL_ID", "choose_device", "choose_dtype", "generate", "load_pipeline", "make_generator",
    "SdlabError", "SdlabWarning", "UnknownEngineError", "WeightsNotFoundError", "DeviceNotAvailableError",
    "InvalidInputError", "OutOfMemoryError", "SafetyCheckerWarning",
]
