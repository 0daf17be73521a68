"""genoforge.config (defaults < config file < flags) and the model presets."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from genoforge.config import config_section, load_toml_config, resolve_config
from genoforge.errors import ConfigError
from genoforge.model.config import PRESETS, preset


@dataclass(kw_only=True)
class Toy:
    layers: int = 2
    rate: float = 0.1
    name: str = "x"
    flag: bool = False


def test_precedence_defaults_then_file_then_flags():
    resolved, sources = resolve_config(Toy(), {"layers": 5, "rate": 1}, {"layers": 7, "name": None})
    assert resolved == Toy(layers=7, rate=1.0, name="x")
    assert sources == {"layers": "flag", "rate": "config file", "name": "default", "flag": "default"}
    assert isinstance(resolved.rate, float)  # TOML ints are accepted for float fields


def test_unknown_key_and_wrong_type_are_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'layerz'"):
        resolve_config(Toy(), {"layerz": 1}, file_path="cfg.toml")
    with pytest.raises(ConfigError, match="layers = 'two'"):
        resolve_config(Toy(), {"layers": "two"})
    with pytest.raises(ConfigError, match="flag = 1"):
        resolve_config(Toy(), {"flag": 1})


def test_toml_sections_and_parse_errors(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("preset = 'debug'\nlayers = 1\n[model]\nlayers = 3\nnum-latents = 0\n")
    table = load_toml_config(path)
    assert config_section(table, "model") == {"preset": "debug", "layers": 3, "num_latents": 0}
    path.write_text("layers = = 3\n")
    with pytest.raises(ConfigError, match="line 1"):
        load_toml_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_toml_config(tmp_path / "absent.toml")


def test_presets_are_distinct_and_valid():
    configs = {name: preset(name) for name in PRESETS}
    debug = configs["debug"]
    sizes = [debug.encoder_hidden_size, debug.encoder_intermediate_size, debug.decoder_dim,
             debug.decoder_ff_dim, debug.compressor_ff_dim, debug.num_latents, debug.num_experts]
    assert len(set(sizes)) == len(sizes)  # a transposed dimension cannot broadcast silently
    assert (debug.encoder_layers, debug.decoder_layers, debug.num_experts) == (2, 2, 4)
    seed = configs["seed"]
    assert (seed.decoder_layers, seed.decoder_heads, seed.decoder_kv_heads, seed.num_experts,
            seed.moe_top_k, seed.num_latents, seed.decoder_window_size) == (12, 12, 3, 32, 2, 1024, 1600)
