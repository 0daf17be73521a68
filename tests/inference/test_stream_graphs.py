"""The CUDA-graph path of the batched decoder step (genoforge/inference/cuda_graphs.py), on a CPU.

A CPU cannot capture a graph, so these tests run :class:`GraphedRowStep` with ``emulate=True``:
the same static input/output buffers, warm-up count and capture/replay control flow, with the
"captured" body run eagerly. What they prove: the step over static buffers gives exactly the
eager :func:`row_step`'s logits and cache updates step after step (rows refilled between steps),
the cache tensors keep their addresses (what a replay relies on), a change of layout (a model
without a compressor widening its memory) triggers a re-capture, the step's ops include none that
needs a host sync (the grouped MoE path; the loop path is caught by the same audit and refused),
and ``--cuda_graphs`` on a CPU is refused cleanly. The GPU test is in tests/gpu/test_gpu_paths.py.

Models: the debug preset (odd sizes, look-back 11 so the ring wraps) with random weights, tuned as
in test_decode so that rows end at different steps; an aligned variant (widths multiples of 8)
for the grouped MoE path.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from tests.tiny import build_debug_model
from typer.testing import CliRunner

from genoforge.cli.app import app
from genoforge.errors import ConfigError
from genoforge.inference.cuda_graphs import GraphedRowStep, StaticRowStep, cache_layout, check_capturable
from genoforge.inference.predict_config import PredictConfig
from genoforge.inference.predictor import Predictor
from genoforge.inference.stream import decode_stream, row_step
from genoforge.model.decode_cache import RowCache

WIDE = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer(baking_tokenizer_dir):
    from genoforge.tokenizer.core import GenoTokenizer

    return GenoTokenizer.load(baking_tokenizer_dir)


def build_model(tokenizer, seed: int = 0, **changes):
    """test_decode's random debug model (targets of varied length), in eval mode."""
    return build_debug_model(tokenizer, seed, **changes).eval()


def windows(tokenizer, lengths, seed: int = 11):
    rng = random.Random(seed)
    seqs = ["".join(rng.choice("ACGTacgtN") for _ in range(n)) for n in lengths]
    return [(k, tokenizer.encode_dna(s), n) for k, (s, n) in enumerate(zip(seqs, lengths))]


def clone_cache(cache: RowCache) -> RowCache:
    """A deep copy of every tensor of ``cache`` (the pointer's included)."""
    import dataclasses

    def copy(value):
        if isinstance(value, list):
            return [t.clone() for t in value]
        return value.clone() if isinstance(value, torch.Tensor) else value

    return dataclasses.replace(cache, **{f.name: copy(getattr(cache, f.name)) for f in dataclasses.fields(cache)})


def cache_tensors(cache: RowCache) -> list[torch.Tensor]:
    return cache.tensors()


class TwinCheck:
    """A decode_stream ``step``: the graphed step on the real cache, eager row_step on a copy.

    Asserts, every step, that both give the same logits and leave the same cache state, and
    records the real cache's layout (addresses and shapes) per step.
    """

    def __init__(self, graphed: GraphedRowStep):
        self.graphed = graphed
        self.layouts: list[tuple] = []
        self.steps = 0

    def __call__(self, model, token_ids_B, cache, active_B):
        twin = clone_cache(cache)
        expected = row_step(model, token_ids_B.clone(), twin, active_B.clone())
        self.layouts.append(cache_layout(model, cache))
        got = self.graphed(model, token_ids_B, cache, active_B)
        assert torch.equal(got, expected)
        for mine, theirs in zip(cache_tensors(cache), cache_tensors(twin), strict=True):
            assert torch.equal(mine, theirs)
        # The caller gets a copy: the next replay overwrites the static output, not this.
        assert got.data_ptr() != self.graphed.static.logits_BV.data_ptr()
        self.steps += 1
        return got


def test_static_buffer_step_matches_eager_row_step_at_every_step(tokenizer) -> None:
    model = build_model(tokenizer, seed=2)  # its windows end after 1 or 21 tokens
    graphed = GraphedRowStep(emulate=True, warmup_steps=2)
    check = TwinCheck(graphed)
    items = windows(tokenizer, [640, 33, 1_000, 250, 777, 90])
    streamed = dict(decode_stream(model, tokenizer, items, batch_size=3, max_new_tokens=30, step=check))
    eager = dict(decode_stream(model, tokenizer, items, batch_size=3, max_new_tokens=30))
    assert [streamed[k].token_ids for k in range(6)] == [eager[k].token_ids for k in range(6)]
    lengths = {len(p.token_ids) for p in eager.values()}
    assert len(lengths) > 1  # rows ended at different steps, so rows were refilled mid-stream
    # With a compressor the memory width is fixed: one capture, replayed at every later step,
    # and every cache tensor kept its address and shape from the first step to the last.
    assert check.steps > 2 and graphed.captures == 1
    assert len(set(check.layouts)) == 1


def test_static_buffers_are_reused_and_inputs_are_copied_in(tokenizer) -> None:
    """Two calls with new inputs copied into the same buffers give each input's own logits."""
    model = build_model(tokenizer, seed=3)
    graphed = GraphedRowStep(emulate=True, warmup_steps=0)
    check = TwinCheck(graphed)
    items = windows(tokenizer, [300, 500], seed=3)
    list(decode_stream(model, tokenizer, items, batch_size=2, max_new_tokens=8, step=check))
    static = graphed.static
    assert static is not None and graphed.captures == 1
    buffers = (static.token_ids_B.data_ptr(), static.active_B.data_ptr(), static.logits_BV.data_ptr())
    cache = static.cache
    for tokens in ([5, 7], [9, 4]):
        twin = clone_cache(cache)
        ids = torch.tensor(tokens)
        active = torch.tensor([True, False])
        got = graphed(model, ids, cache, active)
        assert torch.equal(got, row_step(model, ids, twin, active))
        assert torch.equal(static.token_ids_B, ids) and torch.equal(static.active_B, active)
    assert (static.token_ids_B.data_ptr(), static.active_B.data_ptr(), static.logits_BV.data_ptr()) == buffers
    assert graphed.static is static and graphed.captures == 1
    graphed.release()
    assert graphed.static is None


def test_widening_memory_recaptures_and_still_matches_eager(tokenizer) -> None:
    """Without a compressor M = S grows with the longest window: new cross K/V tensors, so the
    graph is built again (warm-up and capture) and decoding still equals the eager path."""
    model = build_model(tokenizer, seed=2, num_latents=0)
    graphed = GraphedRowStep(emulate=True, warmup_steps=1)
    check = TwinCheck(graphed)
    # Short windows first, then longer ones: each refill batch needs a wider memory.
    items = windows(tokenizer, [40, 60, 400, 420, 1_100, 1_000], seed=5)
    streamed = dict(decode_stream(model, tokenizer, items, batch_size=2, max_new_tokens=20, step=check))
    eager = dict(decode_stream(model, tokenizer, items, batch_size=2, max_new_tokens=20))
    assert [streamed[k].token_ids for k in range(6)] == [eager[k].token_ids for k in range(6)]
    widths = []
    for layout in check.layouts:
        width = layout[3][1][1]  # memory_ok_BM's shape [B, M]
        if not widths or widths[-1] != width:
            widths.append(width)
    assert len(widths) > 1 and widths == sorted(widths)
    # One capture per layout whose warm-up ended (a layout may end inside its warm-up).
    assert 1 <= graphed.captures <= len(widths)
    assert graphed.captures > 1


# Ops whose result the host must read (a device->host sync, fatal inside a capture) or whose
# output shape depends on tensor data.
SYNC_OPS = ("nonzero", "_local_scalar_dense", "item", "masked_select", "unique", "_unique2",
            "unique_consecutive", "bincount", "is_nonzero", "equal", "argwhere", "masked_scatter")


class OpAudit(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func.overloadpacket.__name__)
        if func.overloadpacket.__name__ == "repeat_interleave" and isinstance(args[1], torch.Tensor):
            self.ops.add("repeat_interleave(tensor repeats)")  # output size read from the data
        return func(*args, **(kwargs or {}))


def audited_step_ops(model, tokenizer) -> set[str]:
    """The aten ops of one static-buffer step (row_step as a graph would capture it)."""
    graphed = GraphedRowStep(emulate=True, warmup_steps=0)
    items = windows(tokenizer, [300, 500, 80], seed=7)
    ops: set[str] = set()

    def audited(model, token_ids_B, cache, active_B):
        if graphed.static is None:
            graphed(model, token_ids_B, cache, active_B)  # build the buffers outside the audit
        with OpAudit() as audit:
            out = graphed(model, token_ids_B, cache, active_B)
        ops.update(audit.ops)
        return out

    list(decode_stream(model, tokenizer, items, batch_size=3, max_new_tokens=4, step=audited))
    return ops


def aligned_model(tokenizer, **changes):
    """Debug sizes rounded to multiples of 8: the grouped MoE path (torch._grouped_mm) applies."""
    return build_model(tokenizer, seed=4, decoder_dim=48, decoder_ff_dim=64, decoder_heads=6,
                       decoder_kv_heads=2, **changes)


@pytest.mark.parametrize("math_sdpa", [False, True])
def test_the_captured_step_calls_no_op_that_syncs_with_the_host(tokenizer, math_sdpa) -> None:
    """``math_sdpa``: SDPA forced onto its math path (bmm, softmax, GQA by expand), the one CUDA
    falls back to for a boolean mask with GQA; the default path on a CPU is one fused kernel."""
    from contextlib import nullcontext

    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = aligned_model(tokenizer, pointer_dim=0)  # the pointer's own bmm would blur the check
    model.set_moe_impl("grouped")
    with sdpa_kernel(SDPBackend.MATH) if math_sdpa else nullcontext():
        ops = audited_step_ops(model, tokenizer)
    assert "_grouped_mm" in ops and "index_add" in ops  # the grouped MoE ran inside the step
    assert ("bmm" in ops) == math_sdpa
    assert not ops & {*SYNC_OPS, "repeat_interleave(tensor repeats)"}, sorted(ops)
    check_capturable(model)  # accepted


def test_the_pointer_step_calls_no_op_that_syncs_with_the_host(tokenizer) -> None:
    """The coordinate pointer's number logits (bmm, logsumexp, gather, index_copy) are capturable."""
    model = aligned_model(tokenizer)
    model.set_moe_impl("grouped")
    assert model.pointer is not None
    ops = audited_step_ops(model, tokenizer)
    assert {"bmm", "logsumexp", "gather"} <= ops, sorted(ops)
    assert not ops & {*SYNC_OPS, "repeat_interleave(tensor repeats)"}, sorted(ops)


def test_the_loop_moe_is_caught_by_the_audit_and_refused(tokenizer) -> None:
    model = aligned_model(tokenizer)
    model.set_moe_impl("loop")
    assert "nonzero" in audited_step_ops(model, tokenizer)  # torch.where(mask): a host sync
    with pytest.raises(ConfigError, match="per-expert loop"):
        check_capturable(model)
    # The debug preset's odd widths (decoder_ff_dim 31) cannot use the grouped GEMM at all.
    with pytest.raises(ConfigError, match="decoder_ff_dim 31"):
        check_capturable(build_model(tokenizer))


def test_graphed_step_refuses_a_cpu_cache_unless_emulating(tokenizer) -> None:
    model = aligned_model(tokenizer)
    items = windows(tokenizer, [200], seed=1)
    with pytest.raises(ConfigError, match="--cuda_graphs needs a CUDA device"):
        list(decode_stream(model, tokenizer, items, batch_size=1, max_new_tokens=4, step=GraphedRowStep()))


def test_predictor_refuses_cuda_graphs_on_cpu(tokenizer) -> None:
    model = aligned_model(tokenizer)
    with pytest.raises(ConfigError, match="--cuda_graphs .* runs on cpu"):
        Predictor(model, tokenizer, PredictConfig(window_size=600, device="cpu", cuda_graphs=True))
    assert Predictor(model, tokenizer, PredictConfig(window_size=600, device="cpu")).step is None


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer) -> Path:
    from genoforge.model.io import save_model

    directory = tmp_path_factory.mktemp("graphs_model")
    save_model(build_model(tokenizer), directory, tokenizer)
    return directory


@pytest.mark.parametrize("spelling", ["--cuda_graphs", "--cuda-graphs"])
def test_cli_refuses_cuda_graphs_on_cpu_in_one_line(model_dir, tmp_path, spelling) -> None:
    genome = tmp_path / "g.fa"
    genome.write_text(">c1\n" + "ACGT" * 200 + "\n")
    out = tmp_path / "out.gff3"
    result = CliRunner().invoke(app, ["predict", str(model_dir), str(genome), "-o", str(out),
                                      "--window_size", "600", "--device", "cpu", spelling])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert "--cuda_graphs" in lines[0] and "--device cuda" in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == [genome]


def test_cli_help_documents_cuda_graphs_on_by_default_and_the_off_switch() -> None:
    result = CliRunner().invoke(app, ["predict", "-h"], env=WIDE)
    assert result.exit_code == 0
    # help shows one spelling; the kebab one is accepted (test above) but not listed twice
    for spelling in ("--cuda_graphs", "--no_cuda_graphs"):
        assert spelling in result.output
    assert "Default: on with CUDA" in " ".join(result.output.replace("│", " ").split())


def test_cuda_graphs_default_follows_the_device_and_the_experts(tokenizer) -> None:
    """None (the default): on for CUDA with grouped experts, else eager; True insists; False never.

    Only the decision is tested here (a torch.device("cuda") object allocates nothing); the
    capture itself is tests/gpu's.
    """
    from genoforge.inference.device import use_cuda_graphs

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    grouped, loop = aligned_model(tokenizer), aligned_model(tokenizer)
    loop.set_moe_impl("loop")
    auto, on, off = PredictConfig(), PredictConfig(cuda_graphs=True), PredictConfig(cuda_graphs=False)
    assert use_cuda_graphs(auto, cuda, grouped) is True
    assert use_cuda_graphs(auto, cuda, loop) is False  # eager, no error
    assert use_cuda_graphs(auto, cpu, grouped) is False
    assert use_cuda_graphs(off, cuda, grouped) is False
    assert use_cuda_graphs(on, cuda, grouped) is True
    with pytest.raises(ConfigError, match="per-expert loop"):
        use_cuda_graphs(on, cuda, loop)
    with pytest.raises(ConfigError, match="runs on cpu"):
        use_cuda_graphs(on, cpu, grouped)


class FailingCapture(GraphedRowStep):
    """An emulated GraphedRowStep whose capture fails, as a real one returns after a RuntimeError."""

    def _capture(self, static):
        return None if self.fallback else super()._capture(static)


def test_a_failed_capture_falls_back_to_eager_steps_with_the_same_tokens(tokenizer) -> None:
    model = aligned_model(tokenizer)
    items = windows(tokenizer, [640, 33, 1_000, 250], seed=5)
    eager = dict(decode_stream(model, tokenizer, items, batch_size=2, max_new_tokens=20))
    failing = FailingCapture(emulate=True, warmup_steps=2, fallback=True)
    fallen = dict(decode_stream(model, tokenizer, items, batch_size=2, max_new_tokens=20, step=failing))
    assert failing.failed and failing.captures == 0 and failing.static is None
    assert [fallen[k].token_ids for k in range(4)] == [eager[k].token_ids for k in range(4)]


def test_static_step_holds_no_graph_until_captured(tokenizer) -> None:
    """The buffers exist before any capture; warm-up calls do not count as captures."""
    model = aligned_model(tokenizer)
    graphed = GraphedRowStep(emulate=True, warmup_steps=3)
    seen: list[tuple[int, bool]] = []

    def watch(model, token_ids_B, cache, active_B):
        out = graphed(model, token_ids_B, cache, active_B)
        assert isinstance(graphed.static, StaticRowStep)
        seen.append((graphed.captures, graphed.static.replay is not None))
        return out

    list(decode_stream(model, tokenizer, windows(tokenizer, [400, 300], seed=9), batch_size=2,
                       max_new_tokens=6, step=watch))
    assert seen[:3] == [(0, False)] * 3 and seen[3] == (1, True)
