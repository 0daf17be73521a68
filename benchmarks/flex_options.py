"""FlexAttention kernel options for the encoder's attention, fwd+bwd, at the seed micro-batch.

Why: the encoder's FlexAttention is the largest single item of a seed training step on an H100
(39.6 ms of ~185, its backward 24.9 ms; benchmarks/RESULTS.md, "Model"), and the model passes
no ``kernel_options``. This times the encoder's own call (12 heads of 64, ALiBi score_mod,
document mask, the model's BlockMask) over 2 rows x 8 documents x 2,048 tokens, once per option
set, each compiled on its own; a set the kernel rejects is reported, not fatal. Each figure is
the median of ``--iters`` timed calls (benchmarks/model.py's ``timed``); the figures of
2026-11-28 in RESULTS.md are the mean of 10 back-to-back calls, the script's method then.

Run (H100): python benchmarks/flex_options.py --out flex_options.json
CPU check of the script (forward only, options ignored): python benchmarks/flex_options.py --smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genoforge.model.attention import AlibiScore, alibi_slopes, encoder_self_mask  # noqa: E402
from model import PEAK_BF16_FLOPS, doc_layout, timed  # noqa: E402  (benchmarks/model.py; this folder is on sys.path)

# Each entry: a label and the kernel_options passed to flex_attention.
OPTION_SETS: list[tuple[str, dict]] = [
    ("default", {}),
    ("tma", {"USE_TMA": True}),
    ("bwd 64/128/128/64 w8 s3", {"BLOCK_M1": 64, "BLOCK_N1": 128, "BLOCK_M2": 128, "BLOCK_N2": 64,
                                 "num_warps": 8, "num_stages": 3}),
    ("bwd 64/64/64/64 w4 s3", {"BLOCK_M1": 64, "BLOCK_N1": 64, "BLOCK_M2": 64, "BLOCK_N2": 64,
                               "num_warps": 4, "num_stages": 3}),
    ("fwd 128/64 w4 s3", {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3}),
    ("fwd 64/128 w4 s3", {"BLOCK_M": 64, "BLOCK_N": 128, "num_warps": 4, "num_stages": 3}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args()
    device = "cpu" if args.smoke or not torch.cuda.is_available() else "cuda"
    rows, docs, doc_len, heads, head_dim = (1, 2, 128, 2, 16) if device == "cpu" else (2, 8, 2048, 12, 64)
    from torch.nn.attention.flex_attention import flex_attention

    torch._dynamo.config.recompile_limit = 64
    doc = doc_layout([doc_len] * docs, docs * doc_len, device).expand(rows, -1).contiguous()
    spec = encoder_self_mask(doc, 34560, 128)
    block_mask = spec.block_mask() if device == "cuda" else None
    alibi = AlibiScore(alibi_slopes(heads).to(device))
    length = docs * doc_len
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    q, k, v = (torch.randn(rows, heads, length, head_dim, device=device, dtype=dtype, requires_grad=device == "cuda")
               for _ in range(3))
    flops = 12.0 * heads * head_dim * doc_len * length * rows  # fwd+bwd attention FLOPs (benchmarks/model.py's rule)
    report: dict = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                    "torch": torch.__version__, "rows": rows, "docs": docs, "doc_len": doc_len,
                    "heads": heads, "head_dim": head_dim, "results": []}
    for label, options in OPTION_SETS:
        entry: dict = {"label": label, "kernel_options": options}
        try:
            if device == "cpu":
                out = flex_attention(q, k, v, score_mod=alibi.score_fn())
                entry["ms"] = None
                entry["out_norm"] = float(out.float().norm())
            else:
                compiled = torch.compile(flex_attention, dynamic=False)

                def step():
                    out = compiled(q, k, v, score_mod=alibi.score_fn(), block_mask=block_mask,
                                   kernel_options=options or None)
                    out.float().square().mean().backward()

                began = time.perf_counter()
                step()
                torch.cuda.synchronize()
                entry["compile_s"] = round(time.perf_counter() - began, 1)
                ms = timed(step, warmup=2, iters=args.iters, device=device)
                entry["ms"] = round(ms, 3)
                entry["mfu"] = round(flops / (ms * 1e-3) / PEAK_BF16_FLOPS, 4)
        except Exception as exc:  # a rejected option set is a result too
            entry["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
        q.grad = k.grad = v.grad = None
        report["results"].append(entry)
        print(json.dumps(entry), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
