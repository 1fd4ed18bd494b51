"""`python -m sdlab.train` end to end at a toy size: checkpoints, the loss log, --resume, export."""
import csv
import json

import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline
from safetensors import safe_open

from sdlab import train


def test_train_command_checkpoints_resumes_and_exports(tmp_path):
    out = tmp_path / "run"
    args = ["--out", str(out), "--vae-steps", "10", "--unet-steps", "10", "--num-images", "64", "--decoder-steps", "4",
            "--batch-size", "8", "--vae-batch-size", "4", "--warmup-steps", "2", "--checkpoint-minutes", "30",
            "--sample-steps", "0,10,20", "--sample-prompts", "4"]
    train.main(args)
    assert json.loads((out / "unet" / "checkpoint" / "step.json").read_text())["step"] == 10
    rows = list(csv.DictReader((out / "unet" / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [10] and float(rows[0]["loss"]) > 0
    card = json.loads((out / "training.json").read_text())
    assembled = StableDiffusionPipeline.from_pretrained(str(out / "pipeline"))
    assert assembled.vae.config.scaling_factor == card["scaling_factor"]
    # every stage timed (a GPU runs these few steps in under 3 s: the minutes may round to 0.0)
    assert set(card["seconds"]) == {"vae", "encode", "decoder", "unet"} and sum(card["seconds"].values()) > 0
    # the decoder stage moved the decoder but not the encoder, so the latents stay valid
    vae1 = AutoencoderKL.from_pretrained(str(out / "vae" / "final"))
    vae3 = AutoencoderKL.from_pretrained(str(out / "decoder" / "final"))
    assert torch.equal(vae1.encoder.conv_in.weight, vae3.encoder.conv_in.weight)
    assert not torch.equal(vae1.decoder.conv_out.weight, vae3.decoder.conv_out.weight)

    # a longer run resumes at step 10 instead of starting again, and exports a loadable fp16 copy
    train.main(args[:5] + ["20"] + args[6:] + ["--resume", "--export", str(tmp_path / "exported")])
    rows = list(csv.DictReader((out / "unet" / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [10, 20]
    exported = StableDiffusionPipeline.from_pretrained(str(tmp_path / "exported"))
    assert exported.unet.config.sample_size == 8 and (tmp_path / "exported" / "tokenizer" / "vocab.json").is_file()
    with safe_open(str(tmp_path / "exported" / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        names = f.keys()
        assert {f.get_tensor(k).dtype for k in names} == {torch.float16}  # the export halves the weights
    # the samples recorded while the UNet trained: steps 0 and 10 from the first run, 20 from the resumed one
    samples, meta = train.load_samples(tmp_path / "exported" / train.SAMPLES_FILE)
    assert list(samples) == [0, 10, 20] and samples[20].shape == (4, 4, 8, 8)
    assert len(meta["prompts"]) == 4 and meta["things"][0].prompt() == meta["prompts"][0]
    assert not torch.equal(samples[0], samples[20])  # the model changed what it draws
