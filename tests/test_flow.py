"""The conversions between eps, x_0, v and the flow velocity, checked against diffusers' own schedulers."""
import pytest
import torch
from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

from sdlab import InvalidInputError, flow

G = torch.Generator().manual_seed(0)
X0, EPS = torch.randn(3, 4, 8, 8, generator=G), torch.randn(3, 4, 8, 8, generator=G)
SD = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
TIMESTEPS = torch.tensor([0, 500, 999])


def test_vp_conversions_recover_x0_eps_and_diffusers_velocity():
    a, s = flow.vp_coefficients(SD.alphas_cumprod, TIMESTEPS)
    x_t = SD.add_noise(X0, EPS, TIMESTEPS)
    torch.testing.assert_close(flow.x0_from_eps(x_t, EPS, a, s), X0, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(flow.eps_from_x0(x_t, X0, a, s), EPS, rtol=1e-4, atol=1e-3)
    v = flow.v_from_x0_eps(X0, EPS, a, s)
    torch.testing.assert_close(v, SD.get_velocity(X0, EPS, TIMESTEPS))
    torch.testing.assert_close(flow.x0_from_v(x_t, v, a, s), X0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(flow.eps_from_v(x_t, v, a, s), EPS, rtol=1e-4, atol=1e-4)


def test_the_straight_line_is_diffusers_flow_noising_and_its_velocity_recovers_both_ends():
    scheduler = FlowMatchEulerDiscreteScheduler()
    scheduler.set_timesteps(4)
    for timestep, sigma in zip(scheduler.timesteps, scheduler.sigmas, strict=False):
        x_t = flow.flow_sample(X0, EPS, float(sigma))
        torch.testing.assert_close(x_t, scheduler.scale_noise(X0, timestep[None], EPS))
        u = flow.velocity(X0, EPS)
        torch.testing.assert_close(flow.x0_from_velocity(x_t, u, float(sigma)), X0, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(flow.eps_from_velocity(x_t, u, float(sigma)), EPS, rtol=1e-5, atol=1e-5)


def test_euler_on_the_velocity_is_the_schedulers_step_and_the_exact_field_is_straight():
    scheduler = FlowMatchEulerDiscreteScheduler()
    scheduler.set_timesteps(5)
    u = flow.velocity(X0, EPS)   # the exact velocity of the straight line: the same at every t
    x, path = EPS.clone(), [EPS.clone()]
    for i, timestep in enumerate(scheduler.timesteps):
        t, t_next = float(scheduler.sigmas[i]), float(scheduler.sigmas[i + 1])
        by_hand = flow.euler_step(x, u, t, t_next)
        x = scheduler.step(u, timestep, x).prev_sample
        torch.testing.assert_close(by_hand, x)
        path.append(x)
    torch.testing.assert_close(x, X0, rtol=1e-5, atol=1e-5)   # a straight path: Euler is exact, any step count
    torch.testing.assert_close(flow.straightness(path), torch.ones(3))
    bent = [EPS, EPS + torch.randn(EPS.shape, generator=G), X0]
    assert (flow.straightness(bent) > 1.0).all()


def test_a_vp_point_scaled_lies_on_the_straight_line():
    a, s = flow.vp_coefficients(SD.alphas_cumprod, TIMESTEPS)
    x_flow, t_flow = flow.vp_to_flow(SD.add_noise(X0, EPS, TIMESTEPS), a, s)
    torch.testing.assert_close(x_flow, flow.flow_sample(X0, EPS, t_flow), rtol=1e-4, atol=1e-4)
    assert (t_flow[1:] > t_flow[:-1]).all() and 0 < t_flow[0] < 0.05 and t_flow[-1] < 1  # SD v1.5 never reaches 1


def test_logit_normal_times_crowd_the_middle():
    t = flow.logit_normal_timesteps(20000, torch.Generator().manual_seed(1))
    assert t.min() > 0 and t.max() < 1 and abs(float(t.median()) - 0.5) < 0.02
    middle = ((t > 0.25) & (t < 0.75)).float().mean()
    assert middle > 0.6   # a uniform t would put half there; sigmoid(N(0, 1)) puts about 73%


@pytest.mark.parametrize("bad", [
    lambda: flow.flow_sample(X0, EPS, 1.5),
    lambda: flow.euler_step(X0, EPS, 0.5, -0.1),
    lambda: flow.vp_coefficients(SD.alphas_cumprod, [1000]),
    lambda: flow.logit_normal_timesteps(0),
    lambda: flow.logit_normal_timesteps(4, std=0.0),
    lambda: flow.straightness([X0]),
])
def test_out_of_range_times_and_short_paths_are_refused(bad):
    with pytest.raises(InvalidInputError):
        bad()


def test_flow_matching_loss_is_the_velocity_error_and_a_short_run_lowers_it():
    from sdlab import losses, shapes, tiny
    from sdlab.text import tokenize

    torch.manual_seed(0)
    text_encoder, unet = tiny.build_text_encoder(), tiny.build_unet()
    latents = torch.randn(8, 4, 8, 8, generator=torch.Generator().manual_seed(0))  # stand-ins for VAE latents
    ids = tokenize(tiny.load_tokenizer(), [s.caption for s in shapes.sample(8, seed=0)])

    def predict(x_t, timesteps):
        return unet(x_t, timesteps, encoder_hidden_states=text_encoder(ids)[0]).sample

    def fixed_loss():
        with torch.no_grad():
            return losses.flow_matching_loss(predict, latents, torch.Generator().manual_seed(5)).item()

    # written out with the same draws: noise first, then the logit-normal times
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(latents.shape, generator=g)
    t = flow.logit_normal_timesteps(8, g)
    with torch.no_grad():
        u_pred = unet(flow.flow_sample(latents, noise, t), t * 1000, encoder_hidden_states=text_encoder(ids)[0]).sample
    assert abs(fixed_loss() - float(((u_pred - flow.velocity(latents, noise)) ** 2).mean())) < 1e-5

    before = fixed_loss()
    opt = torch.optim.AdamW(list(unet.parameters()) + list(text_encoder.parameters()), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(30):
        loss = losses.flow_matching_loss(predict, latents, g)
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert fixed_loss() < 0.8 * before, (before, fixed_loss())
