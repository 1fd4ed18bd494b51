import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sdlab import shapes, tiny
from sdlab.exercises import CORRECT, EXERCISES, NOT_ATTEMPTED, WRONG, check, check_answer


def test_not_attempted_correct_and_wrong(capsys):
    assert check_answer("ex", None, 3) == NOT_ATTEMPTED
    assert check_answer("ex", 3.0001, 3) == CORRECT
    assert check_answer("ex", 4, 3, hint="count again") == WRONG
    assert "not quite -- count again" in capsys.readouterr().out


def test_tensors_predicates_and_malformed_answers():
    assert check_answer("t", torch.ones(2), torch.ones(2)) == CORRECT
    assert check_answer("t", torch.ones(3), torch.ones(2)) == WRONG
    assert check_answer("p", "red", predicate=lambda a: a.startswith("r")) == CORRECT
    assert check_answer("p", 5, predicate=lambda a: a.startswith("r")) == WRONG
    assert check_answer("s", "blue", "red") == WRONG


def test_verdict_is_printed_once_not_shown_again_as_the_cells_value(capsys):
    verdict = check_answer("ex", None, 3)
    assert capsys.readouterr().out == f"ex: {NOT_ATTEMPTED}\n"
    assert verdict == NOT_ATTEMPTED and hasattr(verdict, "_ipython_display_")  # IPython calls it instead of echoing


# --------------------------------------------------------------------------- the registered checks

def verdicts(name, right, wrong, **context):
    """The verdicts on no answer, a right one and a wrong one."""
    return tuple(check(name, answer, **context) for answer in (None, right, wrong))


EXPECTED = (NOT_ATTEMPTED, CORRECT, WRONG)


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_every_registered_check_says_not_attempted_without_computing(name):
    """With answer None the check runs on any context -- even all None -- so the notebooks run top to bottom."""
    context = dict.fromkeys(list(inspect.signature(EXERCISES[name].judge).parameters)[1:])
    assert check(name, None, **context) == NOT_ATTEMPTED


def test_an_unknown_exercise_or_context_fails_at_once(capsys):
    with pytest.raises(KeyError):
        check("99.1", None)
    with pytest.raises(TypeError):
        check("01.1", None, tokenizer=None)                          # prompt= missing: the notebook's mistake
    with pytest.raises(TypeError):
        check("08.3", None, mask=None, pipe=None)                    # a context the check does not take
    check("06.1", None, noise_scheduler=None, gamma=None)
    assert capsys.readouterr().out == f"Exercise 1: {NOT_ATTEMPTED}\n"  # "NN.k" is printed as "Exercise k"


def test_01_1_tokens_of_your_prompt(tiny_pipe):
    tokenizer = tiny_pipe.tokenizer
    prompt = "a rhombus quokka"                                      # a | r hom bus | qu ok ka
    count = len(tokenizer.tokenize(prompt))
    assert verdicts("01.1", count, count - 1, tokenizer=tokenizer, prompt=prompt) == EXPECTED
    assert check("01.1", 4, tokenizer=tokenizer, prompt="a red circle left") == WRONG   # one token per word
    assert check("01.1", 8, tokenizer=tokenizer, prompt="a rhombus, quokka!") == WRONG  # letters only


def test_01_2_position_of_your_word(tiny_pipe):
    tokenizer = tiny_pipe.tokenizer
    prompt, word = "a rhombus on the left", "left"                   # BOS a r hom bus on the left
    position = tokenizer(prompt).input_ids.index(tokenizer(word, add_special_tokens=False).input_ids[0])
    assert position == 7
    assert verdicts("01.2", position, 5, tokenizer=tokenizer, prompt=prompt, word=word) == EXPECTED
    # right, but nothing before "circle" is cut into pieces: the position is its word number + 1
    assert check("01.2", 4, tokenizer=tokenizer, prompt="a large red circle", word="circle") == WRONG


def test_01_3_the_tail_is_read(tiny_pipe):
    start, tail = "a large red circle on the left", "a tiny green triangle at the top"
    long_prompt = f"{start}, " + ", ".join(["a small blue square on the right"] * 12) + f", and at the end {tail}"
    context = {"pipe": tiny_pipe, "long_prompt": long_prompt, "tail": tail}
    assert verdicts("01.3", f"{start}, {tail}", long_prompt, **context) == EXPECTED  # the long one loses its tail
    assert check("01.3", f"{start}, a tiny green triangle", **context) == WRONG       # the tail must stay


def test_01_4_first_row_to_copy(tiny_pipe):
    prompts = ("a large red circle on the left", "a large blue circle on the left")  # differ from position 3 on
    assert verdicts("01.4", 3, 4, pipe=tiny_pipe, prompts=prompts) == EXPECTED
    assert check("01.4", 3, pipe=tiny_pipe, prompts=(prompts[0], prompts[0])) == WRONG


def test_02_1_snr_below_your_level(tiny_pipe):
    a = tiny_pipe.scheduler.alphas_cumprod
    t = int(torch.nonzero(a / (1 - a) < 0.1)[0])                    # by hand
    assert verdicts("02.1", t, t + 1, pipe=tiny_pipe, level=0.1) == EXPECTED
    t_1 = int(torch.nonzero(a / (1 - a) < 1.0)[0])
    assert check("02.1", t_1, pipe=tiny_pipe, level=1.0) == WRONG   # section 2 printed that one


def test_02_2_your_jump(tiny_pipe):
    a = tiny_pipe.scheduler.alphas_cumprod

    def noised(x0, noise, timesteps):
        ab = a[timesteps].view(-1, 1, 1, 1)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def without_sqrt(x0, noise, timesteps):
        ab = a[timesteps].view(-1, 1, 1, 1)
        return ab * x0 + (1 - ab) * noise

    assert verdicts("02.2", noised, without_sqrt, pipe=tiny_pipe) == EXPECTED
    assert check("02.2", lambda x0, noise, timesteps: None, pipe=tiny_pipe) == WRONG  # the unfinished stub


def _correlation(a, b):  # as notebook 02 defines it
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float(a @ b / (a.norm() * b.norm()))


def test_02_3_structure_left(tiny_pipe):
    g = torch.Generator().manual_seed(0)
    x0, pixel_noise = torch.randn(2, 1, 3, 64, 64, generator=g)
    z0, latent_noise = torch.randn(2, 1, 4, 8, 8, generator=g)
    scheduler = tiny_pipe.scheduler

    def pool(x):
        return F.avg_pool2d(x, 8)

    def by_hand(t):
        at = torch.tensor([t])
        return (_correlation(pool(scheduler.add_noise(x0, pixel_noise, at)), pool(x0)),
                _correlation(scheduler.add_noise(z0, latent_noise, at), z0))

    context = {"t": 400, "window": (500, 300), "x0": x0, "z0": z0, "noises": (pixel_noise, latent_noise),
               "scheduler": scheduler, "correlation": _correlation, "pool": pool}
    right = by_hand(400)
    assert verdicts("02.3", right, (right[0] + 0.05, right[1]), **context) == EXPECTED
    assert check("02.3", by_hand(600), **{**context, "t": 600}) == WRONG  # outside the window


def test_06_1_first_full_weight():
    noise_scheduler = tiny.build_noise_scheduler()
    a = noise_scheduler.alphas_cumprod
    t = int(torch.nonzero(a / (1 - a) <= 1.0)[0])                   # the first SNR at most gamma = 1
    assert verdicts("06.1", t, t - 1, noise_scheduler=noise_scheduler, gamma=1.0) == EXPECTED
    t_5 = int(torch.nonzero(a / (1 - a) <= 5.0)[0])
    assert check("06.1", t_5, noise_scheduler=noise_scheduler, gamma=5.0) == WRONG  # section 1 printed that one


def test_06_2_empty_captions_counted(capsys):
    batch_size, p = 128, 0.1
    # 10,000 batches' counts in exactly the binomial's proportions: a perfect sample, so the check is deterministic
    counts = [k for k in range(batch_size + 1)
              for _ in range(round(math.comb(batch_size, k) * p**k * (1 - p) ** (batch_size - k) * 10_000))]
    context = {"batch_size": batch_size, "caption_dropout": p}
    assert verdicts("06.2", counts, [13] * 1000, **context) == EXPECTED  # 13 every time: the mean fits, no spread
    assert "95% interval" in capsys.readouterr().out
    assert check("06.2", [2 * c for c in counts], **context) == WRONG   # twice as many
    assert check("06.2", counts[::100], **context) == WRONG              # too few batches


def test_06_3_zero_noise_loss():
    latents = torch.randn(8, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(3))  # drawn first, as in training
    right = float(((torch.zeros_like(noise) - noise) ** 2).mean(dim=(1, 2, 3)).mean())
    assert verdicts("06.3", right, right + 0.01, latents=latents, seed=3) == EXPECTED
    assert check("06.3", right, latents=latents, seed=4) == WRONG      # another seed, other noise


def test_08_1_img2img_steps(tiny_pipe):
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(tiny_pipe.scheduler.config)
    scheduler.set_timesteps(25)
    ran = int(25 * 0.6)                                              # img2img runs the last int(N x strength) steps
    right = (ran, int(scheduler.timesteps[25 - ran]))
    context = {"pipe": tiny_pipe, "strength": 0.6, "num_inference_steps": 25}
    assert verdicts("08.1", right, (ran + 1, right[1]), **context) == EXPECTED
    assert check("08.1", (ran, int(scheduler.timesteps[0])), **context) == WRONG  # that is where text-to-image starts


def test_08_2_inpainting_unet(tiny_pipe):
    from diffusers import UNet2DConditionModel

    config = dict(tiny_pipe.unet.config)
    channels = 2 * tiny_pipe.vae.config.latent_channels + 1        # latents + mask + masked-image latents
    with torch.device("meta"):                                      # shapes only, no memory
        right = UNet2DConditionModel.from_config({**config, "in_channels": channels})
        wrong = UNet2DConditionModel.from_config({**config, "in_channels": channels - 1})
    assert verdicts("08.2", right, wrong, pipe=tiny_pipe) == EXPECTED


def test_08_3_uniform_share():
    mask = shapes.foreground(shapes.draw([shapes.Thing("green", "square", "top", "small")]))
    area = float(mask.mean())
    assert verdicts("08.3", (area, area), (area, 0.25), mask=mask) == EXPECTED
    assert check("08.3", (0.0, 0.0), mask=np.zeros((64, 64), bool)) == WRONG  # no object
