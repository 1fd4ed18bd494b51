"""The GPU benchmark's code path, run on the CPU with a small SD v1.5-shaped model."""
import torch

from sdlab import gpubench


def test_sd15_configs_match_the_published_architecture():
    cfg = gpubench.sd15_unet_config()
    assert cfg["block_out_channels"] == (320, 640, 1280, 1280) and cfg["cross_attention_dim"] == 768
    assert gpubench.sd15_vae_config()["block_out_channels"] == (128, 256, 512, 512)
    text = gpubench.sd15_text_config()
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads) == (768, 12, 12)


def test_cpu_run_compares_three_variants_and_the_hand_loop_is_exact():
    result = gpubench.run(device=torch.device("cpu"), small=True, size=64, steps=2, batches=(1,), repeats=1)
    assert result["hand_loop_max_abs_diff"] < 1e-5
    assert [row["variant"] for row in result["rows"]] == ["a_stock", "b_hand_loop", "c_optimised"]
    assert all(row["seconds_per_image"] > 0 and row["unet_tflops_per_step"] > 0 for row in result["rows"])
    assert "a_stock" in gpubench.format_table(result)
