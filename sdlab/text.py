"""Text encoding: how a prompt becomes `prompt_embeds`, the (batch, 77, d) tensor the UNet reads.

Stable Diffusion v1.x conditions on the frozen text encoder of CLIP ViT-L/14 (Radford et al.,
2021, "Learning Transferable Visual Models From Natural Language Supervision"; Rombach et al.,
2022, Sec. 3.3 and 4.3). A prompt goes through four steps:

1. **BPE tokenizer** (byte-pair encoding, Sennrich et al., 2016): lower-cased words are split
   into pieces from a 49,408-entry vocabulary ("</w>" marks the end of a word), wrapped in
   BOS (<|startoftext|>, 49406) and EOS (<|endoftext|>, 49407), and padded -- with EOS in
   SD v1.5's tokenizer -- or truncated to exactly 77 ids.
2. **Embeddings**: each id picks a row of `token_embedding` (49408, d); each position 0..76
   picks a row of `position_embedding` (77, d); their sum enters the first layer.
3. **Transformer**: layers of self-attention with a causal mask (a token sees only itself and
   earlier tokens, as in GPT-2), then a final LayerNorm.
4. The last hidden state (batch, 77, d) is `prompt_embeds`: d = 768 for SD v1.5, 64 for the
   tiny engine. The UNet reads all 77 rows through cross-attention.

Functions take a `tokenizer` or `text_encoder` (a `transformers.CLIPTextModel`), so they work
on any engine's pipeline (`pipe.tokenizer`, `pipe.text_encoder`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import checks
from .errors import InvalidInputError

BOS_ID = 49406  # <|startoftext|>
EOS_ID = 49407  # <|endoftext|>, also SD v1.5's padding token
MAX_LENGTH = 77  # CLIP's context length: BOS + 75 tokens + EOS


# --------------------------------------------------------------------------- 1. tokens

@dataclass(frozen=True)
class Token:
    """One position of a tokenized prompt."""

    position: int
    id: int
    piece: str
    kind: str  # "BOS", "token", "EOS" or "pad"


def tokenize(tokenizer, prompts: str | Sequence[str]) -> torch.Tensor:
    """input_ids (batch, 77) exactly as `StableDiffusionPipeline.encode_prompt` makes them:
    padded to the tokenizer's `model_max_length` and truncated to it."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    return tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


def token_table(tokenizer, prompt: str) -> list[Token]:
    """Every one of the 77 positions of a prompt: its id, its BPE piece and its kind."""
    ids = tokenize(tokenizer, prompt)[0].tolist()
    pieces = tokenizer.convert_ids_to_tokens(ids)
    eos = ids.index(tokenizer.eos_token_id)  # the first EOS ends the prompt; the rest is padding
    kinds = ["BOS" if i == 0 else "EOS" if i == eos else "pad" if i > eos else "token" for i in range(len(ids))]
    return [Token(i, t, p, k) for i, (t, p, k) in enumerate(zip(ids, pieces, kinds, strict=True))]


def format_token_table(tokens: Sequence[Token], padding_rows: int = 2) -> str:
    """A printable table of positions, ids, pieces and kinds; long runs of padding are elided."""
    lines = [f"{'pos':>4} {'id':>6}  {'piece':<20} kind"]
    pads = [t for t in tokens if t.kind == "pad"]
    for t in tokens:
        if t.kind == "pad" and t not in pads[:padding_rows] and t is not pads[-1]:
            if t is pads[padding_rows]:
                lines.append(f"{'...':>4} {'':>6}  ({len(pads) - padding_rows - 1} more padding positions)")
            continue
        lines.append(f"{t.position:>4} {t.id:>6}  {t.piece:<20} {t.kind}")
    return "\n".join(lines)


def token_position(tokenizer, prompt: str, word: str) -> int:
    """The position (0..76) of `word` in the tokenized prompt; the word must be a single BPE token.

    Raises:
        ValueError: if the word is several tokens or does not occur in the prompt.
    """
    word_ids = tokenizer(word, add_special_tokens=False).input_ids
    if len(word_ids) != 1:
        raise InvalidInputError(f"{word!r} is {len(word_ids)} BPE tokens {tokenizer.convert_ids_to_tokens(word_ids)}; "
                         "pick a word that is one token")
    ids = tokenize(tokenizer, prompt)[0].tolist()
    if word_ids[0] not in ids:
        raise InvalidInputError(f"{word!r} does not occur in the prompt {prompt!r}")
    return ids.index(word_ids[0])


# --------------------------------------------------------------------------- 2. embeddings

def embedding_layers(text_encoder):
    """The `CLIPTextEmbeddings` module: `.token_embedding` (vocab, d) and `.position_embedding` (77, d)."""
    return getattr(text_encoder, "text_model", text_encoder).embeddings  # transformers 4.x nests a text_model


def encoder_layers(text_encoder) -> torch.nn.ModuleList:
    """The transformer's layers (12 for SD v1.5, 3 for the tiny engine)."""
    return getattr(text_encoder, "text_model", text_encoder).encoder.layers


@torch.no_grad()
def input_embeddings(text_encoder, input_ids: torch.Tensor) -> torch.Tensor:
    """token_embedding(input_ids) + position_embedding(0..n-1): what the first layer receives, (batch, n, d)."""
    emb = embedding_layers(text_encoder)
    input_ids = input_ids.to(emb.token_embedding.weight.device)
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device)
    return emb.token_embedding(input_ids) + emb.position_embedding(positions)[None]


@torch.no_grad()
def first_layer_input(text_encoder, input_ids: torch.Tensor) -> torch.Tensor:
    """The hidden states the transformer's first layer actually receives, caught with a forward pre-hook."""
    caught = {}

    def hook(module, args, kwargs):
        caught["hidden_states"] = args[0] if args else kwargs["hidden_states"]

    handle = encoder_layers(text_encoder)[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        text_encoder(input_ids.to(text_encoder.device))
    finally:
        handle.remove()
    return caught["hidden_states"]


# --------------------------------------------------------------------------- 3.-4. the encoder's output

@torch.no_grad()
def encode(text_encoder, input_ids: torch.Tensor) -> torch.Tensor:
    """prompt_embeds: the text encoder's last hidden state (batch, 77, d), as the pipeline computes it."""
    return text_encoder(input_ids.to(text_encoder.device))[0]


def prompt_embeds(pipe, prompts: str | Sequence[str]) -> torch.Tensor:
    """prompt_embeds (batch, 77, d) for prompts, with the pipeline's own tokenizer and text encoder."""
    return encode(pipe.text_encoder, tokenize(pipe.tokenizer, prompts))


@torch.no_grad()
def encode_token_embeds(text_encoder, input_ids: torch.Tensor, token_embeds: torch.Tensor) -> torch.Tensor:
    """Run the text encoder on edited token embeddings (an `inputs_embeds`-style call).

    `CLIPTextModel` takes only ids, so a forward hook replaces the output of `token_embedding`
    with `token_embeds` (batch, 77, d); position embeddings, the causal mask and every layer run
    as usual. Returns prompt_embeds (batch, 77, d).
    """
    emb = embedding_layers(text_encoder).token_embedding
    handle = emb.register_forward_hook(lambda module, args, output: token_embeds.to(output.device, output.dtype))
    try:
        return encode(text_encoder, input_ids)
    finally:
        handle.remove()


def swap_token(text_encoder, tokenizer, prompt: str, word: str, new_word: str) -> torch.Tensor:
    """prompt_embeds of `prompt` with the input embedding of `word` replaced by that of `new_word`."""
    ids = tokenize(tokenizer, prompt)
    pos = token_position(tokenizer, prompt, word)
    new_id = tokenizer(new_word, add_special_tokens=False).input_ids
    if len(new_id) != 1:
        raise InvalidInputError(f"{new_word!r} is not a single BPE token")
    emb = embedding_layers(text_encoder).token_embedding
    token_embeds = emb(ids.to(emb.weight.device)).detach().clone()  # (1, 77, d)
    token_embeds[0, pos] = emb.weight[new_id[0]].detach()
    return encode_token_embeds(text_encoder, ids, token_embeds)


# --------------------------------------------------------------------------- similarity and mixing

def pool(prompt_embeds: torch.Tensor, input_ids: torch.Tensor, how: str = "eos") -> torch.Tensor:
    """One vector per prompt (batch, d), in float32.

    Args:
        how: "eos" -- the row at the first EOS: the one CLIP's contrastive loss trains as the
            caption's summary (`pooler_output`, before the projection; Radford et al., 2021);
            "mean" -- the mean of the rows from
            the first token to EOS (BOS is left out: it is the same for every prompt).
    """
    embeds = prompt_embeds.detach().float().cpu()
    eos = (input_ids.cpu() == EOS_ID).int().argmax(dim=1)  # first EOS per prompt
    if how == "eos":
        return embeds[torch.arange(len(eos)), eos]
    if how == "mean":
        return torch.stack([embeds[i, 1:e + 1].mean(0) for i, e in enumerate(eos.tolist())])
    raise InvalidInputError(f"how must be 'eos' or 'mean', got {how!r}")


def cosine_similarity_matrix(vectors: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of rows: (n, d) -> (n, n), 1 on the diagonal."""
    v = torch.nn.functional.normalize(vectors.float(), dim=-1)
    return v @ v.T


def prompt_similarity(pipe, prompts: Sequence[str], how: str = "eos") -> torch.Tensor:
    """Cosine similarity (n, n) between prompts' pooled prompt_embeds (see `pool`)."""
    ids = tokenize(pipe.tokenizer, prompts)
    return cosine_similarity_matrix(pool(encode(pipe.text_encoder, ids), ids, how))


def mix(prompt_embeds_a: torch.Tensor, prompt_embeds_b: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """Linear mixes (1 - w) * a + w * b for each w: (1, 77, d) twice -> (len(weights), 77, d)."""
    checks.same_shape(prompt_embeds_a, prompt_embeds_b, ("prompt_embeds_a", "prompt_embeds_b"))
    for w in weights:
        checks.number(w, "each weight", why="0 gives a, 1 gives b; outside [0, 1] extrapolates")
    w = torch.as_tensor(list(weights), dtype=prompt_embeds_a.dtype, device=prompt_embeds_a.device).reshape(-1, 1, 1)
    return (1 - w) * prompt_embeds_a + w * prompt_embeds_b
