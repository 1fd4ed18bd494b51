"""The bundled CLIP BPE tokenizer gives Stable Diffusion v1.5's token ids, offline."""
from sdlab import tiny


def test_vocabulary_and_special_tokens():
    tok = tiny.load_tokenizer()
    assert len(tok) == 49408
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (49406, 49407, 49407)
    assert tok.model_max_length == 77


def test_astronaut_prompt_ids_match_sd15():
    ids = tiny.load_tokenizer()("a photo of an astronaut riding a horse on the moon").input_ids
    assert ids == [49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 525, 518, 3293, 49407]


def test_lower_cases_and_splits_unknown_words_into_pieces():
    tok = tiny.load_tokenizer()
    assert tok("A RED Circle").input_ids == tok("a red circle").input_ids
    pieces = tok.tokenize("stablediffusion")
    assert len(pieces) > 1 and pieces[-1].endswith("</w>")


def test_padding_and_truncation_at_77():
    tok = tiny.load_tokenizer()
    ids = tok("red " * 100, padding="max_length", max_length=77, truncation=True).input_ids
    assert len(ids) == 77 and ids[0] == 49406 and ids[-1] == 49407
    short = tok("a red circle", padding="max_length", max_length=77).input_ids
    assert short[:5] == [49406, 320, 736, 7117, 49407] and set(short[5:]) == {49407}
