"""The checks of the series' exercises: each one measures the learner's own work again.

A check gets the learner's answer and, by name, the context the exercise was done in -- the pipeline, its
tokenizer, the tensors the learner worked on, and the choices the learner made (a prompt, a level, a strength) --
and works the right answer out from them. No answer is written down here, so a notebook cell shows the task and
not its solution, and the checks hold on every engine: the tiny one, the SD-shaped one with random weights, and
SD v1.5. A check returns whether the answer is right; when the learner's *choice* does not fit the task, it
prints a note that says what to change (never the answer). Each is cheap: the text encoder once or twice, a
scheduler, small tensors -- no UNet call.

`sdlab.exercises` registers them by name, "NN.k" for exercise k of notebook NN, with their hints:

    exercises.check("06.2", answer_2, batch_size=batch_size_2, caption_dropout=dropout_2)
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch
from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

from .attention import mass_inside
from .schedule import first_timestep_below, snr
from .stats import mean_interval
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


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


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
