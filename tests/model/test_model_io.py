"""Model directories: exact save/load round trips, clear refusals, and `tokens resize`."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from genoforge.errors import CheckpointError, TokenizerError
from genoforge.model.init import init_model
from genoforge.model.io import load_model, read_model_config, save_model
from genoforge.model.resize import resize_model
from genoforge.tokenizer.core import GenoTokenizer, dnabert2_tokenizer_path
from genoforge.tokenizer.edit import append_tokens


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """Two debug model dirs made by `model init` over the DNABERT-2 tokenizer: tied and untied."""
    root = tmp_path_factory.mktemp("models")
    tok_dir = root / "tok"
    tok_dir.mkdir()
    shutil.copyfile(dnabert2_tokenizer_path(), tok_dir / "tokenizer.json")
    init_model(root / "tied", dnabert_path=tok_dir, preset_name="debug")
    init_model(root / "untied", dnabert_path=tok_dir, preset_name="debug", flags={"tie_weights": False})
    return root


def fresh_copy(model_dirs, name, tmp_path):
    target = tmp_path / name
    shutil.copytree(model_dirs / name, target)
    return target


def small_batch(vocab_size):
    g = torch.Generator().manual_seed(0)
    return dict(
        input_ids=torch.randint(5, 4000, (2, 30), generator=g),
        input_doc=torch.tensor([[0] * 14 + [1] * 16, [0] * 25 + [-1] * 5], dtype=torch.int32),
        input_bp=torch.arange(30).repeat(2, 1).int() * 5,
        decoder_ids=torch.randint(0, vocab_size, (2, 16), generator=g),
        decoder_doc=torch.tensor([[0] * 8 + [1] * 8, [0] * 12 + [-1] * 4], dtype=torch.int32),
        labels=torch.randint(0, vocab_size, (2, 16), generator=g),
    )


@pytest.mark.parametrize("name", ["tied", "untied"])
def test_save_load_round_trip_is_exact(model_dirs, name, tmp_path):
    model = load_model(model_dirs / name).eval()
    tied = model.decoder.lm_head.weight is model.decoder.embed_tokens.weight
    assert tied == (name == "tied")
    save_model(model, tmp_path / "copy", GenoTokenizer.load(model_dirs / name))
    again = load_model(tmp_path / "copy").eval()
    state, state2 = model.state_dict(), again.state_dict()
    assert state.keys() == state2.keys()
    assert all(torch.equal(state[k], state2[k]) for k in state)
    assert (again.decoder.lm_head.weight is again.decoder.embed_tokens.weight) == tied
    batch = small_batch(model.config.vocab_size)
    with torch.no_grad():
        assert torch.equal(model(batch).logits, again(batch).logits)
    stored = load_file(str(tmp_path / "copy" / "model.safetensors"))
    assert ("decoder.lm_head.weight" in stored) == (not tied)  # a tied head is stored once


def test_bp_digit_ids_are_the_coordinate_tokens(model_dirs):
    model = load_model(model_dirs / "tied")
    tok = GenoTokenizer.load(model_dirs / "tied")
    assert model.bp_digit_token_ids.tolist() == [tok.token_to_id(str(i)) for i in range(1000)]


def test_unknown_format_version_is_refused(model_dirs, tmp_path):
    target = fresh_copy(model_dirs, "tied", tmp_path)
    config = json.loads((target / "config.json").read_text())
    config["format_version"] = 99
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_model(target)


def test_a_format_2_model_loads_as_a_head_without_signal_outputs(model_dirs, tmp_path):
    """Models written before the head's signal outputs (format 2: no base_head_signals field, 17
    class rows) still load and predict; a format-3 model has the 8 signal rows."""
    from genoforge.genes.classes import N_CLASSES, N_SIGNALS

    current = load_model(model_dirs / "tied")
    assert current.config.base_head_signals
    assert current.base_head.classify.weight.shape[0] == N_CLASSES + N_SIGNALS
    target = fresh_copy(model_dirs, "tied", tmp_path)
    config = json.loads((target / "config.json").read_text())
    config["format_version"] = 2
    del config["base_head_signals"]
    (target / "config.json").write_text(json.dumps(config))
    state = load_file(str(target / "model.safetensors"))
    for name in ("base_head.classify.weight", "base_head.classify.bias"):
        state[name] = state[name][:N_CLASSES].contiguous()
    save_file(state, str(target / "model.safetensors"))
    old = load_model(target)
    assert not old.config.base_head_signals
    assert old.base_head.classify.weight.shape[0] == N_CLASSES
    torch.testing.assert_close(old.base_head.classify.weight, current.base_head.classify.weight[:N_CLASSES])


def test_unknown_and_missing_config_fields_are_named(model_dirs, tmp_path):
    target = fresh_copy(model_dirs, "tied", tmp_path)
    config = json.loads((target / "config.json").read_text())
    config["decoder_colour"] = "blue"
    del config["num_latents"]
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="decoder_colour.*num_latents"):
        read_model_config(target)


def test_missing_and_unexpected_tensors_are_named(model_dirs, tmp_path):
    target = fresh_copy(model_dirs, "tied", tmp_path)
    state = load_file(str(target / "model.safetensors"))
    del state["decoder.layers.1.cross_attn.k_proj.weight"]
    state["decoder.extra.weight"] = torch.zeros(2)
    save_file(state, str(target / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing.*cross_attn\.k_proj.*unexpected.*decoder\.extra\.weight"):
        load_model(target)


def test_resize_keeps_old_rows_and_tying(model_dirs, tmp_path):
    for name in ("tied", "untied"):
        target = fresh_copy(model_dirs, name, tmp_path)
        before = load_model(target)
        old_vocab = before.config.vocab_size
        report = append_tokens(target, ["gene_x", "exon_y", "intron_z"])
        assert [token_id for _, token_id in report.added] == [old_vocab, old_vocab + 1, old_vocab + 2]
        result = resize_model(target)
        assert (result.old_vocab_size, result.new_vocab_size) == (old_vocab, old_vocab + 3)
        after = load_model(target)
        assert read_model_config(target).vocab_size == old_vocab + 3
        for key in ("encoder.word_embeddings.weight", "decoder.embed_tokens.weight", "decoder.lm_head.weight"):
            old_rows, new_rows = before.state_dict()[key], after.state_dict()[key]
            assert new_rows.shape[0] == old_vocab + 3
            assert torch.equal(new_rows[:old_vocab], old_rows)
            assert new_rows[old_vocab:].abs().sum() > 0
        assert (after.decoder.lm_head.weight is after.decoder.embed_tokens.weight) == (name == "tied")
        other = {k: v for k, v in before.state_dict().items() if k not in (
            "encoder.word_embeddings.weight", "decoder.embed_tokens.weight", "decoder.lm_head.weight")}
        assert all(torch.equal(v, after.state_dict()[k]) for k, v in other.items())
        assert not resize_model(target).changed  # a second resize has nothing to do


def test_an_interrupted_resize_leaves_the_old_model_whole(model_dirs, tmp_path, monkeypatch):
    """Weights, config and tokenizer change together or not at all."""
    import genoforge.model.resize as resize_module

    target = fresh_copy(model_dirs, "tied", tmp_path)
    append_tokens(target, ["gene_x"])
    before = {p.name: p.read_bytes() for p in target.iterdir() if p.is_file()}

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if Ctrl-C arrived after the weights were written

    monkeypatch.setattr(resize_module, "write_model_config", crash)
    with pytest.raises(KeyboardInterrupt):
        resize_model(target)
    after = {p.name: p.read_bytes() for p in target.iterdir() if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left
    monkeypatch.undo()
    assert resize_model(target).new_vocab_size == read_model_config(target).vocab_size
    load_model(target)


def test_shrink_needs_allow_shrink(model_dirs, tmp_path):
    target = fresh_copy(model_dirs, "tied", tmp_path)
    donor = fresh_copy(model_dirs, "untied", tmp_path)
    append_tokens(donor, ["extra_token"])
    resize_model(target, donor)  # grow to the donor's tokenizer (copied in)
    assert read_model_config(target).vocab_size == GenoTokenizer.load(donor).vocab_size
    smaller = fresh_copy(model_dirs, "untied", tmp_path / "s")
    with pytest.raises(CheckpointError, match="--allow_shrink"):
        resize_model(target, smaller)
    report = resize_model(target, smaller, allow_shrink=True)
    assert report.new_vocab_size == report.old_vocab_size - 1
    load_model(target)  # consistent again


def test_tokenizer_without_the_coordinate_ids_is_refused(model_dirs, tmp_path):
    target = fresh_copy(model_dirs, "tied", tmp_path)
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copyfile(dnabert2_tokenizer_path(), plain / "tokenizer.json")
    append_tokens(plain, ["<bos>", "<eos>", *[f"x{i}" for i in range(1200)]])  # as big, but no numbers
    with pytest.raises(TokenizerError, match="coordinate token"):
        resize_model(target, plain)
