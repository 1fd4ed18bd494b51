"""sdlab.schedule reproduces diffusers' schedules and the closed form q(x_t | x_0) of DDPM."""
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from sdlab import schedule


@pytest.mark.parametrize("name", schedule.SCHEDULES)
def test_betas_and_alphas_cumprod_match_diffusers(name):
    kwargs = {"num_train_timesteps": 1000, "beta_schedule": schedule.DIFFUSERS_NAMES[name]}
    if name in schedule.DEFAULT_RANGE:
        kwargs.update(beta_start=schedule.DEFAULT_RANGE[name][0], beta_end=schedule.DEFAULT_RANGE[name][1])
    ref = DDPMScheduler(**kwargs)
    betas = schedule.make_betas(name)
    torch.testing.assert_close(betas, ref.betas)
    torch.testing.assert_close(schedule.alphas_cumprod(betas), ref.alphas_cumprod)


def test_betas_from_the_tiny_engines_scheduler_config(tiny_pipe):
    betas = schedule.betas_from_config(tiny_pipe.scheduler.config)
    torch.testing.assert_close(betas, tiny_pipe.scheduler.betas.cpu())
    torch.testing.assert_close(schedule.alphas_cumprod(betas), tiny_pipe.scheduler.alphas_cumprod.cpu())


def test_schedules_are_valid_and_decreasing():
    for name in schedule.SCHEDULES:
        betas = schedule.make_betas(name)
        assert betas.shape == (1000,) and (betas > 0).all() and (betas < 1).all()
        ab = schedule.alphas_cumprod(betas)
        assert (ab[1:] < ab[:-1]).all() and 0 < ab[-1] < ab[0] < 1
        s = schedule.snr(ab)
        assert (s[1:] < s[:-1]).all()


def test_sd_schedule_keeps_some_signal_at_the_last_step():
    ab = schedule.alphas_cumprod(schedule.scaled_linear_betas())
    assert 0.004 < float(ab[-1]) < 0.006  # terminal SNR is not zero (Lin et al., 2024)
    assert schedule.first_timestep_below(schedule.snr(ab), 1.0) == int((ab < 0.5).nonzero()[0])
    assert schedule.first_timestep_below(schedule.snr(ab), 0.0) == -1


def test_unknown_schedule_names_the_choices():
    with pytest.raises(ValueError, match="linear"):
        schedule.make_betas("quadratic")


def test_q_sample_matches_scheduler_add_noise():
    sched = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    t = torch.tensor([0, 500, 999])
    ours = schedule.q_sample(x0, noise, t, schedule.alphas_cumprod(schedule.scaled_linear_betas()))
    torch.testing.assert_close(ours, sched.add_noise(x0, noise, t))
    # one int timestep for the whole batch
    torch.testing.assert_close(schedule.q_sample(x0, noise, 250, sched.alphas_cumprod),
                               sched.add_noise(x0, noise, torch.tensor([250] * 3)))


def test_q_sample_rejects_mismatched_noise():
    with pytest.raises(ValueError, match="shape"):
        schedule.q_sample(torch.zeros(2, 3), torch.zeros(2, 4), 5, schedule.alphas_cumprod(schedule.linear_betas()))


def test_repeated_single_steps_match_the_closed_form():
    betas = schedule.scaled_linear_betas()
    ab = schedule.alphas_cumprod(betas)
    g = torch.Generator().manual_seed(1)
    x0 = torch.tensor([-1.0, 0.0, 1.0]).repeat(20000, 1)  # 20000 samples of 3 values
    x = x0.clone()
    for t in range(300):
        x = schedule.q_step(x, torch.randn(x.shape, generator=g), t, betas)
    mean, var = schedule.q_moments(x0[:1], 299, ab)
    torch.testing.assert_close(x.mean(0), mean[0], atol=0.02, rtol=0)
    torch.testing.assert_close(x.var(0), var[0], atol=0.03, rtol=0)
