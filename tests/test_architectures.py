"""SD v1.5, SDXL, SD3 and Flux from their published configurations, on the meta device: the published sizes."""
import pytest

from sdlab import architectures
from sdlab.errors import InvalidInputError

# parameters as their model cards and papers give them (SD v1.5 860M, SDXL 2.6B, SD3 medium 2B, Flux 12B)
PUBLISHED = {"SD v1.5": 0.86e9, "SDXL": 2.6e9, "SD3 medium": 2.0e9, "FLUX.1 dev": 12e9}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_denoisers_have_their_published_size_and_cost_no_memory(name):
    net = architectures.build_denoiser(name)
    assert next(net.parameters()).device.type == "meta"
    assert abs(architectures.count_parameters(net) / PUBLISHED[name] - 1) < 0.03


def test_text_encoders_and_latents():
    sd3 = architectures.summary("SD3 medium", flops=False)
    assert list(sd3["text_encoders"]) == ["CLIP ViT-L/14", "OpenCLIP bigG/14", "T5-XXL encoder"]
    assert abs(sd3["text_encoders"]["T5-XXL encoder"] / 4.76e9 - 1) < 0.01   # T5 v1.1 XXL's encoder
    assert abs(sd3["text_encoders"]["CLIP ViT-L/14"] / 123.06e6 - 1) < 0.01  # CLIP ViT-L/14's text tower
    assert sd3["latent"] == (16, 128, 128) and architectures.summary("SD v1.5", flops=False)["latent"] == (4, 64, 64)
    assert {architectures.image_tokens(n) for n in PUBLISHED} == {4096}


def test_flops_grow_from_v1_5_to_flux():
    sd15 = architectures.denoiser_flops("SD v1.5")
    # SD v1.5's UNet: ~0.8 TFLOPs per 64x64 latent (2 per multiply-add), the figure usually quoted
    assert 0.7e12 < sd15 < 0.9e12
    assert architectures.denoiser_flops("FLUX.1 dev") > 20 * sd15


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(InvalidInputError, match="SDXL"):
        architectures.build_denoiser("SD4")
