"""Engines and failure modes: every error is an SdlabError whose message names the fix. Offline."""
import types

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

import sdlab
from sdlab import engines

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path; this machine has CUDA")


@no_cuda
def test_auto_picks_tiny_here_and_says_why(capsys, monkeypatch):
    monkeypatch.delenv(engines.ENGINE_VARIABLE, raising=False)
    pipe = sdlab.load_pipeline("auto")
    assert isinstance(pipe, StableDiffusionPipeline) and engines.native_size(pipe) == 64
    line = capsys.readouterr().out.strip()
    assert line.startswith("sdlab: engine 'auto' chose 'tiny'") and "no CUDA GPU" in line


def test_sdlab_engine_makes_auto_load_that_engine_and_say_so(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv(engines.ENGINE_VARIABLE, "tiny")
    assert engines._auto_engine(None) == ("tiny", "the environment variable SDLAB_ENGINE names it")
    monkeypatch.setenv(engines.ENGINE_VARIABLE, str(tmp_path / "missing"))
    with pytest.raises(sdlab.WeightsNotFoundError, match="does not exist"):
        sdlab.load_pipeline("auto")
    assert "SDLAB_ENGINE names it" in capsys.readouterr().out
    monkeypatch.setenv(engines.ENGINE_VARIABLE, "auto")
    with pytest.raises(sdlab.UnknownEngineError, match="choose itself"):
        sdlab.load_pipeline("auto")
    monkeypatch.setenv(engines.ENGINE_VARIABLE, "sd-2.1")
    with pytest.raises(sdlab.UnknownEngineError, match="Known engines"):
        sdlab.load_pipeline("auto")


def test_unknown_engine_lists_the_known_ones():
    with pytest.raises(sdlab.UnknownEngineError) as err:
        sdlab.load_pipeline("sd-2.1")
    for name in ("'tiny'", "'sd15'", "'auto'", "local folder"):
        assert name in str(err.value)
    with pytest.raises(sdlab.UnknownEngineError, match="must be a string"):
        sdlab.load_pipeline(15)


def test_missing_pipeline_folder_says_it_does_not_exist(tmp_path):
    for missing in (tmp_path / "no-such-run" / "pipeline", str(tmp_path / "nothing"), "./runs/nowhere"):
        with pytest.raises(sdlab.WeightsNotFoundError, match="does not exist") as err:
            sdlab.load_pipeline(missing)
        assert "model_index.json" in str(err.value) and "'tiny'" in str(err.value)


def test_sd15_offline_without_cache_names_the_fixes(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(sdlab.WeightsNotFoundError) as err:
        sdlab.load_pipeline("sd15", device="cpu")
    msg = str(err.value)
    assert isinstance(err.value, sdlab.SdlabError)
    for needle in (sdlab.SD15_MODEL_ID, "huggingface-cli download", "HF_ENDPOINT", "HF_HOME", "load_pipeline('tiny')",
                   "HF_HUB_OFFLINE=1"):
        assert needle in msg, needle


def test_unknown_hub_id_offline_is_a_weights_error(monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(sdlab.WeightsNotFoundError, match="someone/some-model"):
        sdlab.load_pipeline("someone/some-model", device="cpu")


def test_local_folder_engine_loads_a_saved_pipeline(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "saved")
    pipe = sdlab.load_pipeline(str(tmp_path / "saved"), device="cpu")
    a = sdlab.generate(pipe, "a red circle", num_inference_steps=5, output_type="np").images
    b = sdlab.generate(tiny_pipe, "a red circle", num_inference_steps=5, output_type="np").images
    # the bundled engine runs its UNet with channels-last, native CPU convolutions: other kernels, so
    # the same weights agree to rounding (about 1e-5), not bit for bit
    torch.testing.assert_close(torch.from_numpy(a), torch.from_numpy(b), atol=1e-4, rtol=1e-4)


@no_cuda
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(sdlab.DeviceNotAvailableError, match="Change runtime type"):
        sdlab.load_pipeline("tiny", device="cuda")
    with pytest.raises(sdlab.DeviceNotAvailableError):
        sdlab.choose_device("cuda:0")


def test_device_and_dtype_choice():
    assert sdlab.choose_device("cpu").type == "cpu"
    cpu = torch.device("cpu")
    assert sdlab.choose_dtype(cpu) == torch.float32
    assert sdlab.choose_dtype(torch.device("cuda")) == torch.float16
    with pytest.warns(sdlab.SdlabWarning, match="fp16 on the CPU is slower than fp32"):
        assert sdlab.choose_dtype(cpu, torch.float16) == torch.float32
    with pytest.raises(sdlab.InvalidInputError):
        sdlab.choose_dtype(cpu, "half")


def test_fp16_on_cpu_runs_in_fp32_instead_of_failing():
    with pytest.warns(sdlab.SdlabWarning):
        pipe = sdlab.load_pipeline("tiny", device="cpu", dtype=torch.float16)
    assert pipe.unet.dtype == torch.float32
    assert sdlab.generate(pipe, "a red circle", num_inference_steps=2).images[0].size == (64, 64)


@pytest.mark.parametrize("kwargs, needle", [
    ({"height": 60}, "height=60 is not a positive multiple of 8"),
    ({"width": 100}, "Try width=96 or width=104"),
    ({"height": 0}, "height=0"),
    ({"width": 64.0}, "width must be an int"),
    ({"height": 1024}, "too large for this engine"),
    ({"num_inference_steps": 0}, "num_inference_steps must be a whole number of at least 1"),
    ({"num_inference_steps": -3}, "num_inference_steps"),
    ({"num_inference_steps": 2.5}, "num_inference_steps"),
    ({"guidance_scale": -1.0}, "guidance_scale must be a finite number >= 0"),
    ({"num_images_per_prompt": 0}, "num_images_per_prompt"),
    ({"seed": "7"}, "seed must be an int"),
])
def test_bad_arguments_are_clear_errors(tiny_pipe, kwargs, needle):
    with pytest.raises(sdlab.InvalidInputError, match=needle.replace("(", r"\(")):
        sdlab.generate(tiny_pipe, "a red circle", **kwargs)


@pytest.mark.parametrize("prompt", [3, None, [], ["a red circle", 5], {"prompt": "x"}])
def test_prompt_must_be_text(tiny_pipe, prompt):
    with pytest.raises(sdlab.InvalidInputError, match="prompt must be a string or a non-empty list of strings"):
        sdlab.generate(tiny_pipe, prompt)


def test_long_prompt_warns_and_shows_what_is_cut(tiny_pipe):
    prompt = "a red circle " + "on the left " * 30 + "THE VERY END"
    with pytest.warns(sdlab.SdlabWarning, match="the very end"):
        image = sdlab.generate(tiny_pipe, prompt, num_inference_steps=2).images[0]
    assert image.size == (64, 64)


def test_negative_prompt_string_applies_to_every_prompt(tiny_pipe):
    prompts = ["a red circle", "a blue square"]
    kwargs = {"num_inference_steps": 2, "output_type": "np"}
    one = sdlab.generate(tiny_pipe, prompts, negative_prompt="green", **kwargs).images
    each = sdlab.generate(tiny_pipe, prompts, negative_prompt=["green", "green"], **kwargs).images
    without = sdlab.generate(tiny_pipe, prompts, **kwargs).images
    assert len(one) == 2 and np.array_equal(one, each)  # one string == that string for every prompt
    assert all(np.abs(a - b).max() > 0.01 for a, b in zip(one, without, strict=True))  # and it acts on each


def test_out_of_memory_becomes_advice(tiny_pipe, monkeypatch):
    def oom(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(StableDiffusionPipeline, "__call__", oom)
    with pytest.raises(sdlab.OutOfMemoryError) as err:
        sdlab.generate(tiny_pipe, "a red circle", num_images_per_prompt=4)
    for needle in ("fewer images", "smaller height/width", "enable_attention_slicing", "enable_model_cpu_offload"):
        assert needle in str(err.value)


def test_safety_checker_black_image_is_never_silent(tiny_pipe, monkeypatch):
    def flagged(self, prompt, **kwargs):
        return types.SimpleNamespace(images=["black", "fine"], nsfw_content_detected=[True, False])

    monkeypatch.setattr(StableDiffusionPipeline, "__call__", flagged)
    with pytest.warns(sdlab.SafetyCheckerWarning, match=r"image\(s\) \[0\]"):
        sdlab.generate(tiny_pipe, ["x", "y"])


def test_seeds_use_a_fresh_cpu_generator_each_call(tiny_pipe):
    g = sdlab.make_generator(5)
    assert g.device.type == "cpu"
    a = sdlab.generate(tiny_pipe, "a red circle", seed=5, num_inference_steps=3, output_type="np").images
    b = sdlab.generate(tiny_pipe, "a red circle", seed=5, num_inference_steps=3, output_type="np").images
    assert (a == b).all()


def test_every_error_is_an_sdlab_error():
    for cls in (sdlab.UnknownEngineError, sdlab.WeightsNotFoundError, sdlab.DeviceNotAvailableError,
                sdlab.InvalidInputError, sdlab.OutOfMemoryError):
        assert issubclass(cls, sdlab.SdlabError)


def _fake_hub_cache(pipe, cache, model_id, variant=None):
    """Lay out a saved pipeline as the Hugging Face cache does (refs/main -> snapshots/<hash>)."""
    repo = cache / f"models--{model_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    pipe.save_pretrained(repo / "snapshots" / commit, variant=variant)


def test_sd15_loads_from_the_local_cache_offline(tiny_pipe, tmp_path, monkeypatch):
    """The real sd15 code path, with the tiny model standing in for the cached SD v1.5 weights."""
    _fake_hub_cache(tiny_pipe, tmp_path, sdlab.SD15_MODEL_ID)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert engines._is_cached(sdlab.SD15_MODEL_ID)
    pipe = sdlab.load_pipeline("sd15", device="cpu")
    assert isinstance(pipe, StableDiffusionPipeline) and pipe.unet.dtype == torch.float32


def test_fp16_variant_falls_back_to_the_plain_weights(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "plain")
    pipe = engines._load(tmp_path / "plain", torch.device("cpu"), torch.float32, variant="fp16")
    assert isinstance(pipe, StableDiffusionPipeline)  # no fp16 files: the plain ones, the same weights
    assert all(torch.equal(a, b) for a, b in zip(pipe.unet.parameters(), tiny_pipe.unet.parameters(), strict=True))


@pytest.mark.parametrize("cached, reachable, expected",
                         [(True, False, "sd15"), (False, True, "sd15"), (False, False, "tiny")])
def test_auto_on_a_gpu_machine_decides_by_cache_and_network(monkeypatch, cached, reachable, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(engines, "_is_cached", lambda model_id: cached)
    monkeypatch.setattr(engines, "is_reachable", lambda model_id: reachable)
    engine, why = engines._auto_engine(None)
    assert engine == expected and sdlab.SD15_MODEL_ID in why
    assert engines._auto_engine("cpu")[0] == "tiny"


def test_generate_from_prompt_embeds_is_generating_from_the_prompt(tiny_pipe):
    prompt = "a small yellow triangle on the right"
    embeds, negative = tiny_pipe.encode_prompt(prompt, "cpu", 1, True)
    by_text = sdlab.generate(tiny_pipe, prompt, seed=5, num_inference_steps=8, output_type="pt").images
    by_embeds = sdlab.generate(tiny_pipe, prompt_embeds=embeds, negative_prompt_embeds=negative, seed=5,
                               num_inference_steps=8, output_type="pt").images
    torch.testing.assert_close(by_embeds, by_text)


def test_generate_rejects_bad_prompt_embeds_with_the_fix(tiny_pipe):
    embeds = torch.zeros(1, 77, tiny_pipe.text_encoder.config.hidden_size)
    with pytest.raises(sdlab.InvalidInputError, match="not both"):
        sdlab.generate(tiny_pipe, "a red circle", prompt_embeds=embeds)
    with pytest.raises(sdlab.InvalidInputError, match="encode_prompt"):
        sdlab.generate(tiny_pipe, prompt_embeds=torch.zeros(1, 77, 5))
    with pytest.raises(sdlab.InvalidInputError, match="shape of prompt_embeds"):
        sdlab.generate(tiny_pipe, prompt_embeds=embeds, negative_prompt_embeds=torch.zeros(2, 77, embeds.shape[-1]))
    with pytest.raises(sdlab.InvalidInputError, match="needs prompt_embeds"):
        sdlab.generate(tiny_pipe, "a red circle", negative_prompt_embeds=embeds)


def test_small_batches_use_native_convolutions_and_the_setting_comes_back(tiny_pipe):
    seen = []
    probe = tiny_pipe.unet.conv_in.register_forward_hook(lambda *_: seen.append(torch.backends.mkldnn.enabled))
    try:
        x, t, text = torch.randn(2, 4, 8, 8), torch.tensor(500), torch.randn(2, 77, 64)
        with torch.no_grad():
            small = tiny_pipe.unet(x, t, encoder_hidden_states=text).sample
            large = tiny_pipe.unet(x.repeat(8, 1, 1, 1), t, encoder_hidden_states=text.repeat(8, 1, 1)).sample
            with pytest.raises(RuntimeError):  # a failing call restores the setting too
                tiny_pipe.unet(x, t, encoder_hidden_states=torch.randn(2, 77, 5))
    finally:
        probe.remove()
    assert seen == [False, True, False] and torch.backends.mkldnn.enabled
    torch.testing.assert_close(small, large[:2], rtol=1e-4, atol=1e-4)  # the same numbers either way


def test_auto_on_a_mac_keeps_the_tiny_engine_and_says_how_to_choose_sd15(monkeypatch):
    monkeypatch.delenv(engines.ENGINE_VARIABLE, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(engines, "_has_mps", lambda: True)
    engine, why = engines._auto_engine(None)
    assert engine == "tiny" and "MPS" in why and f"{engines.ENGINE_VARIABLE}=sd15" in why
