import pytest

from engine.config import ConfigError, RunConfig, list_presets, load_preset


def test_toml_round_trip(tmp_path):
    cfg = load_preset("ddpm-digits").replace(training={"lr": 1e-4, "steps": 7}, data={"path": 'a "quoted" \\ path'})
    p = tmp_path / "c.toml"
    cfg.save(p)
    back = RunConfig.load(p)
    assert back == cfg
    assert back.hash() == cfg.hash()
    assert back.training.lr == 1e-4


@pytest.mark.parametrize("section, values, expected", [
    ("model", {"schedule": "quad"}, ["model.schedule", "'quad'", "linear, cosine"]),
    ("training", {"steps": "ten"}, ["training.steps", "'ten'", "integer"]),
    ("training", {"batch_size": 0}, ["training.batch_size", "0", "minimum is 1"]),
    ("training", {"device": "tpu"}, ["training.device", "auto, cpu, cuda, mps"]),
    ("training", {"bogus": 1}, ["unknown field training.bogus", "batch_size"]),
    ("sampling", {"eta": 2.0}, ["sampling.eta", "maximum is 1.0"]),
    ("data", {"dataset": "folder"}, ["data.path", "folder"]),
    ("data", {"resolution": 18}, ["data.resolution = 18", "divisible by 4"]),
    ("model", {"family": "vae"}, ["model.family", "'vae'"]),
])
def test_validation_names_field_value_and_allowed(section, values, expected):
    with pytest.raises(ConfigError) as e:
        RunConfig().replace(**{section: values})
    for part in expected:
        assert part in str(e.value), str(e.value)


def test_bad_toml_names_the_file(tmp_path):
    p = tmp_path / "broken.toml"
    p.write_text("[training\nsteps = 3")
    with pytest.raises(ConfigError, match="broken.toml"):
        RunConfig.load(p)


def test_int_accepted_for_float_fields():
    cfg = RunConfig().replace(training={"lr": 1})
    assert isinstance(cfg.training.lr, float)


def test_presets_all_load_and_default_exists():
    names = list_presets()
    assert "ddpm-digits" in names
    for n in names:
        assert load_preset(n).name == n
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_preset("nope")
