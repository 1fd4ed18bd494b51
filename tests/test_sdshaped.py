"""The second engine: SD v1.5's classes and scheduler at a small size, loadable through SDLAB_ENGINE."""
from diffusers import PNDMScheduler, StableDiffusionPipeline
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

import sdlab
from sdlab import engines, sdshaped, tiny


def test_saved_and_loaded_through_sdlab_engine(tmp_path, monkeypatch, capsys):
    sdshaped.main([str(tmp_path / "sd")])
    monkeypatch.setenv(engines.ENGINE_VARIABLE, str(tmp_path / "sd"))
    pipe = sdlab.load_pipeline("auto")
    assert "SDLAB_ENGINE" in capsys.readouterr().out
    assert type(pipe) is StableDiffusionPipeline and isinstance(pipe.scheduler, PNDMScheduler)
    assert pipe.scheduler.config.skip_prk_steps and isinstance(pipe.safety_checker, StableDiffusionSafetyChecker)
    # not the tiny engine's size, width or scheduler
    assert engines.native_size(pipe) == sdshaped.IMAGE_SIZE != tiny.IMAGE_SIZE
    assert pipe.text_encoder.config.hidden_size == sdshaped.TEXT_HIDDEN != tiny.TEXT_HIDDEN
    out = sdlab.generate(pipe, "a large red circle on the left", num_inference_steps=3, output_type="np")
    assert out.images.shape == (1, sdshaped.IMAGE_SIZE, sdshaped.IMAGE_SIZE, 3)
    assert out.nsfw_content_detected == [False]  # the random checker is in its slot and flags nothing
