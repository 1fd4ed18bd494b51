"""Fine-tuning helpers (sdlab.finetune): each method trains exactly what it claims, and diffusers loads the result."""
import numpy as np
import pytest
import torch

import sdlab
from sdlab import finetune, sampling, shapes
from sdlab.latents import encode
from sdlab.text import tokenize


@pytest.fixture
def fresh_pipe():
    return sdlab.load_pipeline("tiny")  # a private copy: fine-tuning changes the pipeline


def _data(pipe, word, n=8):
    images, captions, _ = finetune.concept_scenes("cross", n, seed=0, word=word)
    latents = encode(pipe, images, generator=torch.Generator().manual_seed(0))  # a posterior sample, scaled
    return latents, tokenize(pipe.tokenizer, captions)


@pytest.mark.parametrize("shape", shapes.SHAPES + finetune.NEW_SHAPES)
def test_shape_scores_recognise_each_drawn_shape(shape):
    image = np.zeros((64, 64, 3), np.uint8)
    image[:] = shapes.BACKGROUND
    image[finetune.concept_mask(shape, 32, 32, 11)] = shapes.COLOURS["red"]
    scores = finetune.shape_scores(image)
    assert max(scores, key=scores.get) == shape and scores[shape] > 0.9


def test_concept_scenes_use_the_new_word():
    images, captions, things = finetune.concept_scenes("diamond", 20, seed=1, word="<diamond>")
    assert images.shape == (20, 64, 64, 3) and len(captions) == len(things) == 20
    assert all("<diamond>" in c and "square" not in c for c in captions)
    score = finetune.concept_score(images, "diamond")
    assert score["best_fit"] == 1.0 and score["n"] == 20
    assert score["best_fit_low"] < 1.0 == score["best_fit_high"]  # 20 of 20: Wilson's interval still leaves doubt
    assert score["iou_halfwidth"] >= 0 and 0 < score["iou"] <= 1


def test_textual_inversion_trains_exactly_one_row(fresh_pipe):
    pipe = fresh_pipe
    token_id = finetune.add_placeholder_token(pipe.tokenizer, pipe.text_encoder, "<cross>", "square")
    with pytest.raises(ValueError, match="already"):
        finetune.add_placeholder_token(pipe.tokenizer, pipe.text_encoder, "<cross>", "square")
    table = pipe.text_encoder.get_input_embeddings().weight
    before = table.detach().clone()
    unet_before = [p.detach().clone() for p in pipe.unet.parameters()]
    latents, ids = _data(pipe, "<cross>")
    losses = finetune.train_textual_inversion(pipe, token_id, latents, ids, steps=3, lr=1e-2, batch_size=4)
    assert len(losses) == 3 and all(np.isfinite(losses))
    changed = (table.detach() != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == [token_id]
    assert all(torch.equal(a, b) for a, b in zip(unet_before, pipe.unet.parameters(), strict=True))
    emb = finetune.learned_embedding(pipe, "<cross>")
    other = sdlab.load_pipeline("tiny")
    other.load_textual_inversion(emb)
    torch.testing.assert_close(sampling.encode_prompt(other, "a red <cross>", guidance=False),
                               sampling.encode_prompt(pipe, "a red <cross>", guidance=False))


def test_lora_starts_as_a_no_op_trains_only_its_matrices_and_reloads(fresh_pipe, tmp_path):
    pipe = fresh_pipe
    latents, ids = _data(pipe, "cross")
    t = torch.tensor([500])
    prompt_embeds = sampling.encode_prompt(pipe, "a red cross", guidance=False)
    with torch.no_grad():
        ref = pipe.unet(latents[:1], t, encoder_hidden_states=prompt_embeds).sample
    expected_count = finetune.lora_parameter_count(pipe.unet, rank=4)
    base = {n: p.detach().clone() for n, p in pipe.unet.named_parameters()}
    params = finetune.add_lora(pipe.unet, rank=4)
    assert finetune.trainable_parameters(pipe.unet) == sum(p.numel() for p in params) == expected_count
    assert finetune.lora_parameter_count(pipe.unet, rank=4) == expected_count  # also counts wrapped layers
    with torch.no_grad():
        torch.testing.assert_close(pipe.unet(latents[:1], t, encoder_hidden_states=prompt_embeds).sample, ref)
    finetune.train_lora(pipe, params, latents, ids, steps=2, lr=1e-2, batch_size=4)
    with torch.no_grad():
        tuned = pipe.unet(latents[:1], t, encoder_hidden_states=prompt_embeds).sample
    assert not torch.allclose(tuned, ref)
    for n, p in pipe.unet.named_parameters():  # peft renames base weights to ...base_layer.weight
        key = n.replace(".base_layer", "")
        if "lora_" not in n:
            assert torch.equal(p, base[key]), n
    finetune.save_lora(pipe, tmp_path)
    other = sdlab.load_pipeline("tiny")
    other.load_lora_weights(str(tmp_path))
    with torch.no_grad():
        torch.testing.assert_close(other.unet(latents[:1], t, encoder_hidden_states=prompt_embeds).sample, tuned)


def test_lora_count_covers_sd15s_convolution_projections():
    from diffusers import UNet2DConditionModel

    from sdlab import gpubench

    unet = UNet2DConditionModel(**gpubench.sd15_unet_config(width=32, cross_attention_dim=64))  # SD v1.5's layout
    assert isinstance(unet.down_blocks[0].attentions[0].proj_in, torch.nn.Conv2d)  # 1x1 conv, not Linear
    expected = finetune.lora_parameter_count(unet, rank=2)
    params = finetune.add_lora(unet, rank=2)
    assert sum(p.numel() for p in params) == expected == finetune.lora_parameter_count(unet, rank=2)
