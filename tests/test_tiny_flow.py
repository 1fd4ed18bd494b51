"""The tiny-flow engine: a standard StableDiffusion3Pipeline, offline; its training command; its helpers in engines."""
import csv
import json

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
from safetensors import safe_open

import sdlab
from sdlab import engines, tiny_flow, train
from sdlab.errors import InvalidInputError


@pytest.fixture(scope="module")
def flow_pipe():
    return sdlab.load_pipeline("tiny-flow")


def test_tiny_flow_is_sd3s_pipeline_on_the_tiny_engines_parts(flow_pipe, tiny_pipe):
    assert isinstance(flow_pipe, StableDiffusion3Pipeline) and engines.is_flow(flow_pipe)
    assert isinstance(flow_pipe.transformer, SD3Transformer2DModel)
    assert isinstance(flow_pipe.scheduler, FlowMatchEulerDiscreteScheduler)
    assert engines.native_size(flow_pipe) == 64 and engines.is_tiny(flow_pipe)
    assert engines.denoiser(flow_pipe) is flow_pipe.transformer and engines.denoiser(tiny_pipe) is tiny_pipe.unet
    assert flow_pipe.text_encoder is flow_pipe.text_encoder_2 and flow_pipe.text_encoder_3 is None
    # the VAE and the text encoder are the tiny engine's, weight for weight
    torch.testing.assert_close(flow_pipe.vae.decoder.conv_out.weight, tiny_pipe.vae.decoder.conv_out.weight)
    torch.testing.assert_close(flow_pipe.text_encoder.text_model.embeddings.token_embedding.weight,
                               tiny_pipe.text_encoder.embeddings.token_embedding.weight)


def test_the_pooled_embedding_is_the_eos_row_and_the_tokens_are_the_penultimate_layer(flow_pipe, tiny_pipe):
    ids = flow_pipe.tokenizer(["a small blue square at the top"], padding="max_length", max_length=77,
                              return_tensors="pt").input_ids
    with torch.no_grad():
        out = tiny_pipe.text_encoder(ids, output_hidden_states=True)
        embeds, _, pooled, _ = flow_pipe.encode_prompt("a small blue square at the top", None, None,
                                                       do_classifier_free_guidance=False, max_sequence_length=77)
    torch.testing.assert_close(pooled, torch.cat([out.pooler_output] * 2, dim=-1))
    # SD3 reads CLIP's penultimate layer; both CLIP places side by side, then the 77 zero rows in T5's place
    torch.testing.assert_close(embeds[:, :77], torch.cat([out.hidden_states[-2]] * 2, dim=-1))
    assert embeds.shape == (1, 154, 128) and not embeds[:, 77:].any()


def test_generate_runs_the_flow_engine_offline_and_is_seeded(flow_pipe):
    a = sdlab.generate(flow_pipe, "a large red circle on the left", seed=3, num_inference_steps=4,
                       output_type="np").images
    b = sdlab.generate(flow_pipe, "a large red circle on the left", seed=3, num_inference_steps=4,
                       output_type="np").images
    assert a.shape == (1, 64, 64, 3)
    torch.testing.assert_close(torch.from_numpy(a), torch.from_numpy(b))
    direct = flow_pipe("a large red circle on the left", num_inference_steps=4, guidance_scale=4.0, height=64,
                       width=64, generator=torch.Generator().manual_seed(3), max_sequence_length=77,
                       output_type="np").images
    torch.testing.assert_close(torch.from_numpy(a), torch.from_numpy(direct))


def test_flow_engine_errors_name_the_fix(flow_pipe):
    with pytest.raises(InvalidInputError, match="pooled_prompt_embeds"):
        sdlab.generate(flow_pipe, prompt_embeds=torch.zeros(1, 154, 128))
    with pytest.raises(InvalidInputError, match="multiple of 8"):
        sdlab.generate(flow_pipe, "a red circle", height=60)


def test_a_saved_flow_pipeline_loads_back_as_sd3(flow_pipe, tmp_path):
    flow_pipe.save_pretrained(tmp_path / "saved")
    again = sdlab.load_pipeline(str(tmp_path / "saved"))
    assert isinstance(again, StableDiffusion3Pipeline)
    torch.testing.assert_close(again.transformer.proj_out.weight, flow_pipe.transformer.proj_out.weight)


def test_missing_flow_weights_say_how_to_make_them(monkeypatch, tmp_path):
    monkeypatch.setattr(tiny_flow, "FLOW_DIR", tmp_path / "nothing")
    with pytest.raises(sdlab.WeightsNotFoundError, match="--denoiser sd3-flow"):
        sdlab.load_pipeline("tiny-flow")


def test_train_command_with_the_flow_denoiser_checkpoints_resumes_and_exports(tmp_path):
    out = tmp_path / "run"
    args = ["--denoiser", "sd3-flow", "--out", str(out), "--steps", "10", "--num-images", "32", "--batch-size", "8",
            "--warmup-steps", "1", "--checkpoint-minutes", "30"]
    train.main(args)
    assert json.loads((out / "transformer" / "checkpoint" / "step.json").read_text())["step"] == 10
    train.main(args[:5] + ["20"] + args[6:] + ["--resume", "--export", str(tmp_path / "exported")])
    rows = list(csv.DictReader((out / "transformer" / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [10, 20] and float(rows[-1]["loss"]) > 0  # resumed, not restarted
    card = json.loads((tmp_path / "exported" / "training.json").read_text())
    assert card["config"]["steps"] == 20 and set(card["seconds"]) == {"encode", "transformer"}
    assert card["command"].startswith("python -m sdlab.train --denoiser sd3-flow")
    with safe_open(str(tmp_path / "exported" / "transformer" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        names = f.keys()  # a safetensors file is not iterable itself
        assert {f.get_tensor(k).dtype for k in names} == {torch.float16}
    assembled = sdlab.load_pipeline(str(out / "pipeline"))
    assert assembled.transformer.config.num_layers == 2
