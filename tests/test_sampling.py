"""The hand-written loop reproduces `pipe(...)` exactly, for the same seed."""
import pytest
import torch

from sdlab import latents, sampling


@pytest.mark.parametrize("guidance_scale, negative_prompt", [(4.0, None), (1.0, None), (6.0, "a green square")])
def test_text_to_image_matches_the_pipeline(tiny_pipe, guidance_scale, negative_prompt):
    prompt = ["a large red circle on the left", "a small blue triangle at the top"]
    ours = sampling.text_to_image(tiny_pipe, prompt, seed=11, num_inference_steps=20,
                                  guidance_scale=guidance_scale, negative_prompt=negative_prompt)
    ref = tiny_pipe(prompt, negative_prompt=None if negative_prompt is None else [negative_prompt] * 2,
                    num_inference_steps=20, guidance_scale=guidance_scale, output_type="pt",
                    generator=torch.Generator().manual_seed(11)).images
    torch.testing.assert_close(ours, ref)


def test_trajectory_records_every_step(tiny_pipe):
    traj = sampling.Trajectory()
    image = sampling.text_to_image(tiny_pipe, "a purple square", seed=0, num_inference_steps=12, trajectory=traj)
    assert len(traj.timesteps) == len(traj.latents) == len(traj.pred_original_sample) == 12
    assert traj.timesteps == sorted(traj.timesteps, reverse=True)
    torch.testing.assert_close(latents.decode(tiny_pipe, traj.latents[-1]), image)


@pytest.mark.parametrize("scheduler_cls", ["DDPMScheduler", "EulerAncestralDiscreteScheduler"])
def test_stochastic_samplers_draw_from_the_same_generator_as_the_pipeline(tiny_pipe, scheduler_cls):
    import diffusers

    original = tiny_pipe.scheduler
    tiny_pipe.scheduler = getattr(diffusers, scheduler_cls).from_config(original.config)
    try:
        ours = sampling.text_to_image(tiny_pipe, "a small green circle", seed=3, num_inference_steps=10,
                                      guidance_scale=4.0)
        ref = tiny_pipe("a small green circle", num_inference_steps=10, guidance_scale=4.0, output_type="pt",
                        generator=torch.Generator().manual_seed(3)).images
    finally:
        tiny_pipe.scheduler = original
    torch.testing.assert_close(ours, ref)


def test_trajectory_predicts_x0_also_for_schedulers_that_report_none(tiny_pipe):
    import diffusers

    original = tiny_pipe.scheduler
    tiny_pipe.scheduler = diffusers.PNDMScheduler.from_config(original.config, skip_prk_steps=True)
    try:
        traj = sampling.Trajectory()
        image = sampling.text_to_image(tiny_pipe, "a large red square", seed=0, num_inference_steps=10,
                                       guidance_scale=4.0, trajectory=traj)
    finally:
        tiny_pipe.scheduler = original
    assert len(traj.pred_original_sample) == len(traj.latents)
    # early on x_0's estimate is far from x_{t-1} (which is still mostly noise); at the end they meet
    assert (traj.pred_original_sample[0] - traj.latents[0]).abs().mean() > 0.3
    last = latents.decode(tiny_pipe, traj.pred_original_sample[-1])
    assert (last - image).abs().mean() < 0.05


def test_predicted_original_sample_inverts_add_noise(tiny_pipe):
    x0, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    t = torch.tensor(601)
    x_t = tiny_pipe.scheduler.add_noise(x0, noise, t)
    torch.testing.assert_close(sampling.predicted_original_sample(tiny_pipe.scheduler, x_t, noise, t), x0,
                               rtol=1e-4, atol=1e-4)
