"""GenoTokenizer and the tokenizer-file editing library, on DNABERT-2's real tokenizer.

Most tests use the copy bundled in genoforge/data/dnabert2 (byte-identical to
../shared/reference/dnabert2/tokenizer.json, which one test checks), copied to tmp before editing.
Expected ids of the plain-DNA examples are SPEC.md section d.3's, without [CLS]/[SEP].
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genoforge.errors import InputError, TokenizerError
from genoforge.genes import inventory
from genoforge.tokenizer.core import (
    TOKENIZER_CONFIG_FILE,
    GenoTokenizer,
    dnabert2_tokenizer_path,
)
from genoforge.tokenizer.edit import (
    append_tokens,
    ensure_builtin_tokens,
    read_tokens_file,
    write_tokens_file,
)

DNABERT2_SHA256 = "5d178e8ce2ba55df97fff197f4b30f40133b95d7096be398c2df6b526c5d8cd3"
# DNABERT-2's own tokenizer_config.json (SPEC.md section 0.1), so append keeps a real one consistent.
DNABERT2_CONFIG = {
    "tokenizer_class": "PreTrainedTokenizerFast",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "mask_token": "[MASK]",
}
# One target line in token form: TAB, NEWLINE, ':' and numbers, as the target grammar writes them.
TARGET_TOKENS = [
    inventory.BOS, "transcript", "\t", "+", "\t", "protein_coding", "\t", "0", ":", "12", "\t",
    "9", ":", "999", "\t", ".", "\n", "exon", "\t", "1", ":", "500", "\n", inventory.EOS,
]


@pytest.fixture()
def dnabert2_dir(tmp_path: Path) -> Path:
    """A writable copy of DNABERT-2's tokenizer.json + tokenizer_config.json."""
    folder = tmp_path / "dnabert2"
    folder.mkdir()
    shutil.copyfile(dnabert2_tokenizer_path(), folder / "tokenizer.json")
    (folder / TOKENIZER_CONFIG_FILE).write_text(json.dumps(DNABERT2_CONFIG, indent=2))
    return folder


@pytest.fixture()
def dnabert2() -> GenoTokenizer:
    return GenoTokenizer.load(dnabert2_tokenizer_path())


@pytest.fixture()
def extended(dnabert2_dir: Path) -> GenoTokenizer:
    """DNABERT-2 plus the built-in inventory, as `model init` leaves it."""
    ensure_builtin_tokens(dnabert2_dir)
    return GenoTokenizer.load(dnabert2_dir)


def _file_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- the bundled DNABERT-2 file -------------------------------------------------------------------


def test_bundled_dnabert2_tokenizer_is_the_original() -> None:
    assert hashlib.sha256(dnabert2_tokenizer_path().read_bytes()).hexdigest() == DNABERT2_SHA256


def test_bundled_copy_matches_shared_reference(dnabert2_tokenizer_json: Path) -> None:
    assert dnabert2_tokenizer_path().read_bytes() == dnabert2_tokenizer_json.read_bytes()


# -- DNA encoding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seq", "ids"),
    [
        (
            "ACGTAGCATCGGATCTATCTATCGACACTTGGTTATCGATCTACGAGCATCTCGTTAGC",
            [5, 194, 32, 757, 1239, 2092, 294, 24, 359, 88, 93, 32, 75, 77, 19],
        ),
        ("ATGCGTACGTTAGC", [3218, 194, 495, 19]),
        ("TATAAAAGGC", [1236, 15, 6]),
    ],
)
def test_encode_dna_matches_dnabert2_reference_ids(dnabert2: GenoTokenizer, seq: str, ids: list[int]) -> None:
    assert dnabert2.encode_dna(seq) == ids
    assert dnabert2.encode_dna(seq.lower()) == ids  # soft-masked bases are upper-cased


def test_n_runs_become_n_tokens_longest_first(extended: GenoTokenizer) -> None:
    ids = extended.encode_dna("ACGT" + "N" * 13 + "ACGT")
    tokens = [extended.id_to_token(i) for i in ids]
    assert tokens == ["A", "C", "GT", "NNNNNN", "NNNNNN", "N", "A", "C", "GT"]
    for run, expected in [(6, ["NNNNNN"]), (7, ["NNNNNN", "N"]), (11, ["NNNNNN", "NNNNN"]), (2, ["NN"])]:
        assert [extended.id_to_token(i) for i in extended.encode_dna("N" * run)] == expected


@pytest.mark.parametrize(
    "seq",
    [
        "ACGTAGCATCGGATCTATCTATCGACACTTGG",
        "acgtagcaTCGGATnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnCTATCTAtcgacac",
        "NNNNNNNACGTN",
        "N",
        "",
        "GATTACA" * 300 + "N" * 1000 + "TTAGGG" * 200,
    ],
)
def test_dna_round_trip(extended: GenoTokenizer, seq: str) -> None:
    ids = extended.encode_dna(seq)
    assert extended.decode(ids) == seq.upper()
    assert int(extended.bp_lengths()[ids].sum()) == len(seq)


def test_iupac_codes_read_as_n_and_u_as_t(extended: GenoTokenizer) -> None:
    assert extended.decode(extended.encode_dna("ACRYSWKMBDHVGT")) == "AC" + "N" * 10 + "GT"
    assert extended.decode(extended.encode_dna("acgrt")) == "ACGNT"
    assert extended.encode_dna("ACGU") == extended.encode_dna("ACGT")


@pytest.mark.parametrize(("seq", "bad", "position"), [("ACG-T", "-", 3), ("ACG T", " ", 3), ("AC*", "*", 2), ("X", "X", 0)])
def test_non_dna_character_is_an_error_naming_it(extended: GenoTokenizer, seq: str, bad: str, position: int) -> None:
    with pytest.raises(TokenizerError) as caught:
        extended.encode_dna(seq)
    message = str(caught.value)
    assert repr(bad) in message
    assert f"position {position}" in message


def test_n_run_without_n_tokens_says_how_to_fix(dnabert2: GenoTokenizer) -> None:
    assert dnabert2.encode_dna("ACGT") == [5, 6, 1049]  # no N: fine without N tokens
    with pytest.raises(TokenizerError, match="tokens append"):
        dnabert2.encode_dna("ACGTNNNACGT")


def test_dna_is_bpe_encoded_by_the_model_not_by_added_tokens(dnabert2_dir: Path) -> None:
    seq = "TTGACA" + "ACGT" * 12 + "GGC"
    before = GenoTokenizer.load(dnabert2_dir).encode_dna(seq)
    dna_word = "ACGT" * 12  # 48 bases: longer than any DNABERT-2 token, so it is not in the vocab
    report = append_tokens(dnabert2_dir, [dna_word])
    assert report.added == [(dna_word, 4096)]
    after = GenoTokenizer.load(dnabert2_dir)
    assert after.encode_dna(seq) == before
    assert 4096 not in after.encode_dna(seq)


# -- vocabulary, target tokens, decoding ---------------------------------------------------------


def test_special_ids_read_from_the_tokenizer(dnabert2: GenoTokenizer, extended: GenoTokenizer) -> None:
    assert dnabert2.pad_id == 3
    with pytest.raises(TokenizerError, match="<bos>"):
        dnabert2.bos_id  # noqa: B018 - the property access is the call under test
    with pytest.raises(TokenizerError, match="<eos>"):
        dnabert2.eos_id  # noqa: B018
    assert (extended.bos_id, extended.eos_id, extended.pad_id) == (4096, 4097, 3)
    assert extended.vocab_size == 4096 + len(inventory.builtin_tokens())


def test_target_round_trip_on_extended_dnabert2(extended: GenoTokenizer) -> None:
    ids = extended.encode_target(TARGET_TOKENS)
    assert [extended.id_to_token(i) for i in ids] == TARGET_TOKENS
    assert extended.decode(ids) == "".join(TARGET_TOKENS)
    assert extended.decode(ids, skip_special=True) == "".join(TARGET_TOKENS[1:-1])
    # numbers are looked up whole: "999" is one token, never BPE-split or digit-split
    assert extended.encode_target(["999"]) == [extended.token_to_id("999")]


def test_mixed_dna_and_target_decode_without_spaces(extended: GenoTokenizer) -> None:
    ids = extended.encode_dna("acgtNNNNNNNNgattaca") + extended.encode_target(["\t", "exon", "\n"])
    assert extended.decode(np.asarray(ids, dtype=np.int64)) == "ACGTNNNNNNNNGATTACA\texon\n"


def test_missing_target_token_names_it_and_the_fix(extended: GenoTokenizer) -> None:
    with pytest.raises(TokenizerError) as caught:
        extended.encode_target(["exon", "not_a_token"])
    assert "'not_a_token'" in str(caught.value)
    assert "genoforge tokens append" in str(caught.value)
    with pytest.raises(TokenizerError, match="not_a_token"):
        extended.token_to_id("not_a_token")


def test_decode_joins_without_spaces_even_when_the_file_has_no_decoder(dnabert2: GenoTokenizer) -> None:
    assert dnabert2.backend.decoder is None
    assert dnabert2.decode([5, 194, 32]) == "ACGTAGCA"
    with pytest.raises(TokenizerError, match="id 99999"):
        dnabert2.decode([5, 99999])


def test_bp_lengths(extended: GenoTokenizer) -> None:
    lengths = extended.bp_lengths()
    assert lengths.dtype == np.int32 and lengths.shape == (extended.vocab_size,)
    expected = {"A": 1, "CGTA": 4, "NNNNNN": 6, "N": 1, "[PAD]": 0, "[CLS]": 0, "999": 0, "cds": 0,
                "\t": 0, "<bos>": 0, "intron_hc": 0}
    for token, bases in expected.items():
        assert lengths[extended.token_to_id(token)] == bases, token


# -- content hash, save and load -----------------------------------------------------------------


def test_content_hash_ignores_formatting_but_not_ids(dnabert2_dir: Path, tmp_path: Path) -> None:
    original = GenoTokenizer.load(dnabert2_dir).content_hash()
    reformatted = tmp_path / "reformatted.json"
    data = json.loads((dnabert2_dir / "tokenizer.json").read_text())
    data["decoder"] = {"type": "Fuse"}  # the decoder does not decide ids
    reformatted.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")))
    assert GenoTokenizer.load(reformatted).content_hash() == original

    saved = GenoTokenizer.load(dnabert2_dir).save(tmp_path / "saved")  # merges re-spelled as pairs
    assert json.loads(saved.read_text())["model"]["merges"][0] == ["A", "A"]
    assert GenoTokenizer.load(saved).content_hash() == original

    append_tokens(dnabert2_dir, ["<bos>"])
    assert GenoTokenizer.load(dnabert2_dir).content_hash() != original


def test_saved_directory_loads_in_transformers_and_decodes_without_spaces(
    extended: GenoTokenizer, tmp_path: Path
) -> None:
    from transformers import PreTrainedTokenizerFast

    out = tmp_path / "tok"
    extended.save(out)
    assert sorted(p.name for p in out.iterdir()) == [
        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"
    ]
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert config["clean_up_tokenization_spaces"] is False
    assert config["added_tokens_decoder"][str(extended.token_to_id("\t"))]["content"] == "\t"

    ids = extended.encode_target(TARGET_TOKENS[:-1]) + extended.encode_dna("ACGTNNNNNNNTTGA") + [extended.eos_id]
    hf = PreTrainedTokenizerFast.from_pretrained(out)
    assert hf.decode(ids) == extended.decode(ids)
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (extended.bos_id, extended.eos_id, extended.pad_id)
    assert len(hf) == extended.vocab_size

    reloaded = GenoTokenizer.load(out)
    assert reloaded.token_to_id("\t") == extended.token_to_id("\t")
    assert reloaded.token_to_id("\n") == extended.token_to_id("\n")
    assert reloaded.decode(ids) == extended.decode(ids)
    assert reloaded.content_hash() == extended.content_hash()

    in_memory = extended.to_transformers()
    assert in_memory.decode(ids) == extended.decode(ids)


def test_load_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="not found"):
        GenoTokenizer.load(tmp_path / "absent.json")
    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        GenoTokenizer.load(tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text('{"model": ')
    with pytest.raises(TokenizerError, match="broken.json"):
        GenoTokenizer.load(broken)


# -- the tokens file -----------------------------------------------------------------------------


def test_tokens_file_round_trip_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    write_tokens_file(path, ["exon", "\t", "\n", ":", "12"])
    assert path.read_text() == "exon\n[\\t]\n[\\n]\n:\n12\n"
    assert read_tokens_file(path).tokens == ["exon", "\t", "\n", ":", "12"]

    path.write_text("exon\r\n\r\n[\\t]\nexon\n\n12\n[\\t]\n")
    parsed = read_tokens_file(path)
    assert parsed.tokens == ["exon", "\t", "12"]
    assert parsed.duplicates == [("exon", 4), ("\t", 7)]


def test_tokens_file_rejects_stray_whitespace_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text("exon\ncds \n")
    with pytest.raises(InputError, match=r"tokens.txt:2: .*whitespace"):
        read_tokens_file(path)
    with pytest.raises(TokenizerError):
        write_tokens_file(tmp_path / "out.txt", [" exon"])
    assert not (tmp_path / "out.txt").exists()


# -- append_tokens --------------------------------------------------------------------------------


def test_append_deduplicates_continues_ids_and_keeps_config_consistent(dnabert2_dir: Path) -> None:
    report = append_tokens(dnabert2_dir, ["<bos>", "A", "exon", "<bos>", "\t", "ACGT", "12", "exon", "<eos>"])
    # "A" is in the BPE vocab; "ACGT" is not (BPE spells it A C GT), so it is appended as a word.
    assert report.added == [("<bos>", 4096), ("exon", 4097), ("\t", 4098), ("ACGT", 4099), ("12", 4100), ("<eos>", 4101)]
    assert report.already_present == 1
    assert report.decoder_fixed  # DNABERT-2's file has no decoder

    tok = GenoTokenizer.load(dnabert2_dir)
    assert [tok.token_to_id(t) for t, _ in report.added] == [i for _, i in report.added]
    assert tok.backend.decoder is not None
    assert tok.backend.decode([4097, 4098, 4100]) == "exon\t12"  # tokenizers' own decoder, no spaces

    config = json.loads((dnabert2_dir / TOKENIZER_CONFIG_FILE).read_text())
    assert config["bos_token"] == "<bos>" and config["eos_token"] == "<eos>"
    assert config["unk_token"] == "[UNK]"
    assert {int(k): v["content"] for k, v in config["added_tokens_decoder"].items() if int(k) >= 4096} == {
        i: t for t, i in report.added
    }
    assert config["added_tokens_decoder"]["4096"]["special"] is True
    assert config["added_tokens_decoder"]["4097"]["special"] is False


def test_append_dry_run_leaves_every_file_byte_identical(dnabert2_dir: Path) -> None:
    before = _file_bytes(dnabert2_dir)
    report = append_tokens(dnabert2_dir / "tokenizer.json", list(inventory.builtin_tokens()), dry_run=True)
    assert len(report.added) == len(inventory.builtin_tokens())
    assert report.written == []
    assert _file_bytes(dnabert2_dir) == before


def test_append_is_idempotent(dnabert2_dir: Path) -> None:
    first = append_tokens(dnabert2_dir, list(inventory.builtin_tokens()))
    assert first.added and first.written
    after_first = _file_bytes(dnabert2_dir)
    second = append_tokens(dnabert2_dir, list(inventory.builtin_tokens()))
    assert second.added == [] and not second.decoder_fixed and second.written == []
    assert second.already_present == len(inventory.builtin_tokens())
    assert _file_bytes(dnabert2_dir) == after_first


def test_append_to_output_leaves_the_source_alone(dnabert2_dir: Path, tmp_path: Path) -> None:
    before = _file_bytes(dnabert2_dir)
    report = append_tokens(dnabert2_dir, ["exon"], output=tmp_path / "out")
    assert report.output == tmp_path / "out" / "tokenizer.json"
    assert _file_bytes(dnabert2_dir) == before
    assert GenoTokenizer.load(tmp_path / "out").token_to_id("exon") == 4096
    assert (tmp_path / "out" / TOKENIZER_CONFIG_FILE).is_file()

    single = append_tokens(dnabert2_dir / "tokenizer.json", ["cds"], output=tmp_path / "single.json")
    assert single.output == tmp_path / "single.json"
    assert GenoTokenizer.load(tmp_path / "single.json").token_to_id("cds") == 4096


def test_append_continues_after_the_highest_added_id(dnabert2_dir: Path) -> None:
    append_tokens(dnabert2_dir, ["<bos>", "<eos>"])
    report = append_tokens(dnabert2_dir, ["<eos>", "exon"])
    assert report.added == [("exon", 4098)]
    assert GenoTokenizer.load(dnabert2_dir).vocab_size == 4099


def test_append_refuses_a_file_whose_ids_tokenizers_would_renumber(dnabert2_dir: Path) -> None:
    path = dnabert2_dir / "tokenizer.json"
    data = json.loads(path.read_text())
    # tokenizers loads an added token after a gap at the next free id (4096), not at 5000
    data["added_tokens"].append({"id": 5000, "content": "<far>", "single_word": False, "lstrip": False,
                                 "rstrip": False, "normalized": False, "special": False})
    path.write_text(json.dumps(data))
    before = _file_bytes(dnabert2_dir)
    with pytest.raises(TokenizerError, match="declared with id 5000"):
        append_tokens(path, ["exon"])
    assert _file_bytes(dnabert2_dir) == before


def test_ensure_builtin_tokens_creates_configs_and_is_idempotent(tmp_path: Path) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    shutil.copyfile(dnabert2_tokenizer_path(), folder / "tokenizer.json")
    report = ensure_builtin_tokens(folder, extra_tokens=["intron_hc", "my_extra"])
    assert report.added[-1] == ("my_extra", 4096 + len(inventory.builtin_tokens()))
    assert sorted(p.name for p in folder.iterdir()) == [
        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"
    ]
    before = _file_bytes(folder)
    again = ensure_builtin_tokens(folder, extra_tokens=["intron_hc", "my_extra"])
    assert again.added == [] and again.written == []
    assert _file_bytes(folder) == before

    # the edited (not re-saved) directory is what transformers users get from `model init`
    from transformers import PreTrainedTokenizerFast

    tok = GenoTokenizer.load(folder)
    hf = PreTrainedTokenizerFast.from_pretrained(folder)
    ids = tok.encode_target(TARGET_TOKENS[:-1]) + tok.encode_dna("ACGTNNNNNNNTTGA") + [tok.eos_id]
    assert hf.decode(ids) == tok.decode(ids) == "".join(TARGET_TOKENS[:-1]) + "ACGTNNNNNNNTTGA<eos>"
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (tok.bos_id, tok.eos_id, 3)


def test_append_rejects_a_missing_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="not found"):
        append_tokens(tmp_path / "nope.json", ["exon"])
