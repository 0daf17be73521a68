"""The coordinate pointer: its targets are exactly the target's coordinates, its logits factorise
into the hi:lo tokens, and a window's scores do not depend on what pads it."""

from __future__ import annotations

import math

import pytest
import torch

from genoforge.genes import inventory as inv
from genoforge.genes.target import (
    WindowAnnotation,
    WindowFeature,
    WindowTranscript,
    encode_target,
)
from genoforge.model.pointer import (
    COORD_BLOCK,
    SLOT_HI,
    SLOT_LO,
    coordinate_positions,
    distance_bucket,
    document_windows,
    number_values,
    pointer_number_logits,
    soft_target_log_likelihood,
)
from tests.tiny import tiny_model, write_tokenizer_dir


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from genoforge.tokenizer.core import GenoTokenizer

    return GenoTokenizer.load(write_tokenizer_dir(tmp_path_factory.mktemp("tok")))


def _coordinates(wa: WindowAnnotation) -> list[int]:
    out = []
    for r in wa.records:
        if isinstance(r, WindowTranscript):
            for s, e in r.exons:
                out += [s, e]
            if r.cds is not None:
                out += list(r.cds)
        else:
            out += [r.start, r.end]
    return out


def test_pointer_targets_round_trip_every_coordinate_of_a_target(tokenizer) -> None:
    """encode -> labels -> (slot, boundary) gives each coordinate at its hi and its lo position,
    values above 999 included, and nothing at the gene index or phase numbers."""
    wa = WindowAnnotation(records=(
        WindowTranscript("+", "protein_coding", 0, ".", ((7, 120), (1_080, 2_345)), (15, 2_001), 0),
        WindowTranscript("-", "protein_coding", 1, "<", ((0, 999), (1_000, 14_999)), (0, 14_000), 2),
        WindowFeature("origin_of_replication", ".", 12_345, 12_999, "."),
    ))
    ids = torch.tensor([tokenizer.encode_target(encode_target(wa))])
    labels = ids[:, 1:]
    digits = torch.tensor([tokenizer.token_to_id(n) for n in inv.NUMBERS])
    values = number_values(digits, tokenizer.vocab_size)
    slot, boundary, hi, previous = coordinate_positions(labels, values, tokenizer.token_to_id(inv.COORD_SEP))
    expected = _coordinates(wa)
    assert boundary[slot == SLOT_HI].tolist() == expected
    assert boundary[slot == SLOT_LO].tolist() == expected
    assert previous[slot == SLOT_HI].tolist() == [0, *expected[:-1]]
    assert previous[slot == SLOT_LO].tolist() == [0, *expected[:-1]]
    assert hi[slot == SLOT_LO].tolist() == [v // COORD_BLOCK for v in expected]
    # the other numbers (gene indices 0, 1 and the phases 0, 2) are the token head's
    n_numbers = int((values[labels] >= 0).sum())
    assert n_numbers == 2 * len(expected) + 4


def test_document_windows_number_documents_row_by_row() -> None:
    doc = torch.tensor([[0, 0, 1, 1, -1], [0, 0, 0, -1, -1], [-1] * 5, [0, 1, 2, 2, 2]])
    assert document_windows(doc).tolist() == [[0, 0, 1, 1, -1], [2, 2, 2, -1, -1], [-1] * 5, [3, 4, 5, 5, 5]]


def test_number_logits_factorise_the_boundary_distribution() -> None:
    """At a hi slot the digits' softmax is the boundary distribution summed per thousand; at a lo
    slot it is the distribution within the written thousand; elsewhere the token logits stay."""
    model = tiny_model(pointer_dim=11).eval()
    torch.manual_seed(0)
    rows, n_boundaries, width = 3, 2 * COORD_BLOCK, 11
    keys = torch.randn(rows, n_boundaries, width)
    valid = torch.zeros(rows, n_boundaries, dtype=torch.bool)
    valid[:, :1_501] = True  # a 1,500 bp window: boundaries 0..1500
    hidden = torch.randn(rows, model.config.decoder_dim)
    token_logits = torch.randn(rows, 1_200)
    digits = torch.arange(100, 1_100)
    slot = torch.tensor([SLOT_HI, SLOT_LO, 0])
    hi = torch.tensor([0, 1, 0])
    previous = torch.tensor([0, 1_020, 7])
    out = pointer_number_logits(model.pointer, hidden, keys, valid, slot, hi, previous, token_logits, digits)
    content = (keys @ model.pointer.queries(hidden)[:, :, None]).squeeze(-1)
    buckets = distance_bucket(torch.arange(n_boundaries)[None, :] - previous[:, None])
    length = model.pointer.distance_proj(hidden).gather(1, buckets)
    scores = (content + length).masked_fill(~valid, -math.inf)
    full = torch.log_softmax(scores, dim=-1)
    hi_probs = torch.softmax(out[0, digits], dim=-1)
    torch.testing.assert_close(hi_probs[:2], full[0].exp().view(2, COORD_BLOCK).sum(-1), rtol=1e-4, atol=1e-6)
    assert (hi_probs[2:] == 0).all()
    lo = torch.log_softmax(out[1, digits], dim=-1)
    torch.testing.assert_close(lo[:501], torch.log_softmax(scores[1, 1_000:1_501], dim=-1), rtol=1e-4, atol=1e-5)
    assert torch.isinf(out[1, digits][501:]).all()
    torch.testing.assert_close(out[2], token_logits[2])
    torch.testing.assert_close(out[:, :100], token_logits[:, :100])


def test_distance_buckets_are_signed_log_bins() -> None:
    d = torch.tensor([0, 1, -1, 2, 3, 4, 5, 6, 9, 10, 100, 15_000, -15_000, 10**6])
    b = distance_bucket(d).tolist()
    half = 23
    assert b[0] == half and b[1] == half + 1 and b[2] == half - 1
    assert b[1] < b[3] < b[4] <= b[5] and b[5] <= b[7] and b[9] < b[10] < b[11]
    assert b[11] <= 2 * half and b[12] == 2 * half - b[11] and b[13] == 2 * half
    assert distance_bucket(torch.arange(-20_000, 20_000)).unique().numel() <= 2 * half + 1


def test_ordinal_targets_cost_less_for_a_near_miss() -> None:
    n = 50
    allowed = torch.ones(2, n, dtype=torch.bool)
    near = torch.full((n,), -30.0)
    near[21] = 0.0  # all mass one base off the target 20
    far = torch.full((n,), -30.0)
    far[40] = 0.0  # twenty bases off
    log_probs = torch.log_softmax(torch.stack([near, far]), dim=-1)
    got = soft_target_log_likelihood(log_probs, allowed, torch.tensor([20, 20]), smoothing=0.2, sigma=2.0)
    assert got[0] > got[1] + 1.0
    exact = soft_target_log_likelihood(log_probs, allowed, torch.tensor([20, 20]), smoothing=0.0, sigma=2.0)
    torch.testing.assert_close(exact, log_probs[:, 20])


def test_a_window_keys_do_not_depend_on_its_padding() -> None:
    model = tiny_model(pointer_dim=11).eval()
    torch.manual_seed(1)
    feats = torch.randn(1, 40, model.config.base_head_channels)
    mask = torch.ones(1, 40, dtype=torch.bool)
    padded = torch.cat([feats, torch.randn(1, 25, feats.shape[-1])], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(1, 25, dtype=torch.bool)], dim=1)
    keys, valid = model.pointer.keys(feats, mask)
    keys_p, valid_p = model.pointer.keys(padded, padded_mask)
    torch.testing.assert_close(keys_p[:, :41], keys)
    assert valid.all() and valid_p[:, :41].all() and not valid_p[:, 41:].any()
