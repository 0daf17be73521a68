"""Predict throughput (bp/s) of the whole `genoforge predict` pipeline, random weights.

Run (on an H100): python benchmarks/predict.py --presets small,seed --out predict.json
CPU smoke test of the script: python benchmarks/predict.py --smoke
Host side of decoding alone (no model): python benchmarks/predict.py --host_only --batch_sizes 256
The decoder step is replayed from a CUDA graph on CUDA by default, as in `genoforge predict`;
compare with the eager step on the same machine:
python3 benchmarks/predict.py --presets small,seed --batch_sizes 256 --seconds 25 --no-cuda_graphs

What is timed: :func:`genoforge.inference.predict.predict_genome` end to end on a random genome
(FASTA reading, tokenization, encoder, constrained decoding with continuous batching, stitching,
GFF3 writing), after a warm-up run that also compiles the encoder's FlexAttention kernels.

Random weights decide nothing about target length, so the benchmark fixes it: ``<eos>`` is pushed
down until each window has decoded ``--target_tokens`` tokens (the grammar still constrains every
token; the window is then cut back to its last complete record). 256 is about the mean target of
real 10 kb windows of the shared genomes (athal 203, fly 234, yeast 216, oscillibacter 332).

Window 10,000 bp, overlap 2,500 (the recipe's bake settings): each window adds 7,500 bp.
The main run's genome is sized from the warm-up's speed to take about ``--seconds``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genoforge.inference import stream as stream_module  # noqa: E402
from genoforge.inference.predict import predict_genome  # noqa: E402
from genoforge.inference.predict_config import PredictConfig  # noqa: E402
from genoforge.inference.predictor import Predictor  # noqa: E402
from genoforge.model.config import preset  # noqa: E402
from genoforge.model.io import build_empty_model  # noqa: E402


def tokenizer_dir(root: Path) -> Path:
    """DNABERT-2's tokenizer + the built-in inventory (what `genoforge model init` writes)."""
    from genoforge.tokenizer.core import dnabert2_tokenizer_path
    from genoforge.tokenizer.edit import ensure_builtin_tokens

    directory = root / "tokenizer"
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(dnabert2_tokenizer_path(), directory / "tokenizer.json")
    ensure_builtin_tokens(directory)
    return directory


def write_genome(path: Path, contigs: int, contig_length: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    with open(path, "w") as handle:
        for c in range(contigs):
            seq = bases[rng.integers(0, 4, contig_length)].tobytes().decode()
            handle.write(f">ctg{c}\n")
            handle.writelines(seq[i : i + 80] + "\n" for i in range(0, contig_length, 80))
    return path


def fixed_length_step(target_tokens: int, eos_id: int):
    """row_step with <eos> pushed down until a row has decoded ``target_tokens`` tokens.

    Device work only (no host sync), so with ``--cuda_graphs`` it is captured with the step:
    GraphedRowStep captures ``genoforge.inference.stream.row_step`` as bound when it builds its
    graph, and decode_stream's eager default reads it at each call.
    """
    original = stream_module.row_step

    def step(model, token_ids, cache, active):
        logits = original(model, token_ids, cache, active)
        early = cache.position_B < target_tokens  # position already advanced past this input
        logits[:, eos_id] = torch.where(early, logits[:, eos_id] - 1e4, logits[:, eos_id])
        return logits

    return step


def bench_preset(name: str, args, root: Path, tok_dir: Path) -> dict:
    from genoforge.model.model import GenoforgeModel  # noqa: F401 (import check)
    from genoforge.tokenizer.core import GenoTokenizer

    device = torch.device(args.device)
    tokenizer = GenoTokenizer.load(tok_dir)
    config = dataclasses.replace(preset(name), vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_id,
                                 decoder_dropout=0.0, encoder_dropout=0.0)
    torch.manual_seed(0)
    model = build_empty_model(config, device=device)
    model.init_weights()
    with torch.no_grad():
        model.bp_digit_token_ids.copy_(torch.tensor([tokenizer.token_to_id(str(i)) for i in range(1000)]))
    if device.type == "cuda":
        model = model.to(torch.bfloat16)
    model.eval()
    out = {"preset": name, "device": str(device), "cuda_graphs": args.cuda_graphs, "runs": []}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    for batch_size in args.batch_sizes:
        run = {"batch_size": batch_size}
        try:
            predict_config = PredictConfig(window_size=args.window_size, overlap=args.window_size // 4,
                                           batch_size=batch_size, max_new_tokens=args.target_tokens + 16,
                                           device=str(device), cuda_graphs=args.cuda_graphs)
            predictor = Predictor(model, tokenizer, predict_config)
            stream_module.row_step = fixed_length_step(args.target_tokens, tokenizer.eos_id)
            stride = args.window_size - args.window_size // 4
            # Warm-up (compiles; sizes the main run): two batches' worth of windows.
            warm_windows = 2 * batch_size
            warm = write_genome(root / f"warm-{name}-{batch_size}.fa", 1, warm_windows * stride + args.window_size, 1)
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats(device)
            started = time.perf_counter()
            predict_genome(tok_dir, warm, root / "warm.gff3", predict_config, predictor=predictor)
            warm_seconds = time.perf_counter() - started
            warm_rate = warm_windows * stride / warm_seconds
            contig = 1_000_000 if not args.smoke else 20 * stride + args.window_size
            contigs = max(1, min(args.max_contigs, round(warm_rate * args.seconds / contig)))
            genome = write_genome(root / f"main-{name}-{batch_size}.fa", contigs, contig, 2)
            predictor.target_tokens = 0
            if device.type == "cuda":
                torch.cuda.synchronize()
            result = predict_genome(tok_dir, genome, root / "main.gff3", predict_config, predictor=predictor)
            if device.type == "cuda":
                torch.cuda.synchronize()
                run["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            run.update(
                warmup_seconds=round(warm_seconds, 1),
                bases=result.bases,
                windows=result.windows,
                seconds=round(result.seconds, 2),
                bp_per_second=round(result.bp_per_second),
                windows_per_second=round(result.windows / result.seconds, 1),
                target_tokens_per_second=round(predictor.target_tokens / result.seconds),
                mean_target_tokens=round(predictor.target_tokens / max(result.decoded_windows, 1), 1),
            )
        except Exception as exc:  # noqa: BLE001 - report and go on to the next size
            run["error"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        finally:
            stream_module.row_step = stream_module.__dict__.get("_original_row_step", stream_module.row_step)
        print(json.dumps({name: run}), flush=True)
        out["runs"].append(run)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    del model
    return out


def bench_host(batch_size: int, args, tok_dir: Path, steps: int = 400) -> dict:
    """Host milliseconds per decoding step of the grammar side alone (no model): random logits
    for ``batch_size`` rows, ``<eos>`` pushed down until a row has ``--target_tokens`` tokens,
    rows refilled as windows end (as in continuous batching), windows of 10 kb and 7.3 kb.

    ``masks`` is :meth:`GrammarRows.masks` (on a GPU mostly the index copy: the gather runs
    there), ``grammar`` the per-row advance loop with its bookkeeping, and ``argmax`` the masked
    argmax, device work on a GPU, reported apart. CPU time of this process (a shared machine).
    """
    from genoforge.inference.decode import GrammarCache, GrammarRows
    from genoforge.tokenizer.core import GenoTokenizer

    tokenizer = GenoTokenizer.load(tok_dir)
    width, eos, bos = tokenizer.vocab_size, tokenizer.eos_id, tokenizer.bos_id
    generator = torch.Generator().manual_seed(0)
    pool = [torch.randn(batch_size, width, generator=generator) * 5 for _ in range(16)]
    grammars = GrammarCache(tokenizer)
    lengths = [10_000, 10_000, 10_000, 7_321]  # most windows share a length
    rows = GrammarRows(batch_size, "cpu")
    tokens: list[list[int]] = [[] for _ in range(batch_size)]
    started = windows = 0

    def start(b: int) -> None:
        nonlocal started
        rows.start(b, grammars(lengths[started % len(lengths)]), bos)
        tokens[b] = [bos]
        started += 1

    for b in range(batch_size):
        start(b)
    spent = {"masks": 0.0, "argmax": 0.0, "grammar": 0.0}
    for step in range(steps):
        logits = pool[step % len(pool)].clone()
        decoded = torch.tensor([len(t) for t in tokens])
        logits[:, eos] = torch.where(decoded < args.target_tokens, logits[:, eos] - 1e4, logits[:, eos])
        t0 = time.process_time()
        mask = rows.masks(width)
        t1 = time.process_time()
        picked = torch.where(mask, logits, float("-inf")).argmax(dim=-1).tolist()
        t2 = time.process_time()
        for b in range(batch_size):
            tokens[b].append(picked[b])
            if rows.advance(b, picked[b]) or len(tokens[b]) > args.target_tokens + 16:
                windows += 1
                rows.stop(b)
                start(b)
        t3 = time.process_time()
        spent["masks"] += t1 - t0
        spent["argmax"] += t2 - t1
        spent["grammar"] += t3 - t2
    per_step = {f"{k}_ms": round(1000 * v / steps, 3) for k, v in spent.items()}
    host = per_step["masks_ms"] + per_step["grammar_ms"]
    return {"batch_size": batch_size, "steps": steps, "windows": windows, **per_step,
            "host_ms_per_step": round(host, 3), "host_us_per_row": round(1000 * host / batch_size, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="small,seed")
    parser.add_argument("--batch_sizes", default="128,256")
    parser.add_argument("--target_tokens", type=int, default=256)
    parser.add_argument("--window_size", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30.0, help="aimed length of each main run")
    parser.add_argument("--max_contigs", type=int, default=40)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true", help="CPU, debug preset, tiny sizes")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    parser.add_argument("--host_only", action="store_true",
                        help="time only the grammar side of decoding (no model; see bench_host)")
    parser.add_argument("--cuda_graphs", action=argparse.BooleanOptionalAction, default=None,
                        help="replay the decoder step from a CUDA graph (PredictConfig.cuda_graphs); "
                             "default: as predict (on for CUDA when the model allows it)")
    args = parser.parse_args()
    if args.smoke:
        args.presets, args.batch_sizes, args.window_size, args.seconds = "debug", "4", 2_000, 2.0
        args.target_tokens, args.device = 64, "cpu"
    args.batch_sizes = [int(b) for b in str(args.batch_sizes).split(",")]
    if args.device == "cpu" and args.threads:
        torch.set_num_threads(args.threads)  # a shared small CPU: oversubscribed torch threads crawl
    stream_module._original_row_step = stream_module.row_step
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python"] + sys.argv),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "target_tokens": args.target_tokens,
        "window_size": args.window_size,
        "cuda_graphs": args.cuda_graphs,
        "results": [],
    }
    with tempfile.TemporaryDirectory(prefix="genoforge-bench-predict-") as tmp:
        root = Path(tmp)
        tok_dir = tokenizer_dir(root)
        if args.host_only:
            torch.set_num_threads(1)
            from results_md import machine  # benchmarks/ is on sys.path as the script's folder

            report["machine"] = machine()
            for batch_size in args.batch_sizes:
                report["results"].append(bench_host(batch_size, args, tok_dir))
                print(json.dumps(report["results"][-1]), flush=True)
            if args.out is not None:
                args.out.write_text(json.dumps(report, indent=2) + "\n")
            return
        for name in args.presets.split(","):
            report["results"].append(bench_preset(name, args, root, tok_dir))
    text = json.dumps(report, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    if args.cuda_graphs is not False and args.device != "cpu":
        print("\ndecoder step from a CUDA graph (unless the model's experts cannot be captured)")
    print("\n| preset | device | batch | bp/s | windows/s | target tokens/s | seconds | peak GiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for result in report["results"]:
        for run in result["runs"]:
            if "error" in run:
                print(f"| {result['preset']} | {result.get('gpu', result['device'])} | {run['batch_size']} | "
                      f"error: {run['error'][:80]} | | | | |")
                continue
            print(f"| {result['preset']} | {result.get('gpu', result['device'])} | {run['batch_size']} | "
                  f"{run['bp_per_second']:,} | {run['windows_per_second']} | {run['target_tokens_per_second']:,} | "
                  f"{run['seconds']} | {run.get('peak_memory_gib', '-')} |")


if __name__ == "__main__":
    main()
