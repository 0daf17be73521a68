"""The .packed shard format: write/read round trip, bulk merge, and refusal of corrupt files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genoforge.baking.packed_writer import PackedWriter
from genoforge.errors import ShardFormatError
from genoforge.genes.packed_format import ALIGNMENT, MAGIC, token_dtype_for
from genoforge.genes.packed_reader import PackedShard

SAMPLES = [
    # input ids, target ids, species, seqid, start, end
    ([5, 6, 7], [1, 40, 2], "yeast", "chrI", 0, 100),
    ([], [1, 2], "yeast", "chrII", 50, 60),  # an empty input must survive
    ([65535, 0, 9, 9], [1, 3, 3, 3, 2], "fly", "chrI", 1_000_000_000_000, 1_000_000_000_010),
]


def write_shard(path, samples=SAMPLES, tokenizer_hash="abc123"):
    with PackedWriter(path, tokenizer_hash=tokenizer_hash) as writer:
        for inputs, targets, species, seqid, start, end in samples:
            writer.add(inputs, targets, species=species, seqid=seqid, window_start=start, window_end=end)
    return path


def test_round_trip(tmp_path):
    shard = PackedShard(write_shard(tmp_path / "a.packed"))
    assert len(shard) == 3
    assert shard.tokenizer_hash == "abc123"
    assert shard.species == ["yeast", "fly"]
    assert shard.seqids == ["chrI", "chrII"]  # shared string table across species
    assert shard.input_lengths().tolist() == [3, 0, 4]
    assert shard.target_lengths().tolist() == [3, 2, 5]
    for i, (inputs, targets, species, seqid, start, end) in enumerate(SAMPLES):
        sample = shard.sample(i)
        assert sample.input_ids.tolist() == inputs
        assert sample.target_ids.tolist() == targets
        assert (sample.species, sample.seqid, sample.window_start, sample.window_end) == (species, seqid, start, end)
    assert shard.sample(-1).window_start == SAMPLES[-1][4]
    with pytest.raises(IndexError):
        shard.sample(3)


def test_layout_matches_the_contract(tmp_path):
    path = write_shard(tmp_path / "a.packed")
    raw = path.read_bytes()
    assert raw[:8] == MAGIC
    header_len = int.from_bytes(raw[8:16], "little")
    header = json.loads(raw[16 : 16 + header_len])
    assert header["schema_version"] == 2 and header["n_samples"] == 3
    assert header["token_dtype"] == "uint16"
    assert len(raw) % ALIGNMENT == 0
    for name, spec in header["arrays"].items():
        assert spec["offset"] % ALIGNMENT == 0, name
    tokens = header["arrays"]["input_tokens"]
    view = np.frombuffer(raw, dtype="<u2", count=tokens["shape"][0], offset=tokens["offset"])
    assert view.tolist() == [5, 6, 7, 65535, 0, 9, 9]


def test_equal_content_gives_equal_bytes(tmp_path):
    a = write_shard(tmp_path / "a.packed").read_bytes()
    b = write_shard(tmp_path / "b.packed").read_bytes()
    assert a == b


def test_uint32_tokens_and_range_check(tmp_path):
    assert token_dtype_for(4096) == "uint16" and token_dtype_for(70000) == "uint32"
    with PackedWriter(tmp_path / "w.packed", tokenizer_hash="h", token_dtype="uint32") as writer:
        writer.add([70000], [1, 2], species="s", seqid="c", window_start=0, window_end=1)
    assert PackedShard(tmp_path / "w.packed").sample(0).input_ids.tolist() == [70000]
    writer = PackedWriter(tmp_path / "n.packed", tokenizer_hash="h")
    with pytest.raises(ValueError):
        writer.add([70000], [1], species="s", seqid="c", window_start=0, window_end=1)
    writer.abort()
    assert not (tmp_path / "n.packed").exists()


def test_add_shard_merges_and_remaps_tables(tmp_path):
    first = PackedShard(write_shard(tmp_path / "p1.packed", SAMPLES[:2]))
    second = PackedShard(write_shard(tmp_path / "p2.packed", SAMPLES[2:]))
    with PackedWriter(tmp_path / "merged.packed", tokenizer_hash="abc123") as writer:
        writer.add_shard(first)
        writer.add_shard(second)
    merged = (tmp_path / "merged.packed").read_bytes()
    assert merged == write_shard(tmp_path / "direct.packed").read_bytes()


def test_add_shard_refuses_another_tokenizer(tmp_path):
    other = PackedShard(write_shard(tmp_path / "o.packed", tokenizer_hash="zzz"))
    writer = PackedWriter(tmp_path / "m.packed", tokenizer_hash="abc123")
    with pytest.raises(ShardFormatError, match="tokenizer"):
        writer.add_shard(other)
    writer.abort()


def test_exception_in_block_leaves_no_file(tmp_path):
    path = tmp_path / "x.packed"
    with pytest.raises(RuntimeError):
        with PackedWriter(path, tokenizer_hash="h") as writer:
            writer.add([1], [1], species="s", seqid="c", window_start=0, window_end=1)
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_empty_shard(tmp_path):
    with PackedWriter(tmp_path / "e.packed", tokenizer_hash="h"):
        pass
    shard = PackedShard(tmp_path / "e.packed")
    assert len(shard) == 0 and shard.input_lengths().size == 0


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda raw: b"NOTPACK!" + raw[8:], "magic"),
        (lambda raw: raw[:-70], "truncated"),
        (lambda raw: raw[:12], "magic|truncated"),
        (lambda raw: raw.replace(b'"schema_version":2', b'"schema_version":9'), "schema version"),
        (lambda raw: raw[:16] + b"x" + raw[17:], "JSON"),
    ],
    ids=["bad-magic", "truncated-arrays", "truncated-header", "future-version", "bad-header"],
)
def test_corruption_is_refused(tmp_path, corrupt, message):
    path = write_shard(tmp_path / "a.packed")
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(ShardFormatError, match=message):
        PackedShard(path)


def test_inconsistent_offsets_are_refused(tmp_path):
    path = write_shard(tmp_path / "a.packed")
    raw = bytearray(path.read_bytes())
    header_len = int.from_bytes(raw[8:16], "little")
    header = json.loads(raw[16 : 16 + header_len])
    at = header["arrays"]["input_offsets"]["offset"] + 8  # offsets[1]
    raw[at : at + 8] = (99).to_bytes(8, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(ShardFormatError, match="input_offsets"):
        PackedShard(path)


def test_missing_file(tmp_path):
    with pytest.raises(ShardFormatError, match="not found"):
        PackedShard(tmp_path / "nope.packed")


def test_pickles_as_its_path(tmp_path):
    import pickle

    shard = PackedShard(write_shard(tmp_path / "a.packed"))
    payload = pickle.dumps(shard)
    assert len(payload) < 300  # the path, not the arrays
    copy = pickle.loads(payload)
    assert copy.sample(2).input_ids.tolist() == SAMPLES[2][0]


def test_bases_and_labels_round_trip(tmp_path):
    """Schema 2 keeps each window's base codes and per-base classes, also through add_shard."""
    rng = np.random.default_rng(0)
    bases = [rng.integers(0, 5, n).astype(np.uint8) for n in (7, 0, 12)]
    labels = [rng.integers(0, 17, n).astype(np.uint8) for n in (7, 0, 12)]
    with PackedWriter(tmp_path / "b.packed", tokenizer_hash="h") as writer:
        start = 0
        for b, lab in zip(bases, labels):
            writer.add([1], [1, 2], species="s", seqid="c", window_start=start, window_end=start + b.size,
                       bases=b, base_labels=lab)
            start += b.size
        writer.add([1], [1, 2], species="s", seqid="c", window_start=100, window_end=103)
    with PackedWriter(tmp_path / "m.packed", tokenizer_hash="h") as writer:
        writer.add_shard(PackedShard(tmp_path / "b.packed"))
    for path in ("b.packed", "m.packed"):
        shard = PackedShard(tmp_path / path)
        for i, (b, lab) in enumerate(zip(bases, labels)):
            np.testing.assert_array_equal(shard.sample(i).bases, b)
            np.testing.assert_array_equal(shard.sample(i).base_labels, lab)
        unlabelled = shard.sample(3)
        assert unlabelled.bases.tolist() == [4, 4, 4] and unlabelled.base_labels.tolist() == [255] * 3


def test_bases_must_match_the_window(tmp_path):
    writer = PackedWriter(tmp_path / "x.packed", tokenizer_hash="h")
    with pytest.raises(ValueError, match="one entry per base"):
        writer.add([1], [1], species="s", seqid="c", window_start=0, window_end=5,
                   bases=np.zeros(4, np.uint8), base_labels=np.zeros(4, np.uint8))
    writer.abort()


def test_schema_1_shard_names_the_fix(tmp_path):
    """A shard baked before the per-base arrays is refused with 're-run genoforge bake'."""
    path = tmp_path / "old.packed"
    write_shard(path)
    raw = path.read_bytes()
    header_len = int(np.frombuffer(raw[8:16], dtype="<u8")[0])
    header = raw[16 : 16 + header_len].replace(b'"schema_version":2', b'"schema_version":1')
    path.write_bytes(raw[:16] + header + raw[16 + header_len :])
    with pytest.raises(ShardFormatError, match="schema 1.*re-run genoforge bake"):
        PackedShard(path)
