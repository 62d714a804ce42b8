"""Inpainting: the RePaint walk, the diffusion methods against plain sampling, the classical fills,
the feathered composite, the operation on image files (any size, any fit), the worker (no model
needed for the classical fills, cancel) and the CLI's clear errors."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from engine.core.solvers import solver_names
from engine.inpainting.classical import classical_fill
from engine.inpainting.composite import feather, paste
from engine.inpainting.geometry import mask_outside, work_region
from engine.family.base import build_family
from engine.ops.base import ModelSession, never, no_progress, parse_request
from engine.ops.inpaint import InpaintRequest, run
from engine.diffusion.inpaint import inpaint_diffusion, paper_jump, repaint_schedule, start_position
from engine.training.loop import train
from engine.worker import Worker


# ---- the RePaint walk ----------------------------------------------------------------------------
def test_repaint_schedule_jumps_back_and_resamples_as_the_reference():
    # worked by hand from the reference's get_schedule_jump with t_T = 6, jump 2, resample 2:
    # times 5 4 3 2 [3 4] 3 2 1 0 [1 2] 1 0 -1, as positions n-1-t
    assert repaint_schedule(6, 2, 2) == [0, 1, 2, 3, 2, 1, 2, 3, 4, 5, 4, 3, 4, 5, 6]
    assert repaint_schedule(5, 10, 10) == [0, 1, 2, 3, 4, 5]          # no room for a jump
    assert repaint_schedule(8, 3, 1) == list(range(9))                 # resample 1: plain sampling
    walk = repaint_schedule(250, 10, 10)                              # the paper's setting
    downs = sum(1 for a, b in zip(walk, walk[1:]) if b == a + 1)
    ups = sum(1 for a, b in zip(walk, walk[1:]) if b == a - 1)
    assert walk[0] == 0 and walk[-1] == 250 and downs - ups == 250
    assert ups == 24 * 9 * 10   # 24 jump points (t = 0, 10, …, 230), 9 extra passes of 10 steps each
    assert all(abs(b - a) == 1 for a, b in zip(walk, walk[1:]))


def test_the_default_jump_is_the_papers_scaled_to_the_chain():
    assert paper_jump(250) == 10 and paper_jump(50) == 2 and paper_jump(5) == 1 and paper_jump(1000) == 40


def test_strength_starts_part_way_down_the_chain():
    assert start_position(50, 1.0) == 0 and start_position(50, 0.5) == 25 and start_position(50, 0.01) == 49
    with pytest.raises(ValueError, match="strength"):
        start_position(50, 0.0)


# ---- geometry and composite --------------------------------------------------------------------------
def test_work_region_is_a_square_around_the_mask_inside_the_image():
    mask = np.zeros((100, 160), np.float32)
    mask[10:20, 150:158] = 1
    x0, y0, x1, y1 = work_region(mask, "masked", padding=5)
    assert x1 - x0 == y1 - y0 == 20 and 0 <= x0 and x1 <= 160 and 0 <= y0 and y1 <= 100
    assert x0 <= 145 and x1 >= 158 and y0 <= 5 and y1 >= 20      # bbox + padding, moved inside the image
    assert work_region(mask, "crop") == (30, 0, 130, 100) and work_region(mask, "resize") == (0, 0, 160, 100)
    assert mask_outside(mask, work_region(mask, "crop"))
    with pytest.raises(ValueError, match="mask is empty"):
        work_region(np.zeros((8, 8)), "masked")


def test_feather_softens_the_edge_only_within_its_radius():
    mask = np.zeros((40, 40), np.float32)
    mask[10:30, 10:30] = 1
    soft = feather(mask, 3)
    assert soft[20, 20] == 1.0 and soft[0, 0] == 0.0
    assert (soft[:, :6] == 0).all() and (soft[14:26, 14:26] == 1).all()    # exact beyond the radius
    assert 0 < soft[20, 10] < 1 and 0 < soft[20, 9] < 1                     # soft across the edge
    assert np.array_equal(feather(mask, 0), mask)


def test_classical_fills_keep_every_unmasked_pixel_and_fill_the_hole():
    rng = np.random.default_rng(0)
    img = np.tile(np.linspace(0, 255, 32, dtype=np.float32), (32, 1))[..., None].repeat(3, 2).astype(np.uint8)
    img = np.clip(img.astype(int) + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((32, 32), np.float32)
    mask[12:20, 12:20] = 1
    for method in ("telea", "ns"):
        out = classical_fill(img, mask, method)
        assert np.array_equal(out[mask == 0], img[mask == 0])
        # the hole continues the horizontal ramp: close to what was there
        assert np.abs(out[12:20, 12:20].astype(int) - img[12:20, 12:20].astype(int)).mean() < 12
    grey = classical_fill(img[..., :1], mask, "telea")
    assert grey.shape == (32, 32, 1)


def test_paste_keeps_the_original_bit_for_bit_where_the_weight_is_zero():
    rng = np.random.default_rng(1)
    orig = rng.random((20, 30, 3), dtype=np.float32)
    gen = rng.random((8, 8, 3), dtype=np.float32)
    weight = np.zeros((20, 30), np.float32)
    weight[5:10, 12:18] = 0.5
    out = paste(orig, gen, weight, (10, 2, 26, 18))
    assert np.array_equal(out[weight == 0], orig[weight == 0])
    assert not np.array_equal(out[weight > 0], orig[weight > 0])


# ---- the diffusion methods -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ddpm(tmp_path_factory):
    """A tiny DDPM trained a few steps on 8x8 digits: (family, checkpoint path)."""
    from tests.conftest import tiny_config
    from engine.training import checkpoint as ck
    root = tmp_path_factory.mktemp("inpaint")
    res = train(tiny_config(training={"steps": 4, "checkpoint_every": 0}, sampling={"steps": 6}),
                root / "run", emit=lambda e: None)
    assert res.state == "finished", res.message
    fam, _ = ck.family_from_checkpoint(res.last_checkpoint, "cpu")
    return fam, res.last_checkpoint


def test_each_method_comes_with_its_title_and_help_from_whoever_offers_it(ddpm):
    from engine.core.families import family_spec
    from engine.families.pixelcnn.model import PixelCNNFamily
    from engine.inpainting import CLASSICAL
    fam = ddpm[0]
    assert fam.capabilities().inpaint.methods == ["repaint", "blend"] and fam.check_inpaint_method("") == "repaint"
    assert fam.inpaint_methods is family_spec("ddpm").inpaint_methods
    assert [(m.name, m.title) for m in fam.inpaint_methods] == [("repaint", "RePaint (resampling)"),
                                                              ("blend", "Per-step blending")]
    assert [(m.name, m.title) for m in PixelCNNFamily.inpaint_methods] == [
        ("raster completion", "Raster-order completion (PixelCNN)")]
    assert [(m.name, m.title) for m in CLASSICAL] == [("telea", "Telea (OpenCV, no model)"),
                                                      ("ns", "Navier-Stokes (OpenCV, no model)")]
    assert all(m.help for m in (*fam.inpaint_methods, *PixelCNNFamily.inpaint_methods, *CLASSICAL))


def digits(n):
    from sklearn.datasets import load_digits
    d = torch.tensor(load_digits().images[:n], dtype=torch.float32) / 8 - 1   # 8x8 in [-1, 1]
    return d.unsqueeze(1).clamp(-1, 1)


@pytest.mark.parametrize("method", ["blend", "repaint"])
@pytest.mark.parametrize("sampler", solver_names())
def test_diffusion_methods_keep_the_known_pixels(ddpm, method, sampler):
    fam, _ = ddpm
    x = digits(2)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    out = fam.inpaint(x, mask, seeds=[3, 4], method=method, options={"sampler": sampler},
                      inpaint_options={"jump": 2, "resample": 3})
    keep = (mask == 0).expand_as(x)
    assert out.shape == x.shape and torch.equal(out[keep], x[keep])
    assert not torch.equal(out[~keep], x[~keep])


@pytest.mark.parametrize("sampler", solver_names())
def test_an_all_regenerate_mask_samples_exactly_as_plain_sampling_with_that_seed(ddpm, sampler):
    fam, _ = ddpm
    x = digits(1)
    ones = torch.ones(1, 1, 8, 8)
    plain = fam.sample(1, seed=7, options={"sampler": sampler})
    for method, extra in (("blend", {}), ("repaint", {"resample": 1})):
        out = fam.inpaint(x, ones, seeds=[7], method=method, options={"sampler": sampler},
                          inpaint_options={"start": "noise", **extra})
        assert torch.allclose(out, plain, atol=1e-6), method


@pytest.mark.parametrize("method", ["repaint", "blend"])
def test_with_an_all_regenerate_mask_the_fill_has_the_statistics_of_unconditional_samples(method):
    """Data x0 ~ N(mu, s²) per pixel has an exact epsilon predictor, E[eps | x_t] =
    sqrt(1-ab)(x_t - sqrt(ab) mu) / (ab s² + 1 - ab): a perfect model. Plain sampling with it draws
    from the data; so must inpainting with nothing known (RePaint's resampling included), whatever
    the given images were."""
    from engine.diffusion.denoise import denoise
    from engine.diffusion.schedules import make_schedule
    from engine.diffusion.solvers import build_solver
    ac = make_schedule("linear", 200)["alphas_cumprod"]
    mu, sd = 0.3, 0.5

    def perfect(x, t):
        ab = ac[t]
        return (1 - ab).sqrt() * (x - ab.sqrt() * mu) / (ab * sd ** 2 + 1 - ab)

    n = 4000
    shape = (n, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    plain = denoise(perfect, build_solver("ddpm", ac, clip_x0=False), torch.randn(shape, generator=g), 25,
                    generator=torch.Generator().manual_seed(1))
    known = torch.full(shape, -0.9)                       # far from the data: must not leak through
    out = inpaint_diffusion(perfect, build_solver("ddpm", ac, clip_x0=False), known, torch.ones(1, 1, 4, 4), known,
                            25, method=method, jump=5, resample=3, generator=torch.Generator().manual_seed(2),
                            merge_generator=torch.Generator().manual_seed(3))
    # (25 respaced DDPM steps end on a mean prediction, so both are a little narrower than the data)
    assert abs(plain.mean().item() - mu) < 0.02 and abs(out.mean().item() - mu) < 0.02
    assert abs(out.std().item() - plain.std().item()) < 0.02 and abs(plain.std().item() - sd) < 0.12


def test_strength_below_one_keeps_the_start_content_closer(ddpm):
    fam, _ = ddpm
    x = digits(8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    region = (mask > 0).expand_as(x)
    full = fam.inpaint(x, mask, seeds=list(range(8)), method="blend", options={"steps": 20})
    light = fam.inpaint(x, mask, seeds=list(range(8)), method="blend", options={"steps": 20},
                        inpaint_options={"strength": 0.2})
    assert (light - x)[region].abs().mean() < (full - x)[region].abs().mean()


def test_inpainting_reports_progress_and_can_be_cancelled(ddpm):
    from engine.family.progress import Cancelled
    fam, _ = ddpm
    seen = []
    fam.inpaint(digits(1), torch.ones(1, 1, 8, 8), seeds=[0], method="repaint", options={"steps": 6},
                inpaint_options={"jump": 2, "resample": 2}, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (14, 14) and len(seen) == 14    # the walk of repaint_schedule(6, 2, 2)
    calls = []
    with pytest.raises(Cancelled):
        fam.inpaint(digits(1), torch.ones(1, 1, 8, 8), seeds=[0], cancel=lambda: calls.append(1) or len(calls) > 2)
    with pytest.raises(ValueError, match="cannot inpaint with 'telea'"):
        fam.inpaint(digits(1), torch.ones(1, 1, 8, 8), seeds=[0], method="telea")
    with pytest.raises(Exception, match="inpaint.jump"):
        fam.inpaint(digits(1), torch.ones(1, 1, 8, 8), seeds=[0], inpaint_options={"jump": -1})


# ---- the operation on files -----------------------------------------------------------------------
def write_case(tmp_path, size=(48, 40), box=(20, 12, 30, 22)):
    rng = np.random.default_rng(0)
    w, h = size
    img = (rng.random((h, w)) * 255).astype(np.uint8)
    Image.fromarray(img, "L").save(tmp_path / "img.png")
    mask = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 255
    Image.fromarray(mask, "L").save(tmp_path / "mask.png")
    return img, mask


@pytest.mark.parametrize("fit", ["resize", "crop", "masked"])
def test_the_operation_pastes_back_into_the_full_image_and_keeps_everything_away_from_the_mask(ddpm, tmp_path, fit):
    fam, ckpt = ddpm
    img, mask = write_case(tmp_path)
    session = ModelSession(fam, ckpt, 4, fam.cfg)
    req = parse_request(InpaintRequest, {"image": str(tmp_path / "img.png"), "mask": str(tmp_path / "mask.png"),
                                         "out_dir": str(tmp_path / "out"), "seeds": [1, 2], "method": "repaint",
                                         "inpaint": {"jump": 2, "resample": 2}, "settings": {"fit": fit}}, "inpaint")
    res = run(session, req, no_progress, never)
    assert len(res.paths) == 2 and res.seeds == [1, 2] and res.method == "repaint"
    feather_px = 1.0 * max(res.region[2] - res.region[0], res.region[3] - res.region[1]) / 8
    grown = np.array(Image.fromarray(mask).filter(__import__("PIL.ImageFilter").ImageFilter.MaxFilter(
        2 * int(np.ceil(feather_px)) + 1))) > 0
    for p in res.paths:
        with Image.open(p) as im:
            out = np.asarray(im)
            meta = json.loads(im.text["genlab"])
        assert out.shape == img.shape                       # the image's own size, not the model's
        assert np.array_equal(out[~grown], img[~grown])     # bit for bit away from the feathered edge
        assert not np.array_equal(out[mask > 0], img[mask > 0])
        assert meta["method"] == "repaint" and meta["params"]["inpaint"]["jump"] == 2 and meta["step"] == 4
    assert json.loads(Image.open(res.paths[0]).text["genlab"])["seed"] == 1


def test_the_classical_methods_need_no_model_and_say_what_is_wrong_with_the_files(tmp_path):
    img, mask = write_case(tmp_path)
    req = parse_request(InpaintRequest, {"image": str(tmp_path / "img.png"), "mask": str(tmp_path / "mask.png"),
                                         "out_dir": str(tmp_path / "out"), "method": "telea",
                                         "settings": {"feather": 0}}, "inpaint")
    res = run(None, req, no_progress, never)
    out = np.asarray(Image.open(res.paths[0]))
    assert np.array_equal(out[mask == 0], img[mask == 0]) and res.seeds == []
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(tmp_path / "small.png")
    bad = parse_request(InpaintRequest, {"image": str(tmp_path / "img.png"), "mask": str(tmp_path / "small.png"),
                                         "out_dir": str(tmp_path / "o2"), "method": "ns"}, "inpaint")
    with pytest.raises(ValueError, match=r"small.png: the mask is 10×10 but the image is 48×40"):
        run(None, bad, no_progress, never)
    bad.resize_mask = True
    assert run(None, bad, no_progress, never).note == "mask resized from 10×10 to 48×40"
    with pytest.raises(ValueError, match="no checkpoint loaded: 'repaint' needs a model"):
        run(None, parse_request(InpaintRequest, {"image": str(tmp_path / "img.png"), "mask": str(tmp_path / "mask.png"),
                                                 "out_dir": str(tmp_path / "o3"), "method": "repaint"}, "inpaint"),
            no_progress, never)
    with pytest.raises(ValueError, match="settings.fit = 'stretch' is not allowed"):
        run(None, parse_request(InpaintRequest, {"image": str(tmp_path / "img.png"), "mask": str(tmp_path / "mask.png"),
                                                 "out_dir": str(tmp_path / "o4"), "settings": {"fit": "stretch"}},
                                "inpaint"), no_progress, never)


# ---- worker and CLI ----------------------------------------------------------------------------------
def test_worker_inpaints_without_a_model_and_a_cancel_request_stops_a_running_one(ddpm, tmp_path):
    _, ckpt = ddpm
    write_case(tmp_path)
    events = []
    w = Worker(tmp_path / "cache", device="cpu", emit=events.append)
    files = {"image": str(tmp_path / "img.png"), "mask": str(tmp_path / "mask.png")}
    w.handle({"id": 1, "op": "inpaint", "method": "ns", **files})
    assert events[-1]["event"] == "result" and len(events[-1]["paths"]) == 1
    w.handle({"id": 2, "op": "inpaint", "method": "repaint", **files})
    assert events[-1]["event"] == "error" and "no checkpoint loaded" in events[-1]["message"]
    # a long RePaint, cancelled from the stdin thread while it runs
    thread = threading.Thread(target=w.serve, daemon=True)
    w.read_stdin = lambda: None        # requests come through submit() below
    thread.start()
    w.submit({"id": 3, "op": "inpaint", "checkpoint": str(ckpt), "method": "repaint", "seeds": [0],
              "options": {"steps": 50}, "inpaint": {"jump": 5, "resample": 20}, **files})
    for _ in range(600):
        if any(e.get("id") == 3 and e["event"] == "progress" for e in events):
            break
        threading.Event().wait(0.05)
    w.submit({"op": "cancel", "target": 3})
    w.submit({"id": 4, "op": "quit"})
    thread.join(60)
    mine = [e["event"] for e in events if e.get("id") == 3]
    assert "cancelled" in mine and "result" not in mine


def engine_cli(*args):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=300)


def test_cli_inpaint_writes_one_file_per_seed_and_refuses_bad_input_in_one_line(ddpm, tmp_path, capsys):
    from engine.cli.main import main
    _, ckpt = ddpm
    write_case(tmp_path)
    r = engine_cli("inpaint", "--image", str(tmp_path / "img.png"), "--mask", str(tmp_path / "mask.png"),
                   "--checkpoint", str(ckpt), "--method", "blend", "--seeds", "0,1,2", "--steps", "3",
                   "--out", str(tmp_path / "out"), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["seeds"] == [0, 1, 2]
    assert len(list((tmp_path / "out").glob("img_blend_seed*.png"))) == 3
    Image.fromarray(np.full((5, 5), 255, np.uint8)).save(tmp_path / "m5.png")
    for args, expect in ((["--image", str(tmp_path / "none.png"), "--mask", str(tmp_path / "mask.png")],
                          "none.png: no such image file"),
                         (["--image", str(tmp_path / "img.png"), "--mask", str(tmp_path / "m5.png")],
                          "--resize-mask"),
                         (["--image", str(tmp_path / "img.png"), "--mask", str(tmp_path / "mask.png"),
                           "--method", "repaint"], "--method repaint needs --checkpoint")):
        code = main(["inpaint", *args, "--out", str(tmp_path / "o")])   # in-process: no second torch import
        err = capsys.readouterr().err
        assert code != 0 and expect in err and len(err.strip().splitlines()) == 1, err


def test_a_checkpoint_that_cannot_inpaint_is_refused_with_the_classical_methods_named(tmp_path):
    from engine.core.config import RunConfig
    from engine.core.families import family_spec
    tiny = family_spec("vae").config.TINY
    cfg = RunConfig(name="v").replace(data={"dataset": "digits", "resolution": 8},
                                      model={"family": "vae", **tiny["model"]})
    fam = build_family(cfg, 1, 8, [str(i) for i in range(10)])
    write_case(tmp_path)
    req = parse_request(InpaintRequest, {"image": str(tmp_path / "img.png"), "mask": str(tmp_path / "mask.png"),
                                         "out_dir": str(tmp_path / "o"), "method": "repaint"}, "inpaint")
    with pytest.raises(ValueError, match=r"a vae model cannot inpaint; the classical methods \(telea, ns\)"):
        run(ModelSession(fam, tmp_path / "x.safetensors", 0, cfg), req, no_progress, never)
