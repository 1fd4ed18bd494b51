import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sdlab import finetune, shapes, tiny
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

def verdicts(name, right_answer, wrong_answer, /, **context):
    """The verdicts on no answer, a right one and a wrong one."""
    return tuple(check(name, answer, **context) for answer in (None, right_answer, wrong_answer))


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


def test_00_1_latent_numbers(tiny_pipe):
    context = {"pipe": tiny_pipe, "height": 64, "width": 128}
    assert verdicts("00.1", 4 * 8 * 16, 4 * 8 * 8, **context) == EXPECTED      # 4 channels of (64 / 8) x (128 / 8)
    assert check("00.1", 4 * 8 * 8, pipe=tiny_pipe, height=64, width=64) == WRONG  # square: section 3 printed it
    assert check("00.1", 4 * 8 * 16, pipe=tiny_pipe, height=64, width=130) == WRONG  # not a multiple of 8


def test_00_2_unet_calls_of_your_scheduler(tiny_pipe):
    from diffusers import DDIMScheduler, HeunDiscreteScheduler

    heun = HeunDiscreteScheduler.from_config(tiny_pipe.scheduler.config)
    context = {"pipe": tiny_pipe, "num_inference_steps": 7}
    assert verdicts("00.2", 2 * 7 - 1, 7, scheduler=heun, **context) == EXPECTED   # Heun corrects all but the last
    assert check("00.2", 13, scheduler=HeunDiscreteScheduler, **context) == CORRECT  # a class will do
    assert check("00.2", 7, scheduler=DDIMScheduler, **context) == WRONG            # the pipeline's own


def test_00_3_text_encoder_swap(tiny_pipe):
    from diffusers import UNet2DConditionModel

    config = dict(tiny_pipe.unet.config)
    with torch.device("meta"):                                      # shapes only, no memory
        wide = UNet2DConditionModel.from_config({**config, "cross_attention_dim": 4096})
        projected = UNet2DConditionModel.from_config({**config, "encoder_hid_dim": 4096})
        unchanged = UNet2DConditionModel.from_config(config)
        wider_too = UNet2DConditionModel.from_config({**config, "cross_attention_dim": 4096, "out_channels": 8})
    swap = {"tokenizer", "text_encoder"}
    assert verdicts("00.3", (swap, wide), (swap, unchanged), pipe=tiny_pipe) == EXPECTED
    assert check("00.3", (swap, projected), pipe=tiny_pipe) == CORRECT      # DeepFloyd IF's way: project the text
    assert check("00.3", ({"text_encoder"}, wide), pipe=tiny_pipe) == WRONG  # T5 has its own vocabulary
    assert check("00.3", (swap, wider_too), pipe=tiny_pipe) == WRONG         # only the text width changes


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


def test_03_1_noise_from_x0(tiny_pipe):
    a = tiny_pipe.scheduler.alphas_cumprod

    def right(x_t, x0, t):
        return (x_t - a[t].sqrt() * x0) / (1 - a[t]).sqrt()

    def without_sqrt(x_t, x0, t):
        return (x_t - a[t] * x0) / (1 - a[t])

    assert verdicts("03.1", right, without_sqrt, pipe=tiny_pipe) == EXPECTED
    assert check("03.1", lambda x_t, x0, t: None, pipe=tiny_pipe) == WRONG  # the unfinished stub


def test_03_2_ddim_sigmas(tiny_pipe):
    from diffusers import DDIMScheduler

    ddim = DDIMScheduler.from_config(tiny_pipe.scheduler.config)
    ddim.set_timesteps(10)
    a = ddim.alphas_cumprod

    def sigma(t, prev):                                             # eq. 16 with eta = 1
        a_prev = a[prev] if prev >= 0 else ddim.final_alpha_cumprod
        return float(((1 - a_prev) / (1 - a[t]) * (1 - a[t] / a_prev)).sqrt())

    right = [sigma(t, t - 100) for t in ddim.timesteps.tolist()]  # 10 steps: the previous timestep is 100 back
    jump_of_25 = [sigma(t, t - 40) for t in ddim.timesteps.tolist()]
    assert verdicts("03.2", right, jump_of_25, pipe=tiny_pipe, num_inference_steps=10) == EXPECTED
    assert check("03.2", right[::-1], pipe=tiny_pipe, num_inference_steps=10) == WRONG  # in the order they run
    assert check("03.2", right[:1], pipe=tiny_pipe, num_inference_steps=1) == WRONG     # one step is no run


def test_03_3_first_step_matters(tiny_pipe, capsys):
    from diffusers import DDIMScheduler

    def first(spacing):
        scheduler = DDIMScheduler.from_config(tiny_pipe.scheduler.config, timestep_spacing=spacing)
        scheduler.set_timesteps(3)
        return int(scheduler.timesteps[0])

    assert (first("leading"), first("linspace"), first("trailing")) == (667, 999, 999)
    right = {spacing: (first(spacing), rate) for spacing, rate in
             {"leading": 0.25, "linspace": 0.7, "trailing": 0.75}.items()}  # counts out of 20
    baseline = {1: 0.05, 2: 0.2, 5: 0.8, 10: 0.95, 25: 1.0, 50: 1.0}
    context = {"pipe": tiny_pipe, "num_inference_steps": 3, "n_prompts": 20, "baseline": baseline}
    assert verdicts("03.3", right, {**right, "leading": (999, 0.25)}, **context) == EXPECTED
    assert "95% interval" in capsys.readouterr().out
    assert check("03.3", {**right, "linspace": (999, 0.71)}, **context) == WRONG       # not a count out of 20
    assert check("03.3", right, **{**context, "num_inference_steps": 5}) == WRONG     # section 6 measured 5


def test_04_1_vae_compression(tiny_pipe):
    assert verdicts("04.1", 3 * 8 * 8 / 16, 48.0, pipe=tiny_pipe, channels=16) == EXPECTED
    assert check("04.1", 48.0, pipe=tiny_pipe, channels=4) == WRONG  # this VAE's own: section 1 printed it


def test_04_2_psnr_of_your_factor(tiny_pipe):
    from sdlab.latents import decode, psnr

    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    right = decode(tiny_pipe, latents)
    factor = tiny_pipe.vae.config.scaling_factor
    yours = psnr(decode(tiny_pipe, latents, scaling_factor=1.5 * factor), right)   # one value per image
    context = {"pipe": tiny_pipe, "latents": latents, "right": right, "multiplier": 1.5,
               "tried": [0.25, 0.5, 1.0, 2.0, 4.0]}
    assert verdicts("04.2", yours, yours + 1, **context) == EXPECTED
    assert check("04.2", yours.mean(), **context) == WRONG                          # one per image, not the mean
    assert check("04.2", yours, **{**context, "multiplier": 2.0}) == WRONG         # section 3 tried it


def test_04_3_lerp_norms(tiny_pipe):
    pairs = [(2 * i, 2 * i + 1) for i in range(100)]

    def noise(seed):
        return torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(seed))

    mean = float(np.mean([float(torch.lerp(noise(a), noise(b), 0.3).norm()) / 16 for a, b in pairs]))  # sqrt(256)
    assert abs(mean - math.sqrt(0.7**2 + 0.3**2)) < 0.02              # near orthogonal: Pythagoras
    context = {"pipe": tiny_pipe, "seed_pairs": pairs, "t": 0.3}
    assert verdicts("04.3", mean, mean * 1.01, **context) == EXPECTED
    assert check("04.3", mean, **{**context, "seed_pairs": pairs[:50]}) == WRONG  # too few pairs
    assert check("04.3", mean, **{**context, "t": 0.5}) == WRONG                 # section 5 printed it


def test_05_1_noise_predictions(tiny_pipe):
    context = {"pipe": tiny_pipe, "num_inference_steps": 10}
    assert verdicts("05.1", 20, 10, guidance_scale=4.0, **context) == EXPECTED   # DDIM: 10 calls on 2 latents
    assert check("05.1", 10, guidance_scale=1.0, **context) == CORRECT           # w = 1: no unconditional half
    assert check("05.1", 50, pipe=tiny_pipe, num_inference_steps=25, guidance_scale=4.0) == WRONG  # printed


def test_05_2_guidance_rescaled(tiny_pipe):
    def guided(uncond, text, w, phi):
        cfg = uncond + w * (text - uncond)
        dims = list(range(1, cfg.ndim))
        return phi * cfg * text.std(dim=dims, keepdim=True) / cfg.std(dim=dims, keepdim=True) + (1 - phi) * cfg

    def one_spread_for_the_batch(uncond, text, w, phi):
        cfg = uncond + w * (text - uncond)
        return phi * cfg * text.std() / cfg.std() + (1 - phi) * cfg

    assert verdicts("05.2", guided, one_spread_for_the_batch, pipe=tiny_pipe) == EXPECTED
    assert check("05.2", lambda uncond, text, w, phi: uncond + w * (text - uncond), pipe=tiny_pipe) == WRONG


def test_05_3_scheduler_per_unet_call(tiny_pipe, capsys):
    from diffusers import DDIMScheduler, HeunDiscreteScheduler

    section_5 = {DDIMScheduler: {3: 0.4, 5: 0.7, 10: 1.0}}
    context = {"pipe": tiny_pipe, "scheduler": HeunDiscreteScheduler, "num_inference_steps": 5, "n_prompts": 20,
               "section_5": section_5}
    assert verdicts("05.3", (0.85, 2 * 5 - 1), (0.85, 5), **context) == EXPECTED  # Heun: 2 calls a step, last 1
    assert "95% interval" in capsys.readouterr().out
    assert check("05.3", (0.7, 5), **{**context, "scheduler": DDIMScheduler}) == WRONG  # section 5 measured it
    assert check("05.3", (0.86, 9), **context) == WRONG                                  # not a count out of 20


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


def test_07_1_placeholder_numbers():
    from types import SimpleNamespace

    pipe = SimpleNamespace(tokenizer=tiny.load_tokenizer(), text_encoder=tiny.build_text_encoder())  # a fresh copy
    tokens = ["<test-0>", "<test-1>", "<test-2>"]
    for token in tokens:
        finetune.add_placeholder_token(pipe.tokenizer, pipe.text_encoder, token, initializer="square")
    width = pipe.text_encoder.config.hidden_size
    assert verdicts("07.1", 3 * width, 3, pipe=pipe, tokens=tokens) == EXPECTED   # a row per token, not a number
    assert check("07.1", 4 * width, pipe=pipe, tokens=[*tokens, "<not-added>"]) == WRONG


def test_07_2_lora_on_first_to_k(tiny_pipe):
    to_k = next(module for name, module in tiny_pipe.unet.named_modules() if name.endswith("attn2.to_k"))
    layer = getattr(to_k, "base_layer", to_k)
    assert layer.in_features == tiny_pipe.unet.config.cross_attention_dim      # it reads the text
    right = 4 * (layer.in_features + layer.out_features)                         # A: 4 x in, B: out x 4
    assert verdicts("07.2", right, 4 * layer.in_features * layer.out_features, unet=tiny_pipe.unet, rank=4) == EXPECTED


def test_07_3_merged_by_hand(tiny_pipe):
    pytest.importorskip("peft")
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_config(tiny_pipe.unet.config)   # a fresh UNet: the shared pipe stays as it is
    finetune.add_lora(unet, rank=2)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.normal_(generator=g)                                # B starts at zero: give it something to merge

    def merged(layer):
        A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        return layer.base_layer.weight + layer.scaling["default"] * B @ A

    def unscaled(layer):  # right on this UNet, whose lora_alpha is its rank; wrong on the check's own layer
        return layer.base_layer.weight + layer.lora_B["default"].weight @ layer.lora_A["default"].weight

    assert verdicts("07.3", merged, unscaled, unet=unet) == EXPECTED
    assert check("07.3", lambda layer: layer.base_layer.weight, unet=unet) == WRONG  # the adapter left out
    assert check("07.3", merged, unet=UNet2DConditionModel.from_config(tiny_pipe.unet.config)) == WRONG  # no LoRA


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


def test_08_4_own_and_other(tiny_pipe):
    from sdlab import attention

    pair = (shapes.Thing("red", "circle", "left", "large"), shapes.Thing("red", "square", "right", "large"))
    binding = attention.pair_attention(tiny_pipe, [pair], seed=0)
    right = (binding["own"]["colour"][0], binding["other"]["colour"][0])
    assert verdicts("08.4", right, (right[1], right[0]), pipe=tiny_pipe, pair=pair) == EXPECTED
    different = (pair[0], shapes.Thing("blue", "square", "right", "large"))
    assert check("08.4", right, pipe=tiny_pipe, pair=different) == WRONG  # the task asks for one colour
