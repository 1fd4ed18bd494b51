"""Engines: one call returns a standard `diffusers.StableDiffusionPipeline`, wherever you are.

| engine  | what                                                    | runs on                      |
|---------|---------------------------------------------------------|------------------------------|
| "tiny"  | the model this project trained on the shapes world      | any CPU, offline             |
| "tiny-flow" | the same world, VAE and text encoder with SD3's     | any CPU, offline             |
|         | transformer and rectified flow (a StableDiffusion3Pipeline) |                           |
| "sd15"  | Stable Diffusion v1.5 from the Hugging Face Hub         | a CUDA GPU (fp16)            |
| "auto"  | "sd15" on a CUDA GPU whose weights are cached or        | everywhere; says which       |
|         | reachable, else "tiny" -- or what SDLAB_ENGINE names    | it chose and why             |

Any Hub id ("org/name") or local folder holding a saved SD-style pipeline works as well (a folder
saved from an SD3 pipeline loads as `StableDiffusion3Pipeline`).
Because every engine is the same pipeline class, a notebook written once shows real Stable
Diffusion on Colab and the tiny model in a classroom or in CI.

`generate` is the friendly front door to a pipeline call: it checks the arguments, seeds a fresh
CPU `torch.Generator` (so CPU and GPU start from the same noise), and turns out-of-memory and
safety-checker events into messages that say what to do.
"""
from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import StableDiffusion3Pipeline, StableDiffusionPipeline

from . import checks, tiny_flow
from .errors import (
    DeviceNotAvailableError,
    InvalidInputError,
    OutOfMemoryError,
    SafetyCheckerWarning,
    SdlabWarning,
    UnknownEngineError,
    WeightsNotFoundError,
)
from .tiny import IMAGE_SIZE as TINY_IMAGE_SIZE
from .tiny import TINY_DIR

SD15_MODEL_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # runwayml/stable-diffusion-v1-5 was deleted
ENGINES = {
    "tiny": "the bundled tiny model trained on the shapes world (CPU, offline)",
    "tiny-flow": "the tiny model's world, VAE and text encoder with SD3's transformer trained by rectified flow "
                 "(a StableDiffusion3Pipeline; CPU, offline; notebook 09)",
    "sd15": f"Stable Diffusion v1.5 ({SD15_MODEL_ID}) from the Hugging Face Hub (CUDA GPU, fp16)",
    "auto": "sd15 on a CUDA GPU when its weights are cached or reachable, otherwise tiny",
}
ENGINE_VARIABLE = "SDLAB_ENGINE"  # set it to an engine name, Hub id or folder: "auto" then loads that
MAX_SIDE_FACTOR = 2  # the largest height/width a pipeline accepts, as a multiple of its native size


# --------------------------------------------------------------------------- device and dtype

def _has_mps() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """CUDA, then Apple's MPS, then the CPU; or check that the device asked for exists.

    Args:
        device: None to choose, or "cuda", "cuda:1", "mps", "cpu".
    """
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _has_mps():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceNotAvailableError(
            "You asked for a CUDA GPU, but torch sees none on this machine.\n"
            "  - On Colab: Runtime > Change runtime type > a GPU (T4 is enough), then run again.\n"
            "  - Here: call load_pipeline('tiny') (or device=None to choose), which runs on the CPU.")
    if device.type == "mps" and not _has_mps():
        raise DeviceNotAvailableError(
            "You asked for Apple's MPS device, which this machine or torch build does not offer. "
            "Use device=None to choose automatically, or device='cpu'.")
    return device


def choose_dtype(device: torch.device, dtype: torch.dtype | None = None) -> torch.dtype:
    """fp16 on CUDA, fp32 on MPS and the CPU; fp16 asked for on a CPU is switched to fp32, saying so.

    fp16 runs on the CPU in current torch, but without half-precision matrix units it is slower,
    not faster: the tiny engine's batch of 16 took 1.38 s in fp16 against 0.92 s in fp32 on this
    project's 2-core CPU (2026-12-02), and fp16 rounds more.
    """
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if not isinstance(dtype, torch.dtype):
        raise InvalidInputError(f"dtype must be a torch.dtype such as torch.float16, got {dtype!r}")
    if dtype == torch.float16 and device.type == "cpu":
        warnings.warn("fp16 on the CPU is slower than fp32 (a CPU has no half-precision matrix units) and rounds "
                      "more; using fp32 instead. Use a CUDA GPU for fp16.", SdlabWarning, stacklevel=3)
        return torch.float32
    return dtype


# --------------------------------------------------------------------------- loading

def _is_cached(model_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model_id, "model_index.json"), str)


def is_reachable(model_id: str, timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers for `model_id` within `timeout` seconds (False offline)."""
    from huggingface_hub import is_offline_mode, model_info

    if is_offline_mode():
        return False
    try:
        model_info(model_id, timeout=timeout)
        return True
    except Exception:
        return False


def _weights_missing(model_id: str, cause: Exception) -> WeightsNotFoundError:
    home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    offline = " (HF_HUB_OFFLINE=1 is set)" if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True") else ""
    return WeightsNotFoundError(
        f"Could not load {model_id!r}: its weights are not in the local cache and could not be "
        f"downloaded{offline}.\n"
        f"  - Download once, on a machine with network: huggingface-cli download {model_id}"
        f"{' --include *.json *.txt *fp16.safetensors  (about 2.6 GB)' if model_id == SD15_MODEL_ID else ''}\n"
        f"  - Behind a firewall, point HF_ENDPOINT at a Hub mirror (e.g. HF_ENDPOINT=https://hf-mirror.com).\n"
        f"  - The cache lives in HF_HOME (now {home}); copy it from a machine that has the weights.\n"
        f"  - Or use load_pipeline('tiny'), which works offline on any CPU.\n"
        f"(underlying error: {type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''})")


def _load(source: str | Path, device: torch.device, dtype: torch.dtype, variant: str | None = None,
          **kwargs) -> StableDiffusionPipeline:
    path = Path(source) / "model_index.json"  # a local folder says its class; a Hub id is SD v1.5-style
    index = json.loads(path.read_text()) if path.is_file() else {}
    sd3 = index.get("_class_name") == "StableDiffusion3Pipeline"
    cls = StableDiffusion3Pipeline if sd3 else StableDiffusionPipeline
    if sd3:  # parts saved as None (tiny-flow has no T5) must be passed as None again
        for part in ("text_encoder_3", "tokenizer_3", "image_encoder", "feature_extractor"):
            if (index.get(part) or [None])[0] is None:
                kwargs.setdefault(part, None)
    try:
        pipe = cls.from_pretrained(str(source), dtype=dtype, variant=variant, **kwargs)
    except (OSError, ValueError) as err:  # LocalEntryNotFoundError and friends are OSErrors
        if variant is not None and "variant" in str(err):
            return _load(source, device, dtype, None, **kwargs)
        raise _weights_missing(str(source), err) from err
    return _to_device(pipe, device)


@contextlib.contextmanager
def _quiet_loading():
    """Hide diffusers' and transformers' loading bars (a bundled model loads in a blink)."""
    from diffusers.utils import logging as d_logging
    from transformers.utils import logging as t_logging

    d_logging.disable_progress_bar()
    t_logging.disable_progress_bar()
    try:
        yield
    finally:
        d_logging.enable_progress_bar()
        t_logging.enable_progress_bar()


def _to_device(pipe: StableDiffusionPipeline, device: torch.device) -> StableDiffusionPipeline:
    try:
        return pipe.to(device)
    except torch.cuda.OutOfMemoryError as err:
        raise OutOfMemoryError(
            f"The model does not fit in the GPU's memory ({err}). Free memory (restart the runtime, "
            "or `del` other pipelines and call torch.cuda.empty_cache()), or use "
            "pipe.enable_model_cpu_offload() instead of moving it whole to the GPU.") from err


def load_tiny(device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> StableDiffusionPipeline:
    """The bundled tiny model: weights inside the package, nothing to download; fp32 by default."""
    if not (TINY_DIR / "model_index.json").is_file():
        raise WeightsNotFoundError(
            f"The tiny model's weights are missing from {TINY_DIR}. Reinstall sdlab (pip install -e .), "
            f"or train them again: python -m sdlab.train --export {TINY_DIR}")
    device = choose_device(device or "cpu")
    with _quiet_loading():
        pipe = _load(TINY_DIR, device, choose_dtype(device, dtype) if dtype else torch.float32)
    pipe.set_progress_bar_config(disable=True)  # 25 steps take a fraction of a second
    # diffusers' own CPU/GPU speed-up: convolutions in NHWC layout skip oneDNN's layout
    # conversions, 10-20% faster per UNet call and VAE decode here. The values do not change.
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    if pipe.device.type == "cpu":
        use_native_convolutions(pipe.unet)
    return pipe


def load_tiny_flow(device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> StableDiffusion3Pipeline:
    """The bundled tiny-flow engine: a `StableDiffusion3Pipeline` whose transformer is in `sdlab/assets/tiny-flow`
    and whose VAE, tokenizer and text encoder (in both CLIP places) are the tiny engine's; fp32 by default."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel

    if not (tiny_flow.FLOW_DIR / "transformer" / "config.json").is_file():
        raise WeightsNotFoundError(
            f"The tiny-flow engine's weights are missing from {tiny_flow.FLOW_DIR}. Reinstall sdlab "
            f"(pip install -e .), or train them again: python -m sdlab.train --denoiser sd3-flow "
            f"--export {tiny_flow.FLOW_DIR}")
    base = load_tiny(device, dtype)  # the VAE, tokenizer and text encoder, on the device and in the dtype asked for
    with _quiet_loading():
        transformer = SD3Transformer2DModel.from_pretrained(tiny_flow.FLOW_DIR / "transformer", dtype=base.vae.dtype)
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(tiny_flow.FLOW_DIR / "scheduler")
    pipe = tiny_flow.assemble(base.vae, tiny_flow.with_projection(base.text_encoder), base.tokenizer, transformer,
                              scheduler)
    return _to_device(pipe, base.device)


def use_native_convolutions(module: torch.nn.Module, max_batch: int = 8) -> torch.nn.Module:
    """Run `module` on small batches with PyTorch's own CPU convolutions instead of oneDNN's.

    oneDNN spends ~100 microseconds setting up each convolution, whatever its size. The tiny
    UNet's 32 convolutions per call work on 8x8 latents or smaller, so for a few images
    PyTorch's native kernels finish sooner: a call at batch 2 (one image with guidance) takes
    6.9 instead of 9.8 ms here; from batch 16 on oneDNN is faster (24 vs 57 ms), so larger
    batches keep it. The setting is restored after every call, even one that fails.
    """
    saved = []

    def before(mod, args, kwargs):
        sample = args[0] if args else kwargs.get("sample")
        saved.append(torch.backends.mkldnn.enabled)
        if sample is not None and sample.shape[0] <= max_batch:
            torch.backends.mkldnn.enabled = False

    def after(mod, args, output):
        torch.backends.mkldnn.enabled = saved.pop() if saved else True

    module.register_forward_pre_hook(before, with_kwargs=True)
    module.register_forward_hook(after, always_call=True)
    return module


def load_pipeline(engine: str = "auto", device: str | torch.device | None = None,
                  dtype: torch.dtype | None = None, verbose: bool = True) -> StableDiffusionPipeline:
    """Load a Stable Diffusion pipeline by engine name: "tiny", "sd15", "auto", a Hub id or a folder.

    Args:
        engine: "auto" (default), "tiny", "sd15", a Hub id such as "org/model", or a local
            folder saved with `save_pretrained`.
        device: None to choose (CUDA, then MPS, then CPU), or a device name.
        dtype: None for fp16 on CUDA and fp32 elsewhere, or a torch dtype.
        verbose: print one line saying which engine "auto" chose and why.

    Returns:
        A `diffusers.StableDiffusionPipeline` on the chosen device.
    """
    if not isinstance(engine, (str, Path)):
        raise UnknownEngineError(f"engine must be a string such as 'tiny', got {type(engine).__name__}")
    if engine == "auto":
        engine, why = _auto_engine(device)
        if verbose:
            print(f"sdlab: engine 'auto' chose '{engine}': {why}")
    if engine == "tiny":
        return load_tiny(device, dtype)
    if engine == "tiny-flow":
        return load_tiny_flow(device, dtype)
    device = choose_device(device)
    dtype = choose_dtype(device, dtype)
    if engine == "sd15":
        return _load(SD15_MODEL_ID, device, dtype, variant="fp16" if dtype == torch.float16 else None)
    if Path(engine).is_dir():
        return _load(Path(engine), device, dtype)
    if _looks_like_path(engine):
        raise WeightsNotFoundError(
            f"No saved pipeline at {str(engine)!r}: that folder does not exist (seen from {Path.cwd()}). Give the "
            "folder that holds model_index.json -- `python -m sdlab.train` writes one to runs/tiny/pipeline -- "
            f"or an engine name: {', '.join(repr(name) for name in ENGINES)}.")
    if isinstance(engine, str) and engine.count("/") == 1 and not engine.startswith((".", "/")):
        return _load(engine, device, dtype)
    raise UnknownEngineError(
        f"Unknown engine {str(engine)!r}. Known engines:\n"
        + "\n".join(f"  - {name!r}: {what}" for name, what in ENGINES.items())
        + "\n  - a Hub id such as 'org/model', or a local folder saved with save_pretrained")


def _looks_like_path(engine: str | Path) -> bool:
    """A Hub id is "org/name"; anything else with a slash, or starting with '.', '/' or '~', is a folder."""
    text = str(engine)
    return isinstance(engine, Path) or text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text


def _auto_engine(device) -> tuple[str, str]:
    chosen = os.environ.get(ENGINE_VARIABLE, "").strip()
    if chosen:
        if chosen == "auto":
            raise UnknownEngineError(f"{ENGINE_VARIABLE}=auto would choose itself; set it to 'tiny', 'sd15', a Hub id "
                                     f"or a folder, or unset it to let 'auto' choose")
        return chosen, f"the environment variable {ENGINE_VARIABLE} names it"
    if device is not None and torch.device(device).type != "cuda":
        return "tiny", f"you asked for device {str(device)!r}, and sd15 needs a CUDA GPU"
    if not torch.cuda.is_available():
        if _has_mps():  # a deliberate choice: the series' SD figures and T4 estimates are for CUDA
            return "tiny", (f"auto loads sd15 only on a CUDA GPU; this Mac's MPS device runs it too (in fp32): "
                            f"set {ENGINE_VARIABLE}=sd15 to use it")
        return "tiny", "no CUDA GPU here (sd15 needs one); the tiny model runs on any CPU, offline"
    if _is_cached(SD15_MODEL_ID):
        return "sd15", f"a CUDA GPU is present and {SD15_MODEL_ID} is in the local cache"
    if is_reachable(SD15_MODEL_ID):
        return "sd15", f"a CUDA GPU is present and {SD15_MODEL_ID} can be downloaded (about 2.6 GB in fp16)"
    return "tiny", f"a CUDA GPU is present but {SD15_MODEL_ID} is neither cached nor reachable (offline?)"


# --------------------------------------------------------------------------- generating

def denoiser(pipe):
    """The pipeline's denoising network: `pipe.unet` (SD v1.5, tiny) or `pipe.transformer` (SD3, tiny-flow)."""
    net = getattr(pipe, "unet", None)
    net = getattr(pipe, "transformer", None) if net is None else net
    if net is None:
        raise InvalidInputError(f"{type(pipe).__name__} has neither a unet nor a transformer; "
                                "pass a pipeline from sdlab.load_pipeline")
    return net


def is_flow(pipe) -> bool:
    """Whether `pipe` samples by rectified flow (an SD3 pipeline: tiny-flow, SD3) rather than SD v1.5's diffusion."""
    return isinstance(pipe, StableDiffusion3Pipeline)


def native_size(pipe: StableDiffusionPipeline) -> int:
    """The image side the pipeline was trained at: 64 for tiny and tiny-flow, 512 for SD v1.5."""
    return denoiser(pipe).config.sample_size * pipe.vae_scale_factor


def check_prompt(pipe: StableDiffusionPipeline, prompt: str | Sequence[str], name: str = "prompt") -> list[str]:
    """Return the prompt as a list; warn, showing what is cut, when a prompt is over 77 tokens."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, (list, tuple)) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise InvalidInputError(
            f"{name} must be a string or a non-empty list of strings, got {type(prompt).__name__} {prompt!r:.60}. "
            f"Example: {name}='a large red circle on the left'")
    tok = pipe.tokenizer
    limit = tok.model_max_length - 2  # BOS and EOS take two of the 77 places
    for p in prompts:
        ids = tok(p, add_special_tokens=False).input_ids
        if len(ids) > limit:
            cut = tok.decode(ids[limit:])
            warnings.warn(f"{name} is {len(ids)} tokens; CLIP reads at most {limit} (77 with BOS/EOS), "
                          f"so this part is ignored: {cut!r}. Shorten the prompt to keep it.",
                          SdlabWarning, stacklevel=3)
    return list(prompts)


def check_call(pipe: StableDiffusionPipeline, height: int, width: int, num_inference_steps: int,
               guidance_scale: float, num_images_per_prompt: int = 1) -> None:
    """Raise InvalidInputError, naming the fix, for sizes, steps, guidance and image counts."""
    biggest = MAX_SIDE_FACTOR * native_size(pipe)
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInputError(f"{name} must be an int number of pixels, got {value!r}")
        if value <= 0 or value % 8:
            below, above = value // 8 * 8, value // 8 * 8 + 8
            fix = f"{name}={below} or {name}={above}" if below > 0 else f"{name}={max(8, above)}"
            raise InvalidInputError(
                f"{name}={value} is not a positive multiple of 8: the VAE shrinks images 8x, so sizes "
                f"must divide by 8. Try {fix}.")
        if value > biggest:
            raise InvalidInputError(
                f"{name}={value} is too large for this engine, trained at {native_size(pipe)} px: use at most "
                f"{biggest} (larger images repeat objects and need much more memory).")
    counts = {"num_inference_steps": num_inference_steps, "num_images_per_prompt": num_images_per_prompt}
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"{name} must be a whole number of at least 1, got {value!r}. "
                                    f"Try {name}={25 if name == 'num_inference_steps' else 1}.")
    checks.number(guidance_scale, "guidance_scale", low=0,
                  why="1 means no guidance, 7.5 is SD v1.5's default, larger follows the prompt more strictly")


@contextlib.contextmanager
def use_scheduler(pipe: StableDiffusionPipeline, scheduler):
    """Run a block with `pipe.scheduler` swapped for `scheduler`; the original comes back even if the block fails.

        with use_scheduler(pipe, EulerDiscreteScheduler.from_config(pipe.scheduler.config)):
            image = generate(pipe, prompt).images[0]
    """
    original = pipe.scheduler
    pipe.scheduler = scheduler
    try:
        yield scheduler
    finally:
        pipe.scheduler = original


# How closely two computations of one result agree: by hand vs the library ("same"), one image of a
# batch vs the image alone ("batch": other kernels for other shapes), and a predicted x_0, which
# divides by sqrt(alpha_bar_t) ~ 0.07 at the noisiest steps and so magnifies rounding ("x0").
# fp16 keeps ~3 significant digits, so its tolerances are ~100x fp32's.
TOLERANCES = {
    ("same", torch.float32): {"rtol": 1e-4, "atol": 1e-4}, ("same", torch.float16): {"rtol": 2e-2, "atol": 2e-2},
    ("batch", torch.float32): {"rtol": 1e-3, "atol": 1e-3}, ("batch", torch.float16): {"rtol": 5e-2, "atol": 5e-2},
    ("x0", torch.float32): {"rtol": 1e-3, "atol": 1e-3}, ("x0", torch.float16): {"rtol": 5e-2, "atol": 2e-1},
}


def tolerance(pipe: StableDiffusionPipeline, kind: str = "same") -> dict[str, float]:
    """rtol/atol for `torch.testing.assert_close` at the pipeline's dtype (bf16 counts as fp16)."""
    dtype = torch.float32 if denoiser(pipe).dtype == torch.float32 else torch.float16
    checks.choice(kind, "kind", sorted({k for k, _ in TOLERANCES}))
    return dict(TOLERANCES[kind, dtype])


def make_generator(seed: int) -> torch.Generator:
    """A fresh CPU generator: the same seed gives the same starting noise on any device."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInputError(f"seed must be an int, got {seed!r}")
    return torch.Generator("cpu").manual_seed(seed)


def is_tiny(pipe: StableDiffusionPipeline) -> bool:
    """Whether `pipe` draws the tiny engine's world: 64x64 shapes (the bundled model, or one that
    `python -m sdlab.train` made). The shapes world's judge can only read such images."""
    return native_size(pipe) == TINY_IMAGE_SIZE


def default_guidance(pipe: StableDiffusionPipeline) -> float:
    """The tiny model's measured best for the tiny kind; 7.5 otherwise (SD v1.5's model card and
    `StableDiffusionPipeline`'s own default)."""
    return TINY_GUIDANCE if is_tiny(pipe) else 7.5


TINY_GUIDANCE = 4.0


def check_embeds(pipe: StableDiffusionPipeline, embeds, name: str = "prompt_embeds") -> torch.Tensor:
    """Check a (batch, tokens, width) text-encoder output; return it on the pipeline's device and dtype."""
    width = pipe.text_encoder.config.hidden_size
    if not isinstance(embeds, torch.Tensor) or embeds.ndim != 3 or embeds.shape[-1] != width:
        got = tuple(embeds.shape) if isinstance(embeds, torch.Tensor) else type(embeds).__name__
        raise InvalidInputError(
            f"{name} must be a tensor (batch, 77, {width}) from this pipeline's text encoder, got {got}. "
            f"Make it with pipe.encode_prompt(...) or pipe.text_encoder(input_ids)[0].")
    return embeds.to(pipe.device, pipe.text_encoder.dtype)


def generate(pipe: StableDiffusionPipeline, prompt: str | Sequence[str] | None = None, *, seed: int = 0,
             num_inference_steps: int = 25, guidance_scale: float | None = None,
             negative_prompt: str | Sequence[str] | None = None, height: int | None = None,
             width: int | None = None, num_images_per_prompt: int = 1,
             prompt_embeds: torch.Tensor | None = None, negative_prompt_embeds: torch.Tensor | None = None, **kwargs):
    """Call `pipe(...)` after checking every argument; returns the pipeline's output.

    Args:
        pipe: a pipeline from `load_pipeline`.
        prompt: a string or a list of strings (or leave it out and give `prompt_embeds`).
        prompt_embeds, negative_prompt_embeds: the text encoder's output (batch, 77, width), to
            condition on edited embeddings instead of a prompt (notebook 01).
        seed: seeds a fresh CPU `torch.Generator` for this call.
        num_inference_steps: denoising steps (>= 1).
        guidance_scale: classifier-free guidance scale s = 1 + w, w the weight of Ho & Salimans (2022,
            eq. 6); 1 turns guidance off; None picks the engine's default.
        negative_prompt: what to steer away from (replaces the empty prompt of guidance).
        height, width: image size in pixels, multiples of 8 (default: the engine's native size).
        **kwargs: passed on to the pipeline (e.g. `callback_on_step_end`, `output_type`).
    """
    if prompt_embeds is not None and is_flow(pipe):
        raise InvalidInputError("An SD3 pipeline needs pooled_prompt_embeds beside prompt_embeds: call pipe(...) with "
                                "both from pipe.encode_prompt(...), or give a prompt.")
    if prompt_embeds is not None:
        if prompt is not None:
            raise InvalidInputError("Give prompt or prompt_embeds, not both: "
                                    "prompt_embeds already is the encoded prompt.")
        kwargs["prompt_embeds"] = check_embeds(pipe, prompt_embeds)
        if negative_prompt_embeds is not None:
            kwargs["negative_prompt_embeds"] = check_embeds(pipe, negative_prompt_embeds, "negative_prompt_embeds")
            if kwargs["negative_prompt_embeds"].shape != kwargs["prompt_embeds"].shape:
                raise InvalidInputError(
                    f"negative_prompt_embeds {tuple(negative_prompt_embeds.shape)} must have the shape of "
                    f"prompt_embeds {tuple(prompt_embeds.shape)}: one negative per prompt.")
        prompts = [""] * len(prompt_embeds)  # only their number matters below
    elif negative_prompt_embeds is not None:
        raise InvalidInputError("negative_prompt_embeds needs prompt_embeds too "
                                "(or use negative_prompt with a prompt).")
    else:
        prompts = check_prompt(pipe, prompt)
    if negative_prompt is not None:
        negatives = check_prompt(pipe, negative_prompt, "negative_prompt")
        if not isinstance(prompt, str):  # diffusers wants the same type: one negative for every prompt
            negative_prompt = negatives * len(prompts) if len(negatives) == 1 else negatives
    height = native_size(pipe) if height is None else height
    width = native_size(pipe) if width is None else width
    guidance_scale = default_guidance(pipe) if guidance_scale is None else guidance_scale
    check_call(pipe, height, width, num_inference_steps, guidance_scale, num_images_per_prompt)
    if is_flow(pipe) and pipe.text_encoder_3 is None:  # no T5: the zeros in its place, as many as in training
        kwargs.setdefault("max_sequence_length", tiny_flow.MAX_SEQUENCE_LENGTH)
    try:
        out = pipe(prompt, negative_prompt=negative_prompt, height=height, width=width,
                   num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                   num_images_per_prompt=num_images_per_prompt, generator=make_generator(seed), **kwargs)
    except torch.cuda.OutOfMemoryError as err:
        torch.cuda.empty_cache()
        n = num_images_per_prompt * len(prompts)
        raise OutOfMemoryError(
            f"The GPU ran out of memory making {n} image(s) of {height}x{width}. Try, in this order: "
            "fewer images per call; a smaller height/width; pipe.enable_attention_slicing(); "
            "pipe.enable_model_cpu_offload() (needs accelerate). Nothing was lost: the pipeline is intact.") from err
    flags = getattr(out, "nsfw_content_detected", None)
    if flags and any(flags):
        hit = [i for i, f in enumerate(flags) if f]
        warnings.warn(f"The safety checker flagged image(s) {hit} as possibly NSFW and replaced them with black "
                      "images. Change the prompt or seed; the other images are unaffected.",
                      SafetyCheckerWarning, stacklevel=2)
    return out
