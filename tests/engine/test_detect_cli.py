"""`genlab-engine detect` and `genlab-engine watermark`, in-process: JSON lines per image and
check, a table otherwise, one line per bad file while the rest go on; embed then verify a mark."""
import json

import cv2
import numpy as np
import pytest
import skimage.data

from engine.cli.main import main


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    photo = skimage.data.astronaut()
    cv2.imwrite(str(folder / "a.png"), np.ascontiguousarray(photo[:64, 200:264, ::-1]))
    cv2.imwrite(str(folder / "b.jpg"), np.ascontiguousarray(photo[300:364, 100:164, ::-1]))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "readme.txt").write_text("not an image, not listed")
    return folder


def test_detect_json_lines_per_image_and_check_and_bad_files_one_line(images, capsys):
    rc = main(["detect", str(images), str(images / "missing.png"), "--checks", "npr,copymove,watermark", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["image"].rsplit("/", 1)[1], r["check"]) for r in rows] == [
        ("a.png", "npr"), ("a.png", "copymove"), ("a.png", "watermark"),
        ("b.jpg", "npr"), ("b.jpg", "copymove"), ("b.jpg", "watermark")]
    for r in rows:
        assert r["explanation"] and r["score_is"] and r["direction"] in ("higher", "lower", "none")
    assert rows[0]["map"]["shape"] == [64, 64] and rows[2]["score"] is None   # too narrow for SDXL's mark
    lines = err.splitlines()
    assert len(lines) == 2
    assert "broken.png" in lines[0] and lines[0].startswith("genlab-engine: skipped")
    assert "missing.png: no such file or folder" in lines[1]


def test_detect_table_and_the_default_checks(images, capsys):
    assert main(["detect", str(images / "a.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["image", "check", "score"]
    assert [line.split()[1] for line in out[1:]] == ["spectrum", "npr", "noise", "copymove", "watermark"]
    assert main(["detect", str(images / "a.png"), "--checks", "all", "--json"]) == 0   # all that can run: no detector
    assert [json.loads(line)["check"] for line in capsys.readouterr().out.splitlines()] == [
        "spectrum", "npr", "noise", "copymove", "watermark"]


def test_detect_refuses_what_it_cannot_do(images, capsys):
    assert main(["detect", str(images / "broken.png")]) == 2
    assert "no image could be checked" in capsys.readouterr().err
    assert main(["detect", str(images), "--checks", "fft"]) == 2
    assert "unknown check 'fft'; choose from" in capsys.readouterr().err
    assert main(["detect", str(images), "--checks", "spectrum-lr"]) == 2
    assert "needs --spectrum-detector" in capsys.readouterr().err
    assert main(["detect", str(images), "--noise-reference", str(images / "nowhere")]) == 2
    assert "nowhere: not a folder of reference images" in capsys.readouterr().err


def test_watermark_embed_then_verify(tmp_path, capsys):
    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), np.ascontiguousarray(skimage.data.coffee()[:256, :256, ::-1]))
    out = tmp_path / "marked.png"
    assert main(["watermark", "embed", str(src), "--out", str(out), "--method", "dwtDctSvd", "--sdxl"]) == 0
    assert "48 bits with dwtDctSvd" in capsys.readouterr().out
    assert main(["watermark", "verify", str(out), "--method", "dwtDctSvd", "--sdxl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "101100111110110010010000011110111011000110011110"
    assert lines[1].startswith("bit accuracy 1.0000 (48/48), p-value 3.55e-15")
    assert main(["watermark", "verify", str(src), "--method", "dwtDctSvd", "--expect-text", "GenLab", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert len(got["bits"]) == 48 and got["p_value"] > 0.01 and got["warnings"] == []
    assert main(["watermark", "verify", str(out), "--method", "dwtDctSvd", "--length", "16"]) == 0
    bits16 = capsys.readouterr().out.strip()
    assert len(bits16) == 16 and set(bits16) <= {"0", "1"}


def test_watermark_small_image_warns_and_too_small_refuses(tmp_path, capsys):
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.ascontiguousarray(skimage.data.coffee()[100:196, 200:296, ::-1]))
    assert main(["watermark", "embed", str(small), "--out", str(tmp_path / "m.png"), "--text", "GL",
                 "--method", "dwtDctSvd"]) == 0
    assert "smaller than 256x256 pixels: invisible-watermark refuses" in capsys.readouterr().err
    assert main(["watermark", "verify", str(tmp_path / "m.png"), "--expect-text", "GL", "--method", "dwtDctSvd"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[1].startswith("bit accuracy 1.0000 (16/16)") and "refuses" in err
    assert main(["watermark", "embed", str(small), "--out", str(tmp_path / "x.png"), "--text", "far too long a message"]) == 2
    assert "fewer than the 176 bits of the message" in capsys.readouterr().err
    assert main(["watermark", "verify", str(small)]) == 2
    assert "give --length N or the expected message" in capsys.readouterr().err
    assert main(["watermark", "embed", str(tmp_path / "none.png"), "--out", str(tmp_path / "y.png"), "--sdxl"]) == 2
    assert "none.png: file not found" in capsys.readouterr().err
