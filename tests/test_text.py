"""sdlab.text: tokens, embeddings, the causal mask, edited embeddings, similarity and mixing."""
import pytest
import torch

from sdlab import sampling, text

PROMPT = "a large red circle on the left"


def test_token_table_has_bos_tokens_eos_and_padding(tiny_pipe):
    table = text.token_table(tiny_pipe.tokenizer, PROMPT)
    assert len(table) == text.MAX_LENGTH == tiny_pipe.tokenizer.model_max_length
    assert (table[0].id, table[0].kind) == (text.BOS_ID, "BOS")
    words = [t for t in table if t.kind == "token"]
    assert [t.piece for t in words] == ["a</w>", "large</w>", "red</w>", "circle</w>", "on</w>", "the</w>", "left</w>"]
    eos = table[len(words) + 1]
    assert (eos.id, eos.kind) == (text.EOS_ID, "EOS")
    assert all(t.kind == "pad" and t.id == text.EOS_ID for t in table[len(words) + 2:])
    printed = text.format_token_table(table)
    assert "red</w>" in printed and "more padding positions" in printed and len(printed.splitlines()) < 20


def test_long_prompts_are_truncated_to_77_ending_in_eos(tiny_pipe):
    long = " ".join(["red circle"] * 60)
    ids = text.tokenize(tiny_pipe.tokenizer, long)
    assert ids.shape == (1, 77) and ids[0, 0] == text.BOS_ID and ids[0, -1] == text.EOS_ID


def test_token_position(tiny_pipe):
    assert text.token_position(tiny_pipe.tokenizer, PROMPT, "red") == 3
    with pytest.raises(ValueError, match="does not occur"):
        text.token_position(tiny_pipe.tokenizer, PROMPT, "blue")
    with pytest.raises(ValueError, match="tokens"):
        text.token_position(tiny_pipe.tokenizer, PROMPT, "red circle")


def test_first_layer_input_is_token_plus_position_embedding(tiny_pipe):
    ids = text.tokenize(tiny_pipe.tokenizer, [PROMPT, "a green square"])
    torch.testing.assert_close(text.first_layer_input(tiny_pipe.text_encoder, ids),
                               text.input_embeddings(tiny_pipe.text_encoder, ids))


def test_encode_matches_the_pipeline(tiny_pipe):
    ids = text.tokenize(tiny_pipe.tokenizer, PROMPT)
    ours = text.encode(tiny_pipe.text_encoder, ids)
    ref, _ = tiny_pipe.encode_prompt(PROMPT, tiny_pipe.device, 1, False)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(text.prompt_embeds(tiny_pipe, PROMPT), ref)
    assert ours.shape == (1, 77, tiny_pipe.text_encoder.config.hidden_size)


def test_causal_mask_shared_prefix_gives_identical_rows(tiny_pipe):
    a, b = text.prompt_embeds(tiny_pipe, [PROMPT, "a large red circle on the right"])[:, :, :].unbind(0)
    pos = text.token_position(tiny_pipe.tokenizer, PROMPT, "left")
    torch.testing.assert_close(a[:pos], b[:pos])
    assert not torch.allclose(a[pos:], b[pos:])


def test_swapping_a_token_embedding_equals_encoding_the_other_word(tiny_pipe):
    swapped = text.swap_token(tiny_pipe.text_encoder, tiny_pipe.tokenizer, PROMPT, "red", "blue")
    torch.testing.assert_close(swapped, text.prompt_embeds(tiny_pipe, PROMPT.replace("red", "blue")))
    # the hook is removed afterwards
    torch.testing.assert_close(text.prompt_embeds(tiny_pipe, PROMPT),
                               sampling.encode_prompt(tiny_pipe, PROMPT, guidance=False))


def test_pool_similarity_and_mix(tiny_pipe):
    prompts = [PROMPT, PROMPT, "a small green triangle at the top"]
    ids = text.tokenize(tiny_pipe.tokenizer, prompts)
    embeds = text.encode(tiny_pipe.text_encoder, ids)
    for how in ("eos", "mean"):
        vectors = text.pool(embeds, ids, how)
        assert vectors.shape == (3, tiny_pipe.text_encoder.config.hidden_size)
        sim = text.cosine_similarity_matrix(vectors)
        torch.testing.assert_close(sim.diagonal(), torch.ones(3))
        torch.testing.assert_close(sim, sim.T)
        assert sim[0, 1] == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(text.pool(embeds, ids, "eos")[0], embeds[0, 8])  # BOS + 7 tokens -> EOS at 8
    with pytest.raises(ValueError):
        text.pool(embeds, ids, "max")
    torch.testing.assert_close(text.prompt_similarity(tiny_pipe, prompts),
                               text.cosine_similarity_matrix(text.pool(embeds, ids)))
    mixed = text.mix(embeds[:1], embeds[2:], [0.0, 0.5, 1.0])
    assert mixed.shape == (3, 77, embeds.shape[-1])
    torch.testing.assert_close(mixed[0], embeds[0])
    torch.testing.assert_close(mixed[2], embeds[2])
    torch.testing.assert_close(mixed[1], (embeds[0] + embeds[2]) / 2)
