"""Model speed on one GPU: MoE layer, encoder attention, and the seed-size model's training step.

Run (on an H100): python benchmarks/model.py --out results.json
Smoke test of the script itself (CPU, tiny sizes, no compile): python benchmarks/model.py --smoke

Sections (``--sections``, default all):

* ``moe``: one MoE layer (32 experts, top-2, 768 -> 3072 SwiGLU, bf16 weights), fwd+bwd, at 8k and
  32k tokens: grouped GEMM (eager and torch.compile'd) vs the per-expert loop.
* ``attn``: encoder self-attention on one 16k-token packed row of 10 documents, 12 heads of 64,
  ALiBi + document mask, fwd+bwd: compiled FlexAttention vs SDPA with the bias materialised.
* ``model``: the seed-size model (DNABERT-2 vocabulary + inventory = 5154 tokens), bf16 autocast,
  each layer torch.compile'd, fused AdamW: forward+backward time, full step time, tokens/s, MFU
  (active parameters, attention counted separately, 989 TFLOP/s peak: benchmarks/RESULTS.md,
  "How the figures are measured") and the
  peak memory of a steady-state training step (optimizer state allocated). Each timed step is
  synchronised, so a step's host work before its first kernel (mask building) is exposed; the
  ``fwd_bwd_accum`` figures time 4 micro-batches' fwd+bwd back to back instead (gradient
  accumulation, as tune runs them), where that host work overlaps the GPU's queue.

Times are medians over CUDA-event-timed iterations after warm-up (compile) iterations.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genoforge.model.attention import AlibiScore, alibi_slopes, attend, encoder_self_mask  # noqa: E402
from genoforge.model.config import ModelConfig, preset  # noqa: E402
from genoforge.model.io import build_empty_model  # noqa: E402
from genoforge.model.moe import MoEFeedForward  # noqa: E402

PEAK_BF16_FLOPS = 989e12  # H100 SXM dense bf16, no sparsity (as genoforge.training.flops)
SEED_VOCAB = 5154  # DNABERT-2's 4096 + the built-in inventory (genoforge model init)


def timed(fn, warmup: int, iters: int, device: str) -> float:
    """Median milliseconds of ``fn()`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            began = time.perf_counter()
            fn()
            times.append((time.perf_counter() - began) * 1e3)
    return statistics.median(times)


def doc_layout(lengths: list[int], total: int, device: str) -> torch.Tensor:
    doc = torch.full((total,), -1, dtype=torch.int32)
    start = 0
    for d, n in enumerate(lengths):
        doc[start : start + n] = d
        start += n
    return doc.to(device)


# ------------------------------------------------------------------------------------------ MoE
def bench_moe(device: str, smoke: bool) -> dict:
    dim, ff, experts, top_k = (64, 128, 8, 2) if smoke else (768, 3072, 32, 2)
    sizes = [256] if smoke else [8192, 32768]
    torch.manual_seed(0)
    moe = MoEFeedForward(dim, ff, experts, top_k).to(device=device, dtype=torch.bfloat16)
    for w in (moe.w_gate_EDF, moe.w_up_EDF, moe.w_down_EDF):
        torch.nn.init.normal_(w, std=0.02)
    torch.nn.init.normal_(moe.router.weight, std=0.02)
    compiled = torch.compile(moe) if (device == "cuda") else moe
    out = {"dim": dim, "ff_dim": ff, "experts": experts, "top_k": top_k, "rows": []}
    for n in sizes:
        x = torch.randn(1, n, dim, device=device, dtype=torch.bfloat16, requires_grad=True)
        valid = torch.ones(1, n, dtype=torch.bool, device=device)
        flops = 6.0 * n * top_k * 3 * dim * ff
        row = {"tokens": n}
        for name, module, impl in (("grouped", moe, "grouped"), ("grouped_compiled", compiled, "grouped"),
                                   ("loop", moe, "loop")):
            moe.impl = impl

            def step(module=module):
                y, stats = module(x, valid)
                (y.float().square().mean() + stats.aux_loss).backward()

            ms = timed(step, warmup=1 if smoke else 3, iters=2 if smoke else 10, device=device)
            row[name] = {"ms": round(ms, 3), "mfu": round(flops / (ms * 1e-3) / PEAK_BF16_FLOPS, 4)}
            print(f"moe {n:>6} tokens {name:<17} {ms:8.2f} ms  MFU {row[name]['mfu']:.1%}", flush=True)
        out["rows"].append(row)
    return out


# ------------------------------------------------------------------------------------ attention
def bench_attention(device: str, smoke: bool) -> dict:
    length, n_docs, heads, head_dim = (512, 4, 4, 16) if smoke else (16384, 10, 12, 64)
    base = length // n_docs
    lengths = [base + (97 * i) % (base // 2) - base // 4 for i in range(n_docs - 1)]
    lengths.append(length - sum(lengths))
    doc = doc_layout(lengths, length, device)[None]
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, heads, length, head_dim, device=device, dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))
    alibi = AlibiScore(alibi_slopes(heads).to(device))
    ctx_eff = sum(n * n for n in lengths) / length
    flops = 12.0 * heads * head_dim * ctx_eff * length  # fwd+bwd attention FLOPs: 12 x width x (query, key) pairs
    result: dict = {"tokens": length, "documents": n_docs, "heads": heads, "head_dim": head_dim}
    spec = encoder_self_mask(doc, 34560, 256)
    if device == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    if device == "cuda":
        spec.block_mask()
        torch.cuda.synchronize()
    result["block_mask_build_ms"] = round((time.perf_counter() - began) * 1e3, 2)

    import torch.nn.functional as F

    for backend in ("flex", "sdpa_materialised"):
        if backend == "flex" and device != "cuda":
            continue  # no flex backward on CPU
        try:
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            if backend == "flex":

                def step():
                    attend(q, k, v, spec, "flex", alibi).float().square().mean().backward()
            else:
                # The additive bias (ALiBi + document mask, -inf outside) is built once, as a
                # model would share it across layers; only attention itself is timed.
                began = time.perf_counter()
                allowed = spec.bool_mask()
                bias = alibi.bias(length, length, q.device)[None]
                additive = torch.where(allowed[:, None], bias, float("-inf")).to(torch.bfloat16)
                del bias, allowed
                spec._bool_mask = None
                if device == "cuda":
                    torch.cuda.synchronize()
                result["materialised_mask_build_ms"] = round((time.perf_counter() - began) * 1e3, 2)
                result["materialised_mask_gb"] = round(additive.numel() * 2 / 1e9, 2)

                def step():
                    out = F.scaled_dot_product_attention(q, k, v, attn_mask=additive)
                    out.float().square().mean().backward()

            ms = timed(step, warmup=1 if smoke else 3, iters=2 if smoke else 10, device=device)
            peak = round(torch.cuda.max_memory_allocated() / 1e9, 2) if device == "cuda" else None
            result[backend] = {"ms": round(ms, 3), "mfu": round(flops / (ms * 1e-3) / PEAK_BF16_FLOPS, 4),
                               "peak_gb": peak}
            print(f"attn {backend:<18} {ms:8.2f} ms  MFU {result[backend]['mfu']:.1%}  peak {peak} GB", flush=True)
        except torch.OutOfMemoryError:
            result[backend] = "out of memory"
            print(f"attn {backend}: out of memory", flush=True)
        additive = None
    return result


# ---------------------------------------------------------------------------------------- model
def training_flops(config: ModelConfig, rows: int, enc_docs: list[int], dec_docs: list[int]) -> dict:
    """Model FLOPs of one fwd+bwd: 6 x active params x tokens + attention (benchmarks/RESULTS.md)."""
    D, H = config.decoder_dim, config.encoder_hidden_size
    gd = config.decoder_kv_heads * config.decoder_head_dim
    S = rows * sum(enc_docs)
    T = rows * sum(dec_docs)
    n_docs = len(enc_docs)
    L = config.num_latents
    N_lat = rows * n_docs * L

    def window_ctx(lengths, radius):  # mean visible keys per query, bidirectional window
        total = 0
        for n in lengths:
            for i in range(n):
                total += min(n - 1, i + radius) - max(0, i - radius) + 1
        return total / sum(lengths)

    def causal_ctx(lengths, lookback):
        total = sum(sum(min(i + 1, lookback) if lookback else i + 1 for i in range(n)) for n in lengths)
        return total / sum(lengths)

    radius = (config.encoder_window_size - 1) // 2 if config.encoder_window_size else 10**9
    flops = {}
    flops["encoder_linear"] = 6 * config.encoder_layers * (4 * H * H + 3 * config.encoder_intermediate_size * H) * S
    flops["encoder_attention"] = 12 * config.encoder_layers * H * window_ctx(enc_docs, radius) * S
    flops["memory_linear"] = 6 * ((H * D if H != D else 0) + 2 * D * D) * S
    if L:
        blocks = 1 + config.compressor_layers
        ffn = 3 * D * config.compressor_ff_dim
        flops["compressor_linear"] = 6 * (
            blocks * (2 * D * D + ffn) * N_lat + 2 * D * gd * S + config.compressor_layers * 2 * D * gd * N_lat
        )
        flops["compressor_attention"] = 12 * D * (sum(enc_docs) / n_docs) * N_lat + 12 * config.compressor_layers * D * L * N_lat
    memory_tokens = N_lat if L else S
    ctx_cross = L if L else sum(enc_docs) / n_docs
    experts = 3 * D * config.decoder_ff_dim * (config.moe_top_k if config.use_moe else 1)
    router = D * config.num_experts if config.use_moe else 0
    per_layer_tokens = (4 * D * D + 2 * D * gd + experts + router) * T + 2 * D * gd * memory_tokens
    flops["decoder_linear"] = 6 * config.decoder_layers * per_layer_tokens
    flops["decoder_attention"] = 12 * config.decoder_layers * D * (causal_ctx(dec_docs, config.decoder_window_size) + ctx_cross) * T
    flops["head"] = 6 * config.vocab_size * D * T
    flops["total"] = sum(flops.values())
    return flops


def compile_layers(model, mode: str | None = None) -> None:
    blocks = list(model.encoder.layers) + list(model.decoder.layers)
    if model.compressor is not None:
        blocks += [model.compressor.read, *model.compressor.layers]
    for block in blocks:
        block.compile(dynamic=False, mode=mode)


def make_batch(config: ModelConfig, rows: int, enc_docs: list[int], dec_docs: list[int], device: str, seed: int):
    g = torch.Generator().manual_seed(seed)
    s_len, t_len = sum(enc_docs), sum(dec_docs)
    input_doc = doc_layout(enc_docs, s_len, "cpu").expand(rows, -1).contiguous()
    decoder_doc = doc_layout(dec_docs, t_len, "cpu").expand(rows, -1).contiguous()
    bp = torch.cat([torch.arange(n) * 5 for n in enc_docs]).int().expand(rows, -1).contiguous()
    batch = dict(
        input_ids=torch.randint(5, min(4096, config.vocab_size), (rows, s_len), generator=g),
        input_doc=input_doc,
        input_bp=bp,
        decoder_ids=torch.randint(0, config.vocab_size, (rows, t_len), generator=g),
        decoder_doc=decoder_doc,
        labels=torch.randint(0, config.vocab_size, (rows, t_len), generator=g),
    )
    batch = {k: v.to(device) for k, v in batch.items()}
    batch["docs_per_row"] = len(enc_docs)
    return batch


ACCUM_MICRO_BATCHES = 4  # micro-batches per timed accumulation run


def bench_model(device: str, smoke: bool, rows: int, enc_doc_tokens: int, dec_doc_tokens: int, n_docs: int,
                steps: int, compile_model: bool, profile: bool = False, compile_mode: str | None = None,
                expert_copies: bool = False) -> dict:
    config = dataclasses.replace(preset("debug" if smoke else "seed"), vocab_size=SEED_VOCAB)
    enc_docs, dec_docs = [enc_doc_tokens] * n_docs, [dec_doc_tokens] * n_docs
    torch.manual_seed(0)
    model = build_empty_model(config, device=device)
    model.init_weights()
    model.bp_digit_token_ids.copy_(torch.arange(4096, 5096) % SEED_VOCAB)
    model.train()
    model.enable_bf16_expert_copies(expert_copies)
    if compile_model:
        compile_layers(model, compile_mode)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=device == "cuda")
    batches = [make_batch(config, rows, enc_docs, dec_docs, device, seed) for seed in range(2)]
    flops = training_flops(config, rows, enc_docs, dec_docs)
    enc_tokens, dec_tokens = rows * sum(enc_docs), rows * sum(dec_docs)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")

    fwd_bwd, full = [], []
    began = time.perf_counter()
    for step in range(2 + steps):  # two warm-up (compile) steps, then timed steps
        batch = batches[step % 2]
        if step == 2 and device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            print(f"model warm-up (compile) {time.perf_counter() - began:.1f} s", flush=True)
        if device == "cuda":
            e0, e1, e2 = (torch.cuda.Event(enable_timing=True) for _ in range(3))
            e0.record()
        t0 = time.perf_counter()
        with autocast:
            out = model(batch, label_smoothing=0.1, return_logits=False)
        out.loss.backward()
        if device == "cuda":
            e1.record()
        t1 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            e2.record()
            e2.synchronize()
            if step >= 2:
                fwd_bwd.append(e0.elapsed_time(e1))
                full.append(e0.elapsed_time(e2))
        elif step >= 2:
            fwd_bwd.append((t1 - t0) * 1e3)
            full.append((time.perf_counter() - t0) * 1e3)
    # Gradient accumulation's steady state: micro-batches' fwd+bwd back to back, no sync or optimizer
    # step between them (the recipe accumulates 64 per step), so a micro-batch's host work (mask
    # building, launches) overlaps the GPU work still queued from the one before.
    accum_ms = []
    for _ in range(steps if device == "cuda" else 1):
        if device == "cuda":
            torch.cuda.synchronize()
            a0, a1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a0.record()
        t0 = time.perf_counter()
        for micro in range(ACCUM_MICRO_BATCHES):
            with autocast:
                out = model(batches[micro % 2], label_smoothing=0.1, return_logits=False)
            out.loss.backward()
        if device == "cuda":
            a1.record()
            a1.synchronize()
            accum_ms.append(a0.elapsed_time(a1) / ACCUM_MICRO_BATCHES)
        else:
            accum_ms.append((time.perf_counter() - t0) * 1e3 / ACCUM_MICRO_BATCHES)
        optimizer.zero_grad(set_to_none=True)
    mask_ms = []
    for batch in batches * 2:  # mask building alone (once per batch, inside every forward above)
        if device == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        model.build_masks(batch)
        if device == "cuda":
            torch.cuda.synchronize()
        mask_ms.append((time.perf_counter() - began) * 1e3)
    if profile and device == "cuda":
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
            with autocast:
                out = model(batches[0], label_smoothing=0.1, return_logits=False)
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=35, max_name_column_width=70),
              flush=True)
    fb, st = statistics.median(fwd_bwd), statistics.median(full)
    result = {
        "rows": rows, "encoder_tokens": enc_tokens, "decoder_tokens": dec_tokens,
        "latents": rows * n_docs * config.num_latents, "documents_per_row": n_docs,
        "fwd_bwd_ms": round(fb, 2), "step_ms": round(st, 2), "mask_build_ms": round(statistics.median(mask_ms), 2),
        "fwd_bwd_accum_ms": round(statistics.median(accum_ms), 2),
        "mfu_fwd_bwd_accum": round(flops["total"] / (statistics.median(accum_ms) * 1e-3) / PEAK_BF16_FLOPS, 4),
        "encoder_tokens_per_s": round(enc_tokens / (fb * 1e-3)),
        "decoder_tokens_per_s": round(dec_tokens / (fb * 1e-3)),
        "tflop_per_step": round(flops["total"] / 1e12, 2),
        "mfu_fwd_bwd": round(flops["total"] / (fb * 1e-3) / PEAK_BF16_FLOPS, 4),
        "mfu_step": round(flops["total"] / (st * 1e-3) / PEAK_BF16_FLOPS, 4),
        "flops_breakdown_tflop": {k: round(v / 1e12, 3) for k, v in flops.items()},
        "loss": round(float(out.loss.detach()), 4),
    }
    if device == "cuda":
        result["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
        result["peak_reserved_gb"] = round(torch.cuda.max_memory_reserved() / 1e9, 2)
    print(json.dumps(result, indent=1), flush=True)
    return result


def run_model(device: str, args) -> dict:
    """The model section; on out-of-memory it records that and retries with one row."""
    import gc

    def once(rows: int) -> dict:
        return bench_model(device, args.smoke, rows, args.enc_doc_tokens, args.dec_doc_tokens, args.docs,
                           args.steps, compile_model=device == "cuda" and not args.no_compile,
                           profile=args.profile, compile_mode=args.flex_mode,
                           expert_copies=args.bf16_expert_copies)

    try:
        result = once(args.rows)
    except torch.OutOfMemoryError as exc:
        note = f"rows={args.rows}: out of memory ({str(exc).splitlines()[0][:200]})"
        print(note, flush=True)
        exc = None  # noqa: F841 - drop the traceback's references to the model
        gc.collect()
        torch.cuda.empty_cache()
        if args.rows == 1:
            return {"error": note}
        result = once(1)
        result["note"] = note
    from torch._dynamo.utils import counters

    result["dynamo"] = {k: dict(v) for k, v in counters.items() if k in ("stats", "recompiles", "graph_break")}
    print("dynamo", result["dynamo"], flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="Write the results as JSON here.")
    parser.add_argument("--smoke", action="store_true", help="Tiny sizes, for checking the script on a CPU.")
    parser.add_argument("--sections", default="moe,attn,model")
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--docs", type=int, default=8, help="Documents (windows) per packed row.")
    parser.add_argument("--enc_doc_tokens", type=int, default=2048, help="Encoder tokens per document.")
    parser.add_argument("--dec_doc_tokens", type=int, default=512, help="Target tokens per document.")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--no_compile", action="store_true")
    parser.add_argument("--profile", action="store_true", help="Print the top CUDA kernels of one model step.")
    parser.add_argument("--bf16_expert_copies", action=argparse.BooleanOptionalAction, default=True,
                        help="Read persistent bf16 copies of the expert weights (GenoforgeModel."
                             "enable_bf16_expert_copies, as tune does on CUDA) instead of casting "
                             "them every forward; --no-bf16_expert_copies casts.")
    parser.add_argument("--encoder_kernel_options", default="auto",
                        help="FlexAttention kernel options of the encoder's self-attention "
                             "(flex.ENCODER_KERNEL_OPTIONS): auto (the package default: "
                             "ENCODER_TILES_SM90 on Hopper), none (torch's choice) or a JSON object.")
    parser.add_argument("--eager_masks", action="store_true",
                        help="Build the block masks eagerly (mask_graphs.GRAPH_BLOCK_MASKS off) instead "
                             "of replaying their CUDA graphs.")
    parser.add_argument("--flex_mode", default=None,
                        help="torch.compile mode for FlexAttention and the model's compiled layers, e.g. "
                             "max-autotune-no-cudagraphs (autotunes tile sizes; longer warm-up). Default: plain.")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.smoke:
        args.rows, args.docs, args.enc_doc_tokens, args.dec_doc_tokens, args.steps = 2, 2, 40, 16, 2
    torch._dynamo.config.cache_size_limit = 64  # never fall back to eager silently
    import genoforge.model.flex as flex
    import genoforge.model.mask_graphs as mask_graphs

    if args.encoder_kernel_options == "none":
        flex.ENCODER_KERNEL_OPTIONS = None
    elif args.encoder_kernel_options != "auto":
        flex.ENCODER_KERNEL_OPTIONS = json.loads(args.encoder_kernel_options)
    mask_graphs.GRAPH_BLOCK_MASKS = not args.eager_masks
    if args.flex_mode and device == "cuda":
        from torch.nn.attention.flex_attention import flex_attention

        flex.flex_attention_fn(torch.device("cuda"))  # the library's setup (recompile limit) first
        flex._compiled_flex = torch.compile(flex_attention, dynamic=False, mode=args.flex_mode)
    torch.set_float32_matmul_precision("high")  # the fp32 router matmuls may use TF32
    results: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "command": " ".join(sys.argv),
        "encoder_kernel_options": flex.encoder_kernel_options(torch.device(device)),
    }
    print(f"{results['device']}  torch {results['torch']}  encoder kernel options "
          f"{results['encoder_kernel_options']}", flush=True)
    sections = args.sections.split(",")
    for name, fn in (
        ("moe", lambda: bench_moe(device, args.smoke)),
        ("attn", lambda: bench_attention(device, args.smoke)),
        ("model", lambda: run_model(device, args)),
    ):
        if name not in sections:
            continue
        try:
            results[name] = fn()
        except torch.OutOfMemoryError as exc:
            results[name] = f"out of memory: {str(exc).splitlines()[0]}"
            print(results[name], flush=True)
        except Exception as exc:  # noqa: BLE001 - record and go on to the next section
            results[name] = f"failed: {type(exc).__name__}: {exc}"
            traceback.print_exc()
        if device == "cuda":
            torch.cuda.empty_cache()
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    if "model" in results and isinstance(results["model"], dict):
        m = results["model"]
        print(f"\nseed model: {m['encoder_tokens']} enc + {m['decoder_tokens']} dec tokens, fwd+bwd {m['fwd_bwd_ms']} ms, "
              f"step {m['step_ms']} ms, MFU {m['mfu_fwd_bwd']:.1%} (fwd+bwd) / {m['mfu_step']:.1%} (step), "
              f"fwd+bwd in accumulation {m['fwd_bwd_accum_ms']} ms ({m['mfu_fwd_bwd_accum']:.1%} MFU), "
              f"peak {m.get('peak_memory_gb')} GB")


if __name__ == "__main__":
    main()
