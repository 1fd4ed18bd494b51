"""The T4 cost counter (sdlab.cost): it sees every UNet call, and its arithmetic follows the cited figure."""
import json

import torch

from sdlab import cost


def test_hook_records_every_unet_call(tiny_pipe, tmp_path):
    log = tmp_path / "calls.jsonl"
    handle = cost._record(str(log))
    try:
        with torch.no_grad():
            tiny_pipe.unet(torch.zeros(3, 4, 8, 8), 10, encoder_hidden_states=torch.zeros(3, 77, 64))
            tiny_pipe.vae.decode(torch.zeros(1, 4, 8, 8))  # not a UNet: not recorded
    finally:
        handle.remove()
    records = cost.read_log(log)
    assert records == [{"batch": 3, "h": 8, "w": 8, "native": 8, "grad": False}]


def test_summary_scales_to_sd15_at_512_and_counts_tiny_calls_apart():
    sd = {"batch": 2, "h": 16, "w": 16, "native": 16, "grad": False}  # one guided step at the native size
    r = cost.summarise([sd] * 25 + [{**sd, "grad": True}] + [{"batch": 2, "h": 8, "w": 8, "native": 8, "grad": False}])
    assert r["unet_calls"] == 26 and r["latents"] == 52 and r["training_calls"] == 1 and r["tiny_calls"] == 1
    # 25 guided steps = 25 iterations at 6.9 it/s (diffusers' T4 table), plus one training call at 3x
    assert abs(r["t4_seconds"] - round(25 / 6.9 + 3 * 2 / 6.9 / 2, 1)) < 0.05


def test_costs_file_covers_the_series():
    costs = json.loads(cost.COSTS_FILE.read_text())
    assert all(c["t4_seconds"] < 10 * 60 for c in costs.values()), "every notebook stays under 10 minutes on a T4"
