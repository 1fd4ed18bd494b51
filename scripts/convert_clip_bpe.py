"""Convert CLIP's BPE file into the vocab.json + merges.txt that `transformers.CLIPTokenizer` reads.

CLIP (Radford et al., 2021, "Learning Transferable Visual Models From Natural Language
Supervision") ships its byte-pair-encoding table as `bpe_simple_vocab_16e6.txt.gz`; OpenAI's
`clip/simple_tokenizer.py` builds the 49,408-token vocabulary from it in a fixed order:
256 byte symbols, the same 256 with the end-of-word marker `</w>`, one token per merge
(48,894 merges), then `<|startoftext|>` (49406) and `<|endoftext|>` (49407). Stable Diffusion
v1.5's tokenizer is exactly this vocabulary, so our ids match SD v1.5's for every prompt.

The file is read from the `open_clip_torch` wheel (MIT licence), fetched without installing it
(installing open_clip would pull torchvision and a CUDA build of torch):

    pip download --no-deps --dest /tmp/oc open_clip_torch==3.3.0
    python scripts/convert_clip_bpe.py /tmp/oc/open_clip_torch-3.3.0-py3-none-any.whl

The output goes to `sdlab/assets/clip_tokenizer/` and is committed.
"""
from __future__ import annotations

import argparse
import gzip
import json
import zipfile
from pathlib import Path

BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
OUT_DIR = Path(__file__).resolve().parents[1] / "sdlab" / "assets" / "clip_tokenizer"
VOCAB_SIZE = 49408
MAX_LENGTH = 77


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from the 256 byte values to printable unicode characters."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def convert(wheel: Path, out_dir: Path = OUT_DIR) -> None:
    with zipfile.ZipFile(wheel) as zf:
        lines = gzip.decompress(zf.read(BPE_MEMBER)).decode("utf-8").split("\n")
    n_merges = VOCAB_SIZE - 2 * 256 - 2  # 48,894: what is left after bytes, bytes+</w>, 2 specials
    merges = lines[1 : 1 + n_merges]  # line 0 is a version header
    byte_symbols = list(bytes_to_unicode().values())
    vocab = byte_symbols + [s + "</w>" for s in byte_symbols]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == VOCAB_SIZE, len(vocab)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False))
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MAX_LENGTH,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "do_lower_case": True,
        "clean_up_tokenization_spaces": False,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {k: config[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token")}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    print(f"wrote {len(vocab)} tokens and {len(merges)} merges to {out_dir}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="path to an open_clip_torch wheel")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    convert(args.wheel, args.out)
