"""The checks of the series' exercises: each one measures the learner's own work again.

A check gets the learner's answer and, by name, the context the exercise was done in -- the pipeline, its
tokenizer, the tensors the learner worked on, and the choices the learner made (a prompt, a level, a strength) --
and works the right answer out from them. No answer is written down here, so a notebook cell shows the task and
not its solution, and the checks hold on every engine: the tiny one, the SD-shaped one with random weights, and
SD v1.5. A check returns whether the answer is right; when the learner's *choice* does not fit the task, it
prints a note that says what to change (never the answer). Each is cheap: the text encoder once or twice, a
scheduler, a model built on the meta device, the VAE decoder on a few latents, small tensors -- no UNet call but
one (08.4 generates one image, to measure the learner's pair of objects again). Where
the learner's result needs the UNet (a measured adherence), the check recomputes what it can without it and checks
that the rest is consistent: a count out of the prompts measured, printed with its 95 % interval and its baseline.

`sdlab.exercises` registers them by name, "NN.k" for exercise k of notebook NN, with their hints:

    exercises.check("06.2", answer_2, batch_size=batch_size_2, caption_dropout=dropout_2)
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler, SchedulerMixin, StableDiffusionImg2ImgPipeline
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg, retrieve_timesteps

from . import architectures, flow
from .attention import mass_inside, pair_attention
from .latents import decode, psnr
from .schedule import first_timestep_below, snr
from .stats import mean_interval, rate_of
from .text import prompt_embeds, token_position

Z999 = 3.29  # two-sided 99.9 %: a right answer fails a statistical check about once in 1000 tries


def _note(message: str) -> bool:
    """Say what in the learner's own choice does not fit the task; the answer is then not right."""
    print(f"  {message}")
    return False


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _tokens(tokenizer, prompt: str) -> list[int]:
    """The ids of a prompt without BOS and EOS, untruncated."""
    return tokenizer(prompt, add_special_tokens=False).input_ids


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def _timesteps(scheduler, num_inference_steps: int) -> list:
    """The timesteps a pipeline loops over, one UNet call each, as diffusers' own `retrieve_timesteps` sets them --
    on a copy of `scheduler`, so that the original keeps its state."""
    timesteps, _ = retrieve_timesteps(type(scheduler).from_config(scheduler.config), num_inference_steps, "cpu")
    return timesteps.tolist()


def _count_of(rate, n: int) -> int | None:
    """How many of `n` trials a measured rate stands for (`bench.adherence` returns such fractions), or None when
    the rate is not a count out of n."""
    if not _is_number(rate) or not 0 <= rate <= 1:
        return None
    hits = round(float(rate) * n)
    return hits if math.isclose(hits, float(rate) * n, abs_tol=1e-6) else None


def _rate_line(rate: float, n: int) -> str:
    """A measured rate with its 95 % (Wilson) interval, as the notebooks print them."""
    _, low, high = rate_of(rate, n)
    return f"{100 * rate:.0f}% [95% interval {100 * low:.0f}-{100 * high:.0f}%]"


# --------------------------------------------------------------------------- 00 tour

def latent_numbers(answer, *, pipe, height: int, width: int) -> bool:
    """00.1: `answer` is how many numbers the latents of one image of the learner's size hold for this pipeline --
    `height` x `width`, two different multiples of 8 -- as the pipeline makes them with output_type="latent": the
    UNet's input channels x (height / f) x (width / f), f the VAE's scale factor."""
    sides = (height, width)
    if not all(_is_int(side) and side > 0 and side % 8 == 0 for side in sides) or height == width:
        return _note("choose height_1 and width_1, two different multiples of 8 (e.g. twice as wide as high)")
    f = pipe.vae_scale_factor
    return bool(answer == pipe.unet.config.in_channels * (height // f) * (width // f))


def unet_calls_of_your_scheduler(answer, *, pipe, scheduler, num_inference_steps: int) -> bool:
    """00.2: `answer` is how many times the UNet runs for one image with the learner's `scheduler` -- a diffusers
    scheduler class (built from this pipeline's config) or one built already, other than the pipeline's own -- at
    the learner's `num_inference_steps`: one call per timestep the pipeline loops over (guidance doubles the batch,
    not the calls), as diffusers' `retrieve_timesteps` gives them."""
    cls = scheduler if isinstance(scheduler, type) else type(scheduler)
    if not issubclass(cls, SchedulerMixin) or cls is type(pipe.scheduler):
        return _note(f"set scheduler_2 to a diffusers scheduler other than this pipeline's "
                     f"{type(pipe.scheduler).__name__}, e.g. HeunDiscreteScheduler.from_config(pipe.scheduler.config)")
    if not _is_int(num_inference_steps) or num_inference_steps < 2 or num_inference_steps == 10:
        return _note("choose steps_2, a number of steps of at least 2, other than section 3's 10")
    probe = cls.from_config(pipe.scheduler.config) if isinstance(scheduler, type) else scheduler
    return bool(answer == len(_timesteps(probe, num_inference_steps)))


T5_XXL_WIDTH = 4096  # T5-XXL's width (T5 v1.1, after Raffel et al., 2020), whose encoder Imagen and DeepFloyd IF
                     # condition on
UNET_LAYOUT = ("in_channels", "out_channels", "sample_size", "block_out_channels", "down_block_types",
               "up_block_types", "layers_per_block")


def text_encoder_swap(answer, *, pipe) -> bool:
    """00.3: `answer` is (the names of the pipeline's components to swap for T5-XXL's, a UNet that reads its
    4096-wide `prompt_embeds`): the tokenizer and the text encoder (T5 has its own vocabulary), and this pipeline's
    UNet with its text width changed, the rest of its layout unchanged -- either `cross_attention_dim` (every
    cross-attention's to_k and to_v then take 4096 inputs) or `encoder_hid_dim` (a linear projection of the text
    from 4096 to the attention's width, which DeepFloyd IF's UNet has too). Prints both UNets' parameter counts,
    which can be counted on the meta device too."""
    names, unet = answer
    names = {names} if isinstance(names, str) else set(names)
    if not names <= set(pipe.components):
        return _note(f"name components of pipe, from: {', '.join(pipe.components)}")
    width, theirs = unet.config.cross_attention_dim, pipe.unet.config.cross_attention_dim
    projection = getattr(unet, "encoder_hid_proj", None)
    if _plain(width) == T5_XXL_WIDTH:      # wide attention: every to_k and to_v reads the text as it comes
        reading = [m.in_features for name, m in unet.named_modules() if name.endswith(("attn2.to_k", "attn2.to_v"))]
        reads_t5 = bool(reading) and all(w == T5_XXL_WIDTH for w in reading)
    else:                                  # attention as it was, behind a projection of the text
        reads_t5 = (_plain(width) == _plain(theirs) and isinstance(projection, torch.nn.Linear)
                    and projection.in_features == T5_XXL_WIDTH and projection.out_features == theirs)
    yours, base = (sum(p.numel() for p in model.parameters()) for model in (unet, pipe.unet))
    print(f"  your UNet: {yours:,} parameters, on the {next(unet.parameters()).device.type} device; this pipeline's, "
          f"which reads text {theirs} wide: {base:,}")
    same = all(_plain(unet.config[key]) == _plain(pipe.unet.config[key]) for key in UNET_LAYOUT)
    return names == {"tokenizer", "text_encoder"} and same and reads_t5


# --------------------------------------------------------------------------- 01 text encoding

def tokens_of_your_prompt(answer, *, tokenizer, prompt: str) -> bool:
    """01.1: `answer` is the number of tokens, BOS and EOS not counted, of the learner's `prompt`: words of
    letters only, with at least twice as many tokens as words."""
    words = prompt.split() if isinstance(prompt, str) else []
    if not words or not all(word.isalpha() for word in words):
        return _note("write my_prompt_1 in words of letters only (no digits, no punctuation)")
    if len(_tokens(tokenizer, prompt)) < 2 * len(words):
        return _note(f"{len(words)} words need at least {2 * len(words)} tokens: choose rarer words")
    return bool(answer == len(_tokens(tokenizer, prompt)))


def position_of_your_word(answer, *, tokenizer, prompt: str, word: str) -> bool:
    """01.2: `answer` is the position (0..76) of the one-token `word` among the 77 ids of the learner's `prompt`,
    in which a word before it is cut into pieces, so that `word` does not stand at its word number + 1."""
    if not (isinstance(prompt, str) and isinstance(word, str)):
        return _note("set my_prompt_2 and my_word_2 to a prompt of your own and one of its words")
    words = prompt.lower().split()
    if word.lower() not in words:
        return _note(f"write {word!r} as a word of its own in my_prompt_2")
    position = token_position(tokenizer, prompt, word)  # raises, saying why, if the word is several tokens
    if position == words.index(word.lower()) + 1:
        return _note(f"every word before {word!r} is one token: put a word before it that is cut into pieces")
    return bool(answer == position)


def tail_is_read(answer, *, pipe, long_prompt: str, tail: str) -> bool:
    """01.3: the learner's prompt `answer` keeps `long_prompt`'s start (up to its first comma), ends with `tail`,
    and the model reads its last word: changing only that word changes `prompt_embeds`."""
    start = long_prompt.split(",")[0]
    print(f"  your prompt: {len(_tokens(pipe.tokenizer, answer))} tokens; "
          f"the model reads {pipe.tokenizer.model_max_length - 2}")
    if not (answer.startswith(start) and answer.endswith(tail)):
        return _note(f"keep the start {start!r} and end with {tail!r}")
    last = tail.split()[-1]
    changed = answer[: -len(last)] + ("bottom" if last != "bottom" else "top")
    return not torch.allclose(prompt_embeds(pipe, answer), prompt_embeds(pipe, changed))


def first_row_to_copy(answer, *, pipe, prompts: Sequence[str]) -> bool:
    """01.4: `answer` is the largest first_row for which rows first_row..76 of the second prompt's
    `prompt_embeds`, copied into the first prompt's, give the second prompt's exactly: the first row at which
    the two prompts' rows differ, measured on the pipeline's text encoder ("the same" up to 1e-3 of the rows'
    size, as `row_tol` in section 5)."""
    prompt_a, prompt_b = prompts
    if not (isinstance(prompt_a, str) and isinstance(prompt_b, str)) or prompt_a == prompt_b:
        return _note("set prompt_4a and prompt_4b to two different prompts of your own")
    rows = prompt_embeds(pipe, [prompt_a, prompt_b]).float().cpu()       # (2, 77, d)
    tol = 1e-3 * float(rows[1].norm(dim=-1).mean())
    differ = torch.nonzero((rows[0] - rows[1]).norm(dim=-1) > tol)       # the rows that are not the same
    if not len(differ):
        return _note("your two prompts give the same prompt_embeds: make them differ within their first 75 tokens")
    return bool(answer == int(differ[0]))


# --------------------------------------------------------------------------- 02 forward diffusion

def snr_below_your_level(answer, *, pipe, level: float) -> bool:
    """02.1: `answer` is the first timestep at which the pipeline's SNR(t) = alpha_bar_t / (1 - alpha_bar_t)
    falls below the learner's `level` (any level inside the schedule's range but 1, which section 2 prints)."""
    snr_t = snr(pipe.scheduler.alphas_cumprod.float().cpu())
    if not _is_number(level) or level == 1 or not snr_t[-1] < level < snr_t[0]:
        return _note(f"choose level_1 between SNR({len(snr_t) - 1}) = {snr_t[-1]:.2g} and SNR(0) = {snr_t[0]:.0f}, "
                     "other than 1")
    return bool(answer == first_timestep_below(snr_t, level))


def your_jump(answer: Callable, *, pipe) -> bool:
    """02.2: the learner's function `answer(x0, noise, timesteps)` gives x_t ~ q(x_t | x_0) for a batch with one
    timestep per sample: run on a fresh batch of the pipeline's latent shape, at timesteps from the start to the
    end of the schedule, it must agree with the scheduler's `add_noise`."""
    T = pipe.scheduler.config.num_train_timesteps
    side = pipe.unet.config.sample_size
    g = torch.Generator().manual_seed(202)
    x0, noise = torch.randn(2, 3, pipe.unet.config.in_channels, side, side, generator=g)  # (batch, 4, h, w) each
    timesteps = torch.tensor([T // 10, (6 * T) // 10, T - 1])
    expected = pipe.scheduler.add_noise(x0, noise, timesteps)
    got = answer(x0.clone(), noise.clone(), timesteps.clone())
    return (isinstance(got, torch.Tensor) and got.shape == expected.shape
            and torch.allclose(got.float().cpu(), expected, rtol=1e-4, atol=1e-5))


def structure_left(answer, *, t: int, window: Sequence[int], x0, z0, noises, scheduler, correlation, pool) -> bool:
    """02.3: `answer` is (r_pixels, r_latents) at the learner's timestep `t`, chosen inside `window` (the two
    timesteps at which pixel patches and latents fall below r = 0.5): the correlation of the noised pixels with
    the clean ones, both through `pool`, and of the noised latents with the clean ones -- measured again with the
    notebook's own `correlation` and `pool` and the same `noises` (pixel noise, latent noise)."""
    low, high = sorted(int(w) for w in window)
    if not _is_int(t) or not low <= t <= high:
        return _note(f"choose t_3, an int from {low} to {high}")
    pixel_noise, latent_noise = noises
    at = torch.tensor([int(t)])
    expected = [correlation(pool(scheduler.add_noise(x0, pixel_noise, at)), pool(x0)),
                correlation(scheduler.add_noise(z0, latent_noise, at), z0)]
    got = np.asarray(answer, dtype=float)
    return got.shape == (2,) and bool(np.allclose(got, expected, rtol=1e-3, atol=1e-4))


# --------------------------------------------------------------------------- 03 reverse diffusion

def noise_from_x0(answer: Callable, *, pipe) -> bool:
    """03.1: the learner's `answer(x_t, x0, t)` gives back the noise that took `x0` to `x_t` at the int timestep
    `t`: the forward jump x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise (Ho et al., 2020, eq. 4,
    arXiv:2006.11239) solved for the noise, as DDIM does for a model that predicts x0. Run on a fresh batch of the
    pipeline's latent shape, noised by the scheduler's `add_noise` at timesteps from the start to the end of the
    schedule, it must return the noise that was used."""
    T = pipe.scheduler.config.num_train_timesteps
    side = pipe.unet.config.sample_size
    g = torch.Generator().manual_seed(303)
    x0, noise = torch.randn(2, 3, pipe.unet.config.in_channels, side, side, generator=g)  # (batch, 4, h, w) each
    for t in (T // 20, T // 2, T - 1):
        x_t = pipe.scheduler.add_noise(x0, noise, torch.tensor([t] * len(x0)))
        got = answer(x_t.clone(), x0.clone(), t)
        if not (isinstance(got, torch.Tensor) and got.shape == noise.shape
                and torch.allclose(got.float().cpu(), noise, rtol=1e-3, atol=1e-4)):
            return False
    return True


def ddim_sigmas(answer, *, pipe, num_inference_steps: int) -> bool:
    """03.2: `answer` holds sigma_t(eta = 1) of every step of a DDIM run of the learner's `num_inference_steps`, in
    the order the steps run (Song et al., 2021, eq. 16, arXiv:2010.02502) -- measured by diffusers' own
    `DDIMScheduler.step`, which from x_t = 0 with a zero noise prediction and variance_noise = 1 lands on sigma_t."""
    T = pipe.scheduler.config.num_train_timesteps
    if not _is_int(num_inference_steps) or not 2 <= num_inference_steps <= T:
        return _note(f"choose steps_2, a number of steps from 2 to {T}")
    ddim = DDIMScheduler.from_config(pipe.scheduler.config)
    ddim.set_timesteps(num_inference_steps)
    zero, one = torch.zeros(1), torch.ones(1)
    expected = [float(ddim.step(zero, int(t), zero, eta=1.0, variance_noise=one).prev_sample) for t in ddim.timesteps]
    got = np.asarray(answer, dtype=float).ravel()
    return got.shape == (len(expected),) and bool(np.allclose(got, expected, rtol=1e-3, atol=1e-6))


DDIM_SPACINGS = ("leading", "linspace", "trailing")


def first_step_matters(answer, *, pipe, num_inference_steps: int, n_prompts: int, baseline: dict) -> bool:
    """03.3: `answer` maps each of DDIM's timestep spacings to (its first timestep, the adherence the learner
    measured with it) at the learner's `num_inference_steps` -- a step count that section 6 did not measure
    (`baseline`: its adherence by step count, leading spacing). The first timesteps are worked out again with
    DDIM's `set_timesteps` from the config of `pipe` (the engine measured); an adherence needs the UNet, so it is
    only checked to be a count out of the `n_prompts` prompts, and printed with its 95 % interval beside the
    baseline."""
    if not _is_int(num_inference_steps) or not 2 <= num_inference_steps <= 10 or num_inference_steps in baseline:
        return _note(f"choose steps_3, a number of steps from 2 to 10 that section 6 did not measure "
                     f"(not {', '.join(str(n) for n in baseline)})")
    if not (isinstance(answer, dict) and set(answer) == set(DDIM_SPACINGS)):
        return _note(f"answer a dict with one (first timestep, adherence) per spacing: {', '.join(DDIM_SPACINGS)}")
    right = True
    print(f"  {num_inference_steps} DDIM steps, {n_prompts} prompts:")
    for spacing in DDIM_SPACINGS:
        ddim = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing=spacing)
        ddim.set_timesteps(num_inference_steps)
        first, rate = answer[spacing]
        counted = _count_of(rate, n_prompts) is not None
        right = right and counted and int(first) == int(ddim.timesteps[0])
        print(f"    {spacing:>8}: your first timestep {first}, adherence "
              + (_rate_line(rate, n_prompts) if counted else f"{rate} (not a count out of {n_prompts})"))
    print("  section 6, leading spacing: "
          + ", ".join(f"{n} step{'s' * (n > 1)} {100 * a:.0f}%" for n, a in baseline.items()))
    return bool(right)


# --------------------------------------------------------------------------- 04 latent space

def vae_compression(answer, *, pipe, channels: int) -> bool:
    """04.1: `answer` is how many times fewer numbers than the image the latents hold of a VAE like this
    pipeline's with the learner's number of latent `channels` (SD 3's has 16): prod(image) / prod(latents) for a
    (3, H, W) image and (channels, H / f, W / f) latents, f this VAE's scale factor -- the same at any image size."""
    own = pipe.vae.config.latent_channels
    if not _is_int(channels) or channels < 1 or channels == own:
        return _note(f"choose channels_1, a number of latent channels other than this VAE's {own}")
    f = pipe.vae_scale_factor
    side = pipe.unet.config.sample_size * f                         # the native size; any size gives the same
    expected = (3 * side * side) / (channels * (side // f) ** 2)
    return math.isclose(float(answer), expected, rel_tol=1e-6)


def psnr_of_your_factor(answer, *, pipe, latents: torch.Tensor, right: torch.Tensor, multiplier: float,
                        tried: Sequence[float]) -> bool:
    """04.2: `answer` holds, image by image, the PSNR in dB -- 10 log10(1 / MSE) for images in [0, 1] -- of
    `latents` decoded with the learner's `multiplier` x the VAE's scaling factor, against `right`, their decoding
    with the right factor; for a multiplier that section 3 did not try (`tried`). Decodes the latents again with it
    (`sdlab.latents.decode`: the VAE's decoder only, no UNet) and measures with `sdlab.latents.psnr`."""
    if not _is_number(multiplier) or multiplier <= 0 or multiplier == 1 or multiplier in tried:
        return _note(f"choose multiplier_2, a positive number other than 1 and section 3's "
                     f"{', '.join(f'{m:g}' for m in tried)}")
    decoded = decode(pipe, latents, scaling_factor=multiplier * pipe.vae.config.scaling_factor)  # (n, 3, H, W)
    expected = psnr(decoded, right.float().cpu()).numpy()
    got = np.asarray(answer, dtype=float).ravel()
    return got.shape == expected.shape and bool(np.allclose(got, expected, rtol=1e-3, atol=1e-3))


def lerp_norms(answer, *, pipe, seed_pairs, t: float) -> bool:
    """04.3: `answer` is the mean, over the learner's `seed_pairs` (at least 100), of the norm of lerp(a, b, t)
    relative to sqrt(d), at the learner's `t` (not one of section 5's): a and b are Gaussian noises of the
    pipeline's latent shape (d numbers), seeded with each pair as section 5's `noise` draws them."""
    if not _is_number(t) or not 0 < t < 1 or t in (0.25, 0.5, 0.75):
        return _note("choose t_3 between 0 and 1, other than section 5's 0.25, 0.5 and 0.75")
    pairs = [tuple(pair) for pair in seed_pairs] if isinstance(seed_pairs, (list, tuple)) else []
    if len(pairs) < 100 or not all(len(p) == 2 and _is_int(p[0]) and _is_int(p[1]) and p[0] != p[1] for p in pairs):
        return _note("set seed_pairs_3 to at least 100 pairs of two different int seeds")
    side = pipe.unet.config.sample_size
    shape = (1, pipe.unet.config.in_channels, side, side)

    def noise(seed):
        return torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))

    norms = [float(torch.lerp(noise(a), noise(b), float(t)).norm()) / math.prod(shape) ** 0.5 for a, b in pairs]
    return math.isclose(float(answer), float(np.mean(norms)), rel_tol=1e-4)


# --------------------------------------------------------------------------- 05 full pipeline

def noise_predictions(answer, *, pipe, num_inference_steps: int, guidance_scale: float) -> bool:
    """05.1: `answer` is how many noise predictions -- latents through the UNet, summed over its calls -- one image
    costs at the learner's `num_inference_steps` and `guidance_scale`: one call per timestep of the pipeline's
    scheduler (`retrieve_timesteps`), each on two latents when diffusers runs classifier-free guidance
    (`do_classifier_free_guidance`: guidance_scale > 1, for a UNet without a guidance embedding), on one otherwise."""
    if not (_is_int(num_inference_steps) and num_inference_steps >= 1 and num_inference_steps != 25
            and _is_number(guidance_scale) and guidance_scale >= 0):
        return _note("choose steps_1, a number of steps other than section 1's 25, and guidance_1, a guidance scale "
                     "of at least 0")
    guided = guidance_scale > 1 and pipe.unet.config.time_cond_proj_dim is None
    return bool(answer == len(_timesteps(pipe.scheduler, num_inference_steps)) * (2 if guided else 1))


def guidance_rescaled(answer: Callable, *, pipe) -> bool:
    """05.2: the learner's `answer(noise_pred_uncond, noise_pred_text, guidance_scale, guidance_rescale)` does what
    diffusers' denoising loop does with `guidance_rescale`: classifier-free guidance (Ho & Salimans, 2022, eq. 6),
    then each image's guided prediction rescaled to the spread of its text prediction and mixed back (Lin et al.,
    2024, Sec. 3.4, arXiv:2305.08891). Run on a fresh batch of the pipeline's latent shape whose two images differ
    in spread, at several scales, it must agree with diffusers' `rescale_noise_cfg`."""
    side, channels = pipe.unet.config.sample_size, pipe.unet.config.in_channels
    g = torch.Generator().manual_seed(505)
    uncond, text = torch.randn(2, 2, channels, side, side, generator=g)   # (batch, 4, h, w) each
    text = text * torch.tensor([1.0, 3.0]).view(-1, 1, 1, 1)              # the two images' spreads differ
    for w, phi in ((7.5, 0.0), (7.5, 0.7), (3.0, 1.0), (1.5, 0.3)):
        expected = rescale_noise_cfg(uncond + w * (text - uncond), text, guidance_rescale=phi)
        got = answer(uncond.clone(), text.clone(), w, phi)
        if not (isinstance(got, torch.Tensor) and got.shape == expected.shape
                and torch.allclose(got.float().cpu(), expected, rtol=1e-4, atol=1e-5)):
            return False
    return True


def scheduler_per_unet_call(answer, *, pipe, scheduler, num_inference_steps: int, n_prompts: int,
                            section_5: dict) -> bool:
    """05.3: `answer` is (adherence, UNet calls) of the learner's measurement on `pipe` (the tiny engine): the
    judge's adherence over `n_prompts` prompts in one batch, with the learner's `scheduler` class in trailing
    spacing at `num_inference_steps` -- a pair that section 5 did not measure (`section_5`: its adherence by
    scheduler class and step count) -- and the UNet calls it took. The calls are worked out again, one per
    timestep of the scheduler (`retrieve_timesteps`); an adherence needs the UNet, so it is only checked to be a
    count out of `n_prompts`, and printed with its 95 % interval beside section 5's."""
    if not (isinstance(scheduler, type) and issubclass(scheduler, SchedulerMixin)):
        return _note("set scheduler_3 to a diffusers scheduler class (not one built), e.g. HeunDiscreteScheduler")
    measured = section_5.get(scheduler, {})
    if not _is_int(num_inference_steps) or num_inference_steps < 1 or num_inference_steps in measured:
        return _note("choose scheduler_3 and steps_3 that section 5 did not measure together")
    rate, calls = answer
    if _count_of(rate, n_prompts) is None:
        return _note(f"answer the adherence that bench.adherence measured: a count out of the {n_prompts} prompts")
    print(f"  {scheduler.__name__}, {num_inference_steps} steps: {_rate_line(rate, n_prompts)} of {n_prompts} "
          f"prompts, your count of UNet calls {calls}")
    for cls, by_steps in section_5.items():
        print(f"  section 5, {cls.__name__}: " + ", ".join(f"{n} steps {100 * a:.0f}%" for n, a in by_steps.items()))
    trailing = scheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    return bool(calls == len(_timesteps(trailing, num_inference_steps)))


# --------------------------------------------------------------------------- 06 training

def first_full_weight(answer, *, noise_scheduler, gamma: float) -> bool:
    """06.1: `answer` is the smallest timestep whose min-SNR-gamma weight min(SNR_t, gamma) / SNR_t (Hang et al.,
    2023, arXiv:2303.09556) is exactly 1, for the learner's `gamma` (not the 5 of section 1), on the noise
    scheduler's schedule."""
    snr_t = snr(noise_scheduler.alphas_cumprod.float().cpu())
    if not _is_number(gamma) or gamma == 5 or not snr_t[-1] < gamma < snr_t[0]:
        return _note(f"choose gamma_1 between SNR({len(snr_t) - 1}) = {snr_t[-1]:.2g} and SNR(0) = {snr_t[0]:.0f}, "
                     "other than 5")
    weights = torch.clamp(snr_t, max=float(gamma)) / snr_t
    return bool(answer == int(torch.nonzero(weights == 1)[0]))


def empty_captions_counted(answer, *, batch_size: int, caption_dropout: float) -> bool:
    """06.2: `answer` holds the number of empty captions in each of at least 1,000 batches of the learner's
    `batch_size`, each caption dropped with probability `caption_dropout`. Such a count is binomial: the check
    prints the counts' mean with its 95 % interval beside batch_size x caption_dropout, and their spread beside the
    binomial's; the mean and the variance must both fit within 99.9 % intervals."""
    if not (_is_int(batch_size) and batch_size >= 16 and _is_number(caption_dropout)
            and 0.05 <= caption_dropout <= 0.5):
        return _note("choose batch_size_2, an int of at least 16, and dropout_2, between 0.05 and 0.5")
    counts = np.asarray(answer, dtype=float).ravel()
    if len(counts) < 1000 or np.any(counts != np.round(counts)) or counts.min() < 0 or counts.max() > batch_size:
        return _note("answer the number of empty captions in each batch, for at least 1,000 batches")
    n, p = len(counts), float(caption_dropout)
    expected_mean, expected_var = batch_size * p, batch_size * p * (1 - p)
    mean, half = mean_interval(counts)
    print(f"  {n} batches of {batch_size}: {mean:.2f} empty captions per batch [95% interval {mean - half:.2f}-"
          f"{mean + half:.2f}]; batch size x dropout = {expected_mean:.2f}. From batch to batch the count varies "
          f"by {counts.std(ddof=1):.2f} (standard deviation; binomial: {math.sqrt(expected_var):.2f})")
    excess_kurtosis = (1 - 6 * p * (1 - p)) / expected_var              # of a binomial count
    se_mean = math.sqrt(expected_var / n)
    se_var = expected_var * math.sqrt(2 / (n - 1) + excess_kurtosis / n)  # of the sample variance
    return bool(abs(mean - expected_mean) <= Z999 * se_mean
                and abs(counts.var(ddof=1) - expected_var) <= Z999 * se_var)


def zero_noise_loss(answer, *, latents: torch.Tensor, seed: int) -> bool:
    """06.3: `answer` is the plain loss (DDPM eq. 14, no min-SNR) of a "network" that always predicts zero noise,
    on `latents`, with the noise drawn first from a generator seeded with the learner's `seed`, as
    `training_loss_by_hand` draws it: the mean of noise ** 2 for that very noise."""
    if not _is_int(seed):
        return _note("set seed_3 to the int you seeded your generator with")
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(int(seed)))
    return math.isclose(float(answer), float((noise ** 2).mean()), rel_tol=1e-4)


# --------------------------------------------------------------------------- 07 fine-tuning

def placeholder_numbers(answer, *, pipe, tokens: Sequence[str]) -> bool:
    """07.1: `answer` is how many numbers textual inversion trains for the learner's placeholder `tokens` -- at
    least two, one concept learned as several vectors, as diffusers' `textual_inversion.py --num_vectors` does --
    once they are added to this pipeline: one row of the token-embedding table per token, `hidden_size` numbers
    each (Gal et al., 2022, arXiv:2208.01618)."""
    tokens = [tokens] if isinstance(tokens, str) else list(tokens or [])
    if len(set(tokens)) < 2:
        return _note("set tokens_1 to at least two placeholder tokens of your own, e.g. ['<my-0>', '<my-1>']")
    added = pipe.tokenizer.get_added_vocab()
    rows = pipe.text_encoder.get_input_embeddings().weight.shape[0]
    special = set(pipe.tokenizer.all_special_tokens)
    missing = [token for token in tokens if token not in added or added[token] >= rows or token in special]
    if missing:
        return _note(f"add {', '.join(missing)} to pipe first: finetune.add_placeholder_token(pipe.tokenizer, "
                     "pipe.text_encoder, token, initializer='square')")
    return bool(answer == len(set(tokens)) * pipe.text_encoder.config.hidden_size)


def lora_on_first_to_k(answer, *, unet, rank: int) -> bool:
    """07.2: `answer` is how many numbers a LoRA of the learner's `rank` adds to the first cross-attention key
    projection of `unet` (the first module whose name ends in attn2.to_k): r x (in + out), for A (r x in) and B
    (out x r) (Hu et al., 2021, Sec. 4.1, arXiv:2106.09685). Reads the layer inside a peft wrapper too."""
    if not _is_int(rank) or rank < 1:
        return _note("choose rank_2, a LoRA rank of at least 1")
    to_k = next(module for name, module in unet.named_modules() if name.endswith("attn2.to_k"))
    layer = getattr(to_k, "base_layer", to_k)
    return bool(answer == rank * (layer.in_features + layer.out_features))


class _LoraProbe(torch.nn.Module):
    """One linear layer for `merged_by_hand` to put a LoRA of its own on."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(12, 10)


def merged_by_hand(answer: Callable, *, unet) -> bool:
    """07.3: the learner's `answer(layer)` merges a peft LoRA layer into one weight matrix, W' = W + (lora_alpha / r)
    B A (Hu et al., 2021, Sec. 4.1, arXiv:2106.09685): compared with W + peft's own `get_delta_weight` on every LoRA
    linear layer of `unet`, and on a layer of the check's own whose lora_alpha / r is 3, not 1."""
    from peft import LoraConfig, inject_adapter_in_model

    layers = [m for m in unet.modules() if hasattr(m, "lora_A") and "default" in m.lora_A]
    if not layers:
        return _note("unet holds no LoRA adapter: run section 4 first")
    with torch.random.fork_rng(devices=[]):  # random A and B (init_lora_weights=False), the learner's RNG untouched
        torch.manual_seed(707)
        probe = inject_adapter_in_model(LoraConfig(r=2, lora_alpha=6, init_lora_weights=False,
                                                   target_modules=["proj"]), _LoraProbe())
    for layer in [*layers, probe.proj]:
        base = layer.get_base_layer()
        if not isinstance(base, torch.nn.Linear):
            continue
        with torch.no_grad():
            expected = base.weight.float() + layer.get_delta_weight("default").float()   # (out, in)
            got = answer(layer)
        if not (isinstance(got, torch.Tensor) and got.shape == expected.shape
                and torch.allclose(got.detach().float().to(expected.device), expected, rtol=1e-4, atol=1e-6)):
            return False
    return True


# --------------------------------------------------------------------------- 08 beyond

def img2img_steps(answer, *, pipe, strength: float, num_inference_steps: int) -> bool:
    """08.1: `answer` is (the number of steps img2img ran, the timestep of the first) at the learner's `strength`
    and `num_inference_steps`, with the DDIM sampler that `strength_sweep` uses -- worked out by diffusers' img2img
    pipeline itself (`get_timesteps`), without running the UNet."""
    if not (_is_number(strength) and 0 < strength <= 1 and _is_int(num_inference_steps) and num_inference_steps > 0):
        return _note("choose strength_1, above 0 and at most 1, and steps_1, a number of inference steps")
    img2img = StableDiffusionImg2ImgPipeline(**{**pipe.components,
                                                "scheduler": DDIMScheduler.from_config(pipe.scheduler.config)},
                                             requires_safety_checker=pipe.config.requires_safety_checker)
    img2img.scheduler.set_timesteps(num_inference_steps)
    timesteps, steps = img2img.get_timesteps(num_inference_steps, strength, "cpu")
    if steps < 1:
        return _note(f"at strength {strength} not one of {num_inference_steps} steps runs: choose a higher strength")
    ran, first = answer
    return bool(ran == steps and first == int(timesteps[0]))


def inpainting_unet(answer, *, pipe) -> bool:
    """08.2: `answer` is the UNet of an inpainting checkpoint for this pipeline: the pipeline's UNet config with
    input channels for the noisy latents, the mask and the masked image's latents, as diffusers'
    `StableDiffusionInpaintPipeline` feeds them; the rest unchanged. Prints both UNets' parameter counts (which
    can be counted on the meta device too)."""
    wanted = 2 * pipe.vae.config.latent_channels + 1  # latents + mask + masked-image latents, stacked on channels
    yours, theirs = (sum(p.numel() for p in unet.parameters()) for unet in (answer, pipe.unet))
    print(f"  your UNet: {answer.config.in_channels} input channels, {yours:,} parameters, on the "
          f"{next(answer.parameters()).device.type} device; this pipeline's: {pipe.unet.config.in_channels} input "
          f"channels, {theirs:,} parameters")
    same = all(_plain(answer.config[key]) == _plain(pipe.unet.config[key])
               for key in ("out_channels", "sample_size", "block_out_channels", "down_block_types", "up_block_types",
                           "cross_attention_dim"))
    return same and answer.config.in_channels == wanted and answer.conv_in.in_channels == wanted


def uniform_share(answer, *, mask) -> bool:
    """08.3: `answer` is (area, inside) for the learner's object `mask` (H, W): the object's area fraction, and the
    share of an evenly spread attention map that falls inside it (`attention.mass_inside` of a map whose cells are
    all equal)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or not 0 < mask.mean() < 1:
        return _note("make object_mask_3 the pixels of one object: shapes.foreground(shapes.draw([...]))")
    expected = [float(mask.mean()), mass_inside(torch.ones(8, 8), mask)]
    got = np.asarray(answer, dtype=float)
    return got.shape == (2,) and bool(np.allclose(got, expected, rtol=1e-3, atol=1e-4))


def own_and_other(answer, *, pipe, pair) -> bool:
    """08.4: `answer` is (own, other): the attention ratio of the first object's colour word on its own object and
    on the other object of the learner's `pair` -- two `shapes.Thing`s of one colour on opposite sides -- as
    `attention.pair_attention(pipe, [pair], seed=0)` measures it. The one check that generates (one image)."""
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        return _note("set exercise_pair to two shapes.Thing(...)s")
    first, second = pair
    if first.colour != second.colour:
        return _note("give both objects one colour: the question is whether two equal words find their own objects")
    if {first.position, second.position} not in ({"left", "right"}, {"top", "bottom"}):
        return _note("put the two objects on opposite sides: left and right, or top and bottom")
    binding = pair_attention(pipe, [tuple(pair)], seed=0)
    if not len(binding["own"]["colour"]):
        return _note("the model did not draw both objects for this pair and seed: try another pair")
    expected = (binding["own"]["colour"][0], binding["other"]["colour"][0])
    return bool(np.allclose(np.asarray(answer, dtype=float), expected, rtol=0.05))


# --------------------------------------------------------------------------- 09 after v1.5

def eps_of_velocity(answer: Callable) -> bool:
    """09.1: `answer(x_t, u, t)` gives the noise back from a predicted velocity: eps = x_t + (1 - t) u, compared with
    `flow.eps_from_velocity` on random tensors at several times."""
    g = torch.Generator().manual_seed(9)
    for t in (0.1, 0.5, 0.9):
        x_t, u = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
        got = answer(x_t, u, t)
        if not (isinstance(got, torch.Tensor) and got.shape == x_t.shape):
            return _note("return a tensor of x_t's shape")
        if not torch.allclose(got, flow.eps_from_velocity(x_t, u, t), atol=1e-5):
            return False
    return True


def shifted_sigmas(answer, *, num_inference_steps: int, shift: float) -> bool:
    """09.2: `answer` lists the flow times (without the final 0) of `FlowMatchEulerDiscreteScheduler(shift=shift)`
    for `num_inference_steps` steps, as diffusers computes them."""
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(num_inference_steps)
    expected = scheduler.sigmas[:-1].numpy()
    got = np.asarray(answer, dtype=float)
    return got.shape == expected.shape and bool(np.allclose(got, expected, atol=2e-3))


def single_stream_share(answer) -> bool:
    """09.3: `answer` is the fraction of FLUX.1 [dev]'s transformer parameters in its single-stream blocks, counted
    on the meta device."""
    if not _is_number(answer) or not 0 < answer < 1:
        return _note("answer a fraction between 0 and 1")
    flux = architectures.build_denoiser("FLUX.1 dev")
    share = architectures.count_parameters(flux.single_transformer_blocks) / architectures.count_parameters(flux)
    return bool(abs(answer - share) < 5e-3)
