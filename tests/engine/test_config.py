import pytest

from engine.core.config import ConfigError, RunConfig, list_presets, load_preset


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
    ("model", {"family": "vq-gan"}, ["model.family", "'vq-gan'"]),
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


# ---- the plug-in seam: registry, sections, legacy runs ----------------------------------------
import dataclasses  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from engine.core.families import FAMILIES, family_spec, preset_families  # noqa: E402
from engine.core.logkeys import normalize_row  # noqa: E402
from engine.core.schema import dumps_toml  # noqa: E402
from engine.core.sections import SamplingSection, option_fields  # noqa: E402


def test_the_light_seam_imports_no_torch():
    """The GUI imports the config, the registries and the capability records: none may pull in torch."""
    code = ("import sys; import engine.core.config, engine.core.families, engine.core.capabilities, engine.core.solvers, "
            "engine.core.logkeys, engine.core.protocol; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", FAMILIES.names())
def test_every_registered_family_has_sections_a_preset_and_a_class(name):
    spec = family_spec(name)
    assert dataclasses.is_dataclass(spec.config) and spec.config().family == name
    assert issubclass(spec.sample_options, SamplingSection)
    assert spec.presets(), f"family {name} has no preset file"
    assert spec.family_class().name == name
    assert spec.headline and all(any(g.wants(k) for g in spec.plots) for k in spec.headline)
    cfg = RunConfig().replace(model={"family": name})
    assert type(cfg.sampling) is spec.sample_options


def test_presets_name_registered_families():
    assert set(preset_families().values()) <= set(FAMILIES.names())


def test_a_run_written_before_per_family_sampling_still_loads(tmp_path):
    """GenLab 0.1 wrote one [sampling] section with every family's fields; a GAN run kept the
    diffusion ones. They are dropped on reading; a new misspelling is still an error."""
    old = load_preset("dcgan-digits").to_dict()
    old["sampling"].update(sampler="ddim", steps=50, eta=0.0, guidance_scale=2.0, noise_mode="const")
    path = tmp_path / "config.toml"
    path.write_text(dumps_toml(old))
    cfg = RunConfig.load(path, stored=True)
    assert set(f.name for f in option_fields(type(cfg.sampling))) == {"truncation_psi"}
    with pytest.raises(ConfigError, match="unknown field sampling.eta"):  # new input is strict
        RunConfig.from_dict(old)
    old["sampling"]["temprature"] = 0.7
    path.write_text(dumps_toml(old))
    with pytest.raises(ConfigError, match="unknown field sampling.temprature"):
        RunConfig.load(path, stored=True)
    with pytest.raises(ConfigError, match="unknown field sampling.eta"):  # a config a person wrote
        RunConfig.load(path)


def test_family_sections_validate_themselves():
    with pytest.raises(ConfigError, match="power of two"):
        RunConfig().replace(model={"family": "gan"}, data={"resolution": 12})
    with pytest.raises(ConfigError, match="model.diffaug_policy contains 'blur'"):
        RunConfig().replace(model={"family": "gan", "diffaug_policy": "color,blur"})
    with pytest.raises(ConfigError, match="model.channel_mults"):
        RunConfig().replace(model={"channel_mults": []})


def test_switching_family_keeps_the_grid_and_drops_foreign_options():
    cfg = RunConfig().replace(sampling={"grid_size": 12, "steps": 7})
    gan = cfg.replace(model={"family": "stylegan"})
    assert gan.sampling.grid_size == 12 and not hasattr(gan.sampling, "steps")
    with pytest.raises(ConfigError, match="unknown field sampling.steps"):
        gan.replace(sampling={"steps": 3})


def test_old_metric_names_map_to_namespaces():
    row = {"step": 10, "loss": 0.5, "loss_d": 1.0, "d_real": 0.3, "ada_p": 0.1, "grad_norm_G": 2.0,
           "fd_domain": 3.0, "kid_domain_std": 0.1, "bits_per_dim": 4.0, "lr": 0.01, "eval_s": 2.0}
    assert normalize_row(row) == {"step": 10, "loss/mse": 0.5, "loss/D": 1.0, "gan/d_real": 0.3, "gan/ada_p": 0.1,
                                  "grad/G": 2.0, "quality/fd_domain": 3.0, "quality/kid_domain_std": 0.1,
                                  "quality/bits_per_dim": 4.0, "lr": 0.01, "eval_s": 2.0}
    new = {"step": 1, "loss/mse": 0.2}
    assert normalize_row(new) is new
