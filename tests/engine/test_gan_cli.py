"""`genlab-engine mix` and `interpolate`, and the worker's project/mix/interpolate requests."""
import json

import pytest
from PIL import Image

from engine.training.loop import train
from engine.worker import Worker
from tests.conftest import tiny_config
from tests.engine.test_cli_worker import engine
from tests.engine.test_gan import gan_config


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("ck")
    out = {}
    for name, cfg in (("stylegan", gan_config("stylegan")), ("gan", gan_config("gan")),
                      ("ddpm", tiny_config(training={"steps": 4}))):
        r = train(cfg.replace(training={"steps": 4, "checkpoint_every": 0}), root / name, emit=lambda e: None)
        out[name] = str(r.last_checkpoint)
    return out


def test_cli_mix_writes_the_grid_with_images_as_sources(tmp_path, ckpts):
    face = tmp_path / "face.png"
    Image.new("RGB", (30, 30), (200, 100, 50)).save(face)
    out = tmp_path / "grid.png"
    r = engine("mix", "--checkpoint", ckpts["stylegan"], "--rows", "1,2,3", "--cols", f"4,5,{face}",
               "--layers", "0-3", "--psi", "0.7", "--project-steps", "20", "--scale", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["layers"] == [0, 1, 2, 3] and info["rows"] == 3 and info["cols"] == 3
    assert Image.open(out).size == (4 * 17 + 1, 4 * 17 + 1)
    r = engine("mix", "--checkpoint", ckpts["stylegan"], "--rows", "1", "--cols", "2", "--layers", "0-99")
    assert r.returncode == 2 and "layer 6 is out of range" in r.stderr
    r = engine("mix", "--checkpoint", ckpts["gan"], "--rows", "1", "--cols", "2")
    assert r.returncode == 2 and "no per-layer styles" in r.stderr
    r = engine("mix", "--checkpoint", ckpts["stylegan"], "--rows", "1", "--cols", "missing.png")
    assert r.returncode == 2 and "missing.png" in r.stderr


@pytest.mark.parametrize("family,suffix", [("stylegan", ".gif"), ("gan", ".mp4"), ("ddpm", ".png")])
def test_cli_interpolate_writes_gif_mp4_and_strip(tmp_path, ckpts, family, suffix):
    out = tmp_path / f"walk{suffix}"
    r = engine("interpolate", "--checkpoint", ckpts[family], "--from", "3", "--to", "8", "--via", "5",
               "--frames", "7", "--mode", "slerp", "--sample-steps", "3", "--scale", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    # --sample-steps is diffusion's: a GAN says it ignores it, and the walk is made all the same
    assert ("does not apply" in r.stderr) == (family != "ddpm")
    assert json.loads(r.stdout)["frames"] == 7
    if suffix == ".gif":
        assert Image.open(out).n_frames == 7
    elif suffix == ".png":
        assert Image.open(out).size == ((7 * 9 + 1) * 2, (9 + 1) * 2)   # 8x8 frames, 1-pixel pads, scale 2
    else:
        import cv2
        cap = cv2.VideoCapture(str(out))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 7
    r = engine("interpolate", "--checkpoint", ckpts[family], "--from", "3", "--to", "4", "--out", "x.avi")
    assert r.returncode == 2 and ".avi" in r.stderr


def test_worker_projects_mixes_and_interpolates_with_images_and_seeds(tmp_path, ckpts):
    events = []
    w = Worker(tmp_path / "cache", "cpu", emit=events.append)
    face = tmp_path / "face.png"
    Image.new("L", (16, 16), 255).save(face)
    w.handle({"id": 1, "op": "project", "checkpoint": ckpts["stylegan"], "image": str(face), "encode_steps": 15})
    w.handle({"id": 2, "op": "mix", "rows": [1, str(face)], "cols": [2, 3], "layers": [0, 1],
              "options": {"truncation_psi": 0.5}})
    w.handle({"id": 3, "op": "interpolate", "endpoints": [str(face), 4], "frames": 5, "mode": "lerp",
              "out": str(tmp_path / "w.gif")})
    results = {e["id"]: e for e in events if e["event"] == "result"}
    assert set(results) == {1, 2, 3}, [e for e in events if e["event"] == "error"]
    assert any(e["event"] == "progress" and e["id"] == 1 and "encoding" in e["stage"] for e in events)
    assert not any(e["event"] == "progress" and e["id"] == 2 and "encoding" in e.get("stage", "") for e in events)
    assert Image.open(results[2]["path"]).size == (3 * 17 + 1, 3 * 17 + 1)
    assert results[3]["frames"] == 5 and Image.open(results[3]["out"]).n_frames == 5
    # DDPM: images enter by DDIM inversion, and a mix request says why it cannot be done
    w.handle({"id": 4, "op": "interpolate", "checkpoint": ckpts["ddpm"], "endpoints": [1, str(face)], "frames": 3,
              "options": {"steps": 4}})
    w.handle({"id": 5, "op": "mix", "rows": [1], "cols": [2]})
    by_id = {e["id"]: e for e in events if e.get("id") in (4, 5) and e["event"] in ("result", "error")}
    assert by_id[4]["event"] == "result" and by_id[4]["frames"] == 3
    assert by_id[5]["event"] == "error" and "no per-layer styles" in by_id[5]["message"]


def test_ddim_inversion_round_trips_close_to_the_image(ckpts):
    from engine.training.checkpoint import family_from_checkpoint
    fam, _ = family_from_checkpoint(ckpts["ddpm"], "cpu")
    img = fam.sample(2, seed=1, steps=10)
    back = fam.decode_latents(fam.encode_images(img, steps=10), options={"steps": 10})
    other = fam.sample(2, seed=2, steps=10)
    assert (back - img).abs().mean() < 0.5 * (other - img).abs().mean()


def test_layer_specs_as_the_cli_and_the_canvas_give_them():
    from engine.ops.style_mix import parse_layers
    groups = {"coarse": [0, 1], "middle": [2, 3], "fine": [4, 5]}
    assert parse_layers("0,2,5", 6, groups) == parse_layers(["0,2,5"], 6, groups) == [0, 2, 5]
    assert parse_layers(["middle,fine"], 6, groups) == [2, 3, 4, 5]
    assert parse_layers([0, "3-4", "all"], 6, groups) == list(range(6))
    with pytest.raises(ValueError, match="'wide' is not a layer number"):
        parse_layers("wide", 6, groups)


def test_train_set_overrides_and_option_values_parse_as_toml():
    from engine.cli.common import parse_options
    from engine.cli.main import build_parser
    from engine.cli.train import load_run_config
    args = build_parser().parse_args(["train", "--preset", "dcgan-digits", "--set", "training.batch_size=32",
                                      "--set", "sampling.truncation_psi=0.7"])
    cfg = load_run_config(args)
    assert cfg.training.batch_size == 32 and cfg.sampling.truncation_psi == 0.7
    assert parse_options(["steps=20", "spacing=trailing", "eta=0.5"]) == {"steps": 20, "spacing": "trailing", "eta": 0.5}
