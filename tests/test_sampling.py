"""The hand-written loop reproduces `pipe(...)` exactly, for the same seed."""
import pytest
import torch

from sdlab import sampling


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
    torch.testing.assert_close(sampling.decode(tiny_pipe, traj.latents[-1]), image)
