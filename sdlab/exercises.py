"""Self-checking exercises: a check runs even before the learner answers, so notebooks run top to bottom.

    answer = None          # your answer here
    check_answer("ex1", answer, expected=0.18215, hint="1 / std of the latents")

prints "ex1: not attempted yet" while `answer` is None, "ex1: correct" when it matches (numbers
with a tolerance, tensors with `torch.allclose`), and "ex1: not quite -- <hint>" otherwise.

An exercise whose right answer depends on the notebook -- on the pipeline, on the tensors the learner worked on,
on a prompt or a strength the learner chose -- is registered here by name instead ("NN.k": exercise k of notebook
NN). Its check, in `sdlab.exercise_checks`, works the answer out from the context the cell passes, so the cell
shows the task and not its solution:

    exercises.check("06.2", answer_2, batch_size=batch_size_2, caption_dropout=dropout_2)
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import exercise_checks

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


# --------------------------------------------------------------------------- the registry

@dataclass(frozen=True)
class Exercise:
    """A registered exercise: `judge(answer, **context)` says whether an answer is right (its docstring says what
    it measures); `hint` guides a wrong answer without giving the right one away."""

    judge: Callable[..., bool]
    hint: str


EXERCISES: dict[str, Exercise] = {
    "00.1": Exercise(exercise_checks.latent_numbers,
                     "make one image of your size with sdlab.generate(..., height=..., width=..., "
                     "output_type='latent') and count the numbers of its .images with .numel()"),
    "00.2": Exercise(exercise_checks.unet_calls_of_your_scheduler,
                     "run trace_shapes(pipe, world_prompt, steps=steps_2) inside "
                     "`with engines.use_scheduler(pipe, scheduler_2):` and read 'unet_calls'; guidance doubles the "
                     "batch, not the calls"),
    "00.3": Exercise(exercise_checks.text_encoder_swap,
                     "the UNet sees the text only as encoder_hidden_states (section 3): swap what makes them, and "
                     "change the one UNet config value that section 2 compared with the text encoder's width"),
    "01.1": Exercise(exercise_checks.tokens_of_your_prompt,
                     "count every piece of every word (tokenizer.tokenize lists them); BOS and EOS are not counted"),
    "01.2": Exercise(exercise_checks.position_of_your_word,
                     "position 0 is BOS, and a word cut into pieces takes one position per piece "
                     "(text.token_table lists them)"),
    "01.3": Exercise(exercise_checks.tail_is_read,
                     "keep long_prompt's start and end with `tail`; only BOS + 75 tokens + EOS reach the model"),
    "01.4": Exercise(exercise_checks.first_row_to_copy,
                     "same_as_b(copy_rows_from(0)) is True; raise first_row until it turns False, "
                     "and take the last value before that"),
    "02.1": Exercise(exercise_checks.snr_below_your_level,
                     "SNR(t) = alpha_bar_t / (1 - alpha_bar_t) falls as t grows: find the first t at which it is "
                     "below your level, in the tensor rather than on the plot"),
    "02.2": Exercise(exercise_checks.your_jump,
                     "index alphas_cumprod with the timesteps, one alpha_bar per sample, and shape it to "
                     "(batch, 1, 1, 1) so that it scales each sample of the batch"),
    "02.3": Exercise(exercise_checks.structure_left,
                     "noise both at t_3; r_pixels = correlation(pool(x_t), pool(x0)), "
                     "r_latents = correlation(z_t, z0), without pool"),
    "03.1": Exercise(exercise_checks.noise_from_x0,
                     "start from the forward jump of section 1 and solve it for the noise; alphas_cumprod[t] is "
                     "alpha_bar_t, and x0 is given"),
    "03.2": Exercise(exercise_checks.ddim_sigmas,
                     "one sigma per timestep of your own run, in its order; the previous timestep is "
                     "t - num_train_timesteps // steps_2, and after the last step diffusers uses final_alpha_cumprod"),
    "03.3": Exercise(exercise_checks.first_step_matters,
                     "per spacing: DDIMScheduler.from_config(tiny.scheduler.config, timestep_spacing=spacing), set "
                     "to steps_3 steps, gives the first timestep; measure(spacing, [steps_3])[steps_3] the adherence"),
    "04.1": Exercise(exercise_checks.vae_compression,
                     "build AutoencoderKL.from_config({**vae.config, 'latent_channels': channels_1}), encode a small "
                     "image with it, and give compression_factor the image's and the latents' shapes, batch left out"),
    "04.2": Exercise(exercise_checks.psnr_of_your_factor,
                     "decode `generated` as section 3 does, with multiplier_2 * scaling_factor, and compare it with "
                     "`right` using psnr: one value per prompt"),
    "04.3": Exercise(exercise_checks.lerp_norms,
                     "for each pair (s, s2): norm(lerp(noise(s), noise(s2), t_3)); then the mean of those norms"),
    "05.1": Exercise(exercise_checks.noise_predictions,
                     "hook pipe.unet (register_forward_hook) and add up args[0].shape[0] over every call of one "
                     "pipe(prompt, ...) with your steps and guidance; at some guidance scales diffusers skips a half"),
    "05.2": Exercise(exercise_checks.guidance_rescaled,
                     "one standard deviation per image, over its channels, height and width (keepdim=True, so that it "
                     "broadcasts), not one for the whole batch; with guidance_rescale = 0 it is plain eq. 6"),
    "05.3": Exercise(exercise_checks.scheduler_per_unet_call,
                     "count with a forward hook on tiny.unet while bench.adherence runs inside "
                     "engines.use_scheduler(tiny, trailing(scheduler_3, tiny.scheduler)), all prompts in one batch"),
    "06.1": Exercise(exercise_checks.first_full_weight,
                     "compute the weights for your gamma as `weights` was computed in section 1, "
                     "then look up the first t where they equal 1 -- in the tensor, not on the plot"),
    "06.2": Exercise(exercise_checks.empty_captions_counted,
                     "draw each batch as the training loop does, torch.rand(batch_size_2) < dropout_2, "
                     "and answer the list of how many captions each batch dropped"),
    "06.3": Exercise(exercise_checks.zero_noise_loss,
                     "replace only noise_pred, keep the plain loss (snr_gamma=None), and pass a fresh "
                     "torch.Generator().manual_seed(seed_3)"),
    "07.1": Exercise(exercise_checks.placeholder_numbers,
                     "add each token with finetune.add_placeholder_token(pipe.tokenizer, pipe.text_encoder, token, "
                     "initializer='square'), and compare the embedding table's shape before and after"),
    "07.2": Exercise(exercise_checks.lora_on_first_to_k,
                     "the first name in pipe.unet.named_modules() that ends in 'attn2.to_k'; the Linear may sit in "
                     "its .base_layer; section 4 says what a LoRA adds per layer, from in_features and out_features"),
    "07.3": Exercise(exercise_checks.merged_by_hand,
                     "peft keeps lora_alpha / r in layer.scaling['default'] (not always 1); B A must have W's shape, "
                     "(out, in)"),
    "08.1": Exercise(exercise_checks.img2img_steps,
                     "use DDIM as strength_sweep does; append int(t) in callback_on_step_end, "
                     "then count the list and take its first entry"),
    "08.2": Exercise(exercise_checks.inpainting_unet,
                     "the inpainting UNet reads the noisy latents, the mask and the masked image's latents, "
                     "stacked along the channels; change only in_channels"),
    "08.3": Exercise(exercise_checks.uniform_share,
                     "the area is the mask's mean; for the share inside, give attention.mass_inside a map whose "
                     "cells are all equal, and your mask"),
    "08.4": Exercise(exercise_checks.own_and_other,
                     "pair_attention returns arrays over the objects it measured; the first object's colour word "
                     "is element 0 of binding['own']['colour'] and of binding['other']['colour']"),
    "09.1": Exercise(exercise_checks.eps_of_velocity,
                     "x_t = (1 - t) x_0 + t eps and u = eps - x_0: eliminate x_0"),
    "09.2": Exercise(exercise_checks.shifted_sigmas,
                     "space evenly from 1 to the shifted 0.001, then shift: s t / (1 + (s - 1) t); 4 numbers"),
    "09.3": Exercise(exercise_checks.single_stream_share,
                     "count the parameters of flux.single_transformer_blocks and of flux with "
                     "architectures.count_parameters"),
}


def check(name: str, answer: Any, **context: Any) -> Verdict:
    """Print and return the verdict on a registered exercise: not attempted yet / correct / not quite + hint.

    Args:
        name: the exercise, "NN.k" (exercise k of notebook NN); printed as "Exercise k".
        answer: the learner's answer; None means not attempted, and then nothing is computed.
        context: what the check needs to work the right answer out, by name: the pipeline, the tokenizer, the
            tensors and the choices the learner worked with (see the check's docstring in `sdlab.exercise_checks`).

    Raises:
        KeyError: for a name that is not registered.
        TypeError: for a context the check does not take, or one it lacks -- at once, also while `answer` is
            None, so that a notebook that passes the wrong names fails on its first run.
    """
    if name not in EXERCISES:
        raise KeyError(f"no exercise {name!r}; registered: {', '.join(sorted(EXERCISES))}")
    exercise = EXERCISES[name]
    inspect.signature(exercise.judge).bind(answer, **context)
    return check_answer(f"Exercise {name.split('.')[-1]}", answer, predicate=lambda a: exercise.judge(a, **context),
                        hint=exercise.hint)
