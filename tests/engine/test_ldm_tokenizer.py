"""Latent diffusion on a tokenizer parent (engine/families/ldm, model.parent a vqvae checkpoint): the
diffusion runs in the tokenizer's continuous pre-quantization map with a spatial denoiser (the UNet,
or a DiT), the scale factor estimated from the data; samples are quantised and decoded by the
parent's decoder to finite images. A parent of another family, or a spatial backbone over a VAE's
vector latent, is one line; the ldm-vq-digits preset names its tokenizer preset."""
from __future__ import annotations

import pytest
import torch

from engine.core.config import load_preset
from engine.families.ldm.layers import LatentDenoiser, SpatialLatentDenoiser
from engine.nn.dit import DiT
from engine.nn.unet import UNet
from engine.training import checkpoint as ck
from engine.training.loop import Trainer, train
from tests.conftest import TINY_RES, tiny_family_config, tiny_parent

SPATIAL = {"channel_mults": [1, 2], "attention_resolutions": [2], "heads": 2}


def on_tokenizer(quantizer: str = "vq", **model):
    parent = tiny_parent("vqvae", {"quantizer": quantizer} if quantizer != "vq" else None)
    return tiny_family_config("ldm", steps=3).replace(model={"parent": str(parent), **SPATIAL, **model})


@pytest.mark.parametrize("quantizer", ["vq", "fsq"])
def test_a_two_stage_run_on_a_tokenizer_trains_samples_and_decodes_finite_images(tmp_path, quantizer):
    trainer = Trainer(on_tokenizer(quantizer), tmp_path / "run", emit=lambda e: None)
    res = trainer.run()
    assert res.state == "finished", res.message
    fam, _ = ck.family_from_checkpoint(res.last_checkpoint, "cpu")
    tokenizer = fam.parent.family
    assert fam.parent.family_name == "vqvae" and fam.latent_shape == (8, TINY_RES // 2, TINY_RES // 2)
    net = fam.networks["denoiser"]
    assert isinstance(net, SpatialLatentDenoiser) and isinstance(net.net, UNet)   # auto: a map gets the UNet
    # the scale factor is 1/std of the tokenizer's continuous latents of the training images
    latents = trainer.family.latents
    assert latents.shape == (len(trainer.data), fam.latent_dim)
    assert fam.latent_scale == pytest.approx(1 / float(latents.std()), rel=1e-5) and fam.latent_scale != 1.0
    for sampler in ("ddim", "unipc"):
        images = fam.sample(3, seed=0, options={"sampler": sampler})
        assert images.shape == (3, 1, TINY_RES, TINY_RES) and torch.isfinite(images).all()
        assert images.abs().max() <= 1.0
    # decoding quantises: the tokenizer's decoder sees the codes nearest a latent, not the latent itself
    z = torch.randn(2, *fam.latent_shape, generator=torch.Generator().manual_seed(1))
    nets = tokenizer.nets(True)
    with torch.no_grad():
        snapped, raw = nets["decoder"](nets["quantizer"](z).z_q), nets["decoder"](z)
    images = fam.decode_from_latents(z.reshape(2, -1) * fam.latent_scale)
    torch.testing.assert_close(images, snapped.clamp(-1, 1))
    assert not torch.allclose(images, raw.clamp(-1, 1))


def test_a_dit_denoises_the_tokenizers_map_too(tmp_path):
    res = train(on_tokenizer(backbone="dit", width=16, depth=1), tmp_path / "run", emit=lambda e: None)
    assert res.state == "finished", res.message
    fam, _ = ck.family_from_checkpoint(res.last_checkpoint, "cpu")
    assert isinstance(fam.networks["denoiser"].net, DiT)
    assert torch.isfinite(fam.sample(2, seed=0)).all()


def test_a_vae_parent_keeps_the_mlp_and_refuses_a_spatial_backbone_in_one_line(tmp_path):
    cfg = tiny_family_config("ldm")
    assert cfg.model.backbone == "auto"
    trainer = Trainer(cfg, tmp_path / "mlp", emit=lambda e: None)
    trainer.setup()
    assert isinstance(trainer.family.networks["denoiser"], LatentDenoiser)
    res = train(cfg.replace(model={"backbone": "unet"}), tmp_path / "unet", emit=lambda e: None)
    assert res.state == "failed" and "\n" not in res.message
    assert "model.backbone = 'unet' needs a latent map (a vqvae parent)" in res.message


def test_a_parent_of_another_family_is_one_line_naming_both_it_takes(tmp_path, tiny_runs):
    ddpm = tiny_runs["ddpm"].checkpoint
    res = train(on_tokenizer().replace(model={"parent": str(ddpm)}), tmp_path / "run", emit=lambda e: None)
    assert res.state == "failed" and "\n" not in res.message and str(ddpm.resolve()) in res.message
    assert "cannot be the parent of a ldm model; it takes a parent of family vae or vqvae" in res.message


def test_the_ldm_vq_digits_preset_trains_on_the_vqvae_digits_tokenizer():
    cfg = load_preset("ldm-vq-digits")
    assert cfg.model.family == "ldm" and cfg.model.default_parent_preset == "vqvae-digits"
    assert cfg.model.backbone == "unet" and load_preset("vqvae-digits").model.quantizer == "vq"
