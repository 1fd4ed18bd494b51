"""The same code on a CUDA GPU, in fp16 (skipped without one): generating, the hand loop, the judge's figures."""
import numpy as np
import pytest
import torch

import sdlab
from sdlab import bench, engines, sampling

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
PROMPT = "a large red circle on the left"


@pytest.fixture(scope="module")
def gpu_pipe():
    return sdlab.load_pipeline("tiny", device="cuda", dtype=torch.float16)


def test_tiny_engine_loads_in_fp16_on_the_gpu(gpu_pipe):
    assert gpu_pipe.device.type == "cuda"
    assert gpu_pipe.unet.dtype == gpu_pipe.vae.dtype == gpu_pipe.text_encoder.dtype == torch.float16
    images = sdlab.generate(gpu_pipe, [PROMPT] * 2, seed=0, output_type="np").images
    assert images.shape == (2, 64, 64, 3) and np.isfinite(images).all()


def test_gpu_fp16_draws_what_the_cpu_draws(gpu_pipe, tiny_pipe):
    on_gpu = sdlab.generate(gpu_pipe, PROMPT, seed=1, output_type="pt").images.float().cpu()
    on_cpu = sdlab.generate(tiny_pipe, PROMPT, seed=1, output_type="pt").images
    assert (on_gpu - on_cpu).abs().mean() < 0.03  # the same CPU noise; fp16 rounding only


def test_hand_loop_matches_the_pipeline_on_the_gpu(gpu_pipe):
    ours = sampling.text_to_image(gpu_pipe, PROMPT, seed=3, num_inference_steps=10, guidance_scale=4.0)
    ref = gpu_pipe(PROMPT, num_inference_steps=10, guidance_scale=4.0, output_type="pt",
                   generator=torch.Generator().manual_seed(3)).images
    torch.testing.assert_close(ours.float(), ref.float(), atol=2e-2, rtol=2e-2)


def test_adherence_holds_in_fp16(gpu_pipe):
    things, prompts, seeds = bench.single_object_set(repeats=1)
    things, prompts, seeds = things[::6], prompts[::6], seeds[::6]  # 30 of the 180 prompts
    result = bench.adherence(gpu_pipe, things, prompts, seeds, engines.default_guidance(gpu_pipe), batch_size=30)
    assert result["all"] >= 0.9, result
