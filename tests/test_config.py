"""Config files, presets and overrides."""
import dataclasses

import pytest

from stochtp import config
from stochtp.config import Config
from stochtp.errors import ConfigError


def test_three_line_file_is_the_preset_with_its_override(write_toml):
    """`preset = NAME` plus one key resolves to the preset with that key replaced."""
    path = write_toml('preset = "mnist-bp"\nepochs = 3\n')
    expected = dataclasses.replace(config.load(preset="mnist-bp"), epochs=3)
    assert config.load(path) == expected
    assert expected.name == "mnist-bp" and expected.method["name"] == "bp" and expected.network == "784-500t-500t-10s"


def test_method_table_in_a_file_overrides_only_its_keys(write_toml):
    """A `[method]` table without a name keeps the preset's method and its other options."""
    path = write_toml('preset = "mnist-bp"\n[method]\nlr = 0.01\n')
    method = config.load(path).method
    assert method == {**config.load(preset="mnist-bp").method, "lr": 0.01}


def test_set_overrides_dotted_keys_with_toml_types(tiny_config_path):
    """`--set` values are read as TOML: an int stays an int, a float a float, a bare word a string."""
    cfg = config.load(tiny_config_path, overrides=["epochs=5", "method.lr=0.01", "data.n_train=300", "name=other"])
    assert cfg.epochs == 5 and type(cfg.epochs) is int
    assert cfg.method["lr"] == 0.01 and type(cfg.method["lr"]) is float
    assert cfg.method["optimizer"] == "centred_rmsprop"
    assert cfg.data["n_train"] == 300 and cfg.data["n_valid"] == 200
    assert cfg.name == "other"


def test_another_method_does_not_inherit_the_old_methods_options(tiny_config_path, write_toml):
    """Naming a different method starts its options afresh, in a file and with --set alike."""
    by_set = config.load(tiny_config_path, overrides=["method.name=dtp"])
    in_file = config.load(write_toml('preset = "mnist-bp"\n[method]\nname = "dtp"\n'))
    assert by_set.method == in_file.method == {"name": "dtp"}


def test_explicit_fields_override_file_and_set(tiny_config_path):
    """--seed / --epochs (keyword fields) win over the file and over --set."""
    cfg = config.load(tiny_config_path, overrides=["seed=3"], seed=7, epochs=2)
    assert (cfg.seed, cfg.epochs) == (7, 2)


def test_unknown_key_names_key_and_file(write_toml):
    path = write_toml('preset = "mnist-bp"\nepoch = 3\n')
    with pytest.raises(ConfigError, match=rf"{path}.*unknown key 'epoch'"):
        config.load(path)


def test_wrong_type_names_key_and_file(write_toml):
    path = write_toml('epochs = "three"\n')
    with pytest.raises(ConfigError, match=rf"{path}.*'epochs' must be an integer"):
        config.load(path)


def test_wrong_type_in_preset_table_names_key_and_file(write_toml):
    path = write_toml('preset = "mnist-bp"\nmethod = "bp"\n')
    with pytest.raises(ConfigError, match=rf"{path}.*'method' must be a table"):
        config.load(path)


@pytest.mark.parametrize("text", ["epochs = \n", "epochs = 3\nepochs = 4\n", "\xff\xfe = 1\n"])
def test_bad_toml_names_the_file(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"{path}: not valid TOML"):
        config.load(path)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=rf"{tmp_path / 'nope.toml'} does not exist"):
        config.load(tmp_path / "nope.toml")


@pytest.mark.parametrize("text", ['preset = "mnist-pb"\n', None])
def test_unknown_preset_lists_the_presets(write_toml, text):
    """Whether named in a file or directly, an unknown preset is reported with the known ones."""
    with pytest.raises(ConfigError, match=r"unknown preset 'mnist-pb'; presets: .*mnist-bp"):
        config.load(write_toml(text)) if text else config.load(preset="mnist-pb")


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("epochs", r"--set 'epochs': expected key=value"),
        ("epoch=3", r"unknown key 'epoch'"),
        ("method.lr.x=3", r"unknown key 'method.lr.x'"),
        ("epochs=five", r"--set epochs=five: key 'epochs' must be an integer"),
        ("batch_size=0", r"'batch_size' must be at least 1"),
        ("seed=-1", r"'seed' must be in \[0, 2\*\*64\)"),
        ("dtype=float16", r"'dtype' must be one of float32, float64"),
        ("input_noise=-0.3", r"--set input_noise=-0.3: key 'input_noise' must be a finite number >= 0, got -0.3"),
        ("input_noise=nan", r"key 'input_noise' must be a finite number >= 0, got nan"),
        ("epochs=18446744073709551616", r"key 'epochs' must be below 2\*\*63"),
        ("batch_size=9223372036854775808", r"key 'batch_size' must be below 2\*\*63"),
        ("eval_samples=9223372036854775808", r"key 'eval_samples' must be below 2\*\*63"),
    ],
)
def test_bad_set_is_reported(tiny_config_path, override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config.load(tiny_config_path, overrides=[override])


@pytest.mark.parametrize(
    "network, pattern",
    [("784-10q", r"unknown unit letter 'q'"), ("784", r"at least one layer"), ("784-10s-10t", "softmax is only allowed")],
)
def test_impossible_network_names_key_and_file(write_toml, network, pattern):
    path = write_toml(f'preset = "mnist-bp"\nnetwork = "{network}"\n')
    with pytest.raises(ConfigError, match=rf"{path}: key 'network'.*{pattern}"):
        config.load(path)


def test_config_hash_is_stable_and_follows_the_seed(tiny_config_path):
    """Equal configs hash equal (also after a JSON round trip, as from a results file); the seed changes it."""
    cfg = config.load(tiny_config_path)
    assert cfg.hash == config.load(tiny_config_path).hash == config.from_dict(cfg.to_dict()).hash
    assert len(cfg.hash) == 64 and int(cfg.hash, 16) >= 0
    assert config.load(tiny_config_path, seed=1).hash != cfg.hash
    assert config.load(tiny_config_path, seed=0).hash == cfg.hash


def test_presets_resolve_and_round_trip():
    """Every preset shipped in stochtp/presets/ loads, and its resolved dict rebuilds the same Config."""
    assert "mnist-bp" in config.presets()
    for name in config.presets():
        cfg = config.load(preset=name)
        assert isinstance(cfg, Config) and config.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("name", ["''", "'a/b'", "'..'", "'  '", '"a\\u0000b"', '"tab\\tx"', "a\udcffb"])
def test_a_run_name_must_name_a_file(tiny_config_path, name):
    """The name makes the default results/<name>.h5 and is stored as text: empty names, paths,
    control characters and undecodable command-line bytes (a lone surrogate) are refused."""
    with pytest.raises(ConfigError, match="key 'name' must be a non-empty name without slashes or control characters"):
        config.load(tiny_config_path, overrides=[f"name={name}"])


@pytest.mark.parametrize("name", ["é", "日本", "dev 👩\u200d💻", "a\u00a0b"])
def test_unicode_run_names_are_accepted(tiny_config_path, name):
    """Only control characters and lone surrogates are refused: joiners and no-break spaces are not."""
    assert config.load(tiny_config_path, overrides=[f'name="{name}"']).name == name
