#!/usr/bin/env python3
"""Decode speed of our engine vs Hugging Face `generate` on the same model, in one run.

Run through scripts/bench-engine. Both engines run the same weights: each case's synthetic preset is
exported once (by `casrap-lab export-synthetic`, same seed and dtype) to an HF folder that HF loads,
while our engine builds the identical tensors from the seed. Batch 1, greedy, EOS ignored,
fixed-length decode, prompt and new-token counts equal for both. Decode tokens/s counts the forward
passes after the first new token, over the time from the first new token to the last, for both
engines (HF's time points come from a streamer). Order is ABBA (ours, HF, HF, ours), each block
after its own warm-up. The ceiling is the read bandwidth of a large reduction (torch's sum over
1 GiB of f32, same thread budget) divided by the weight bytes read per decoded token; bandwidth is
measured right before and right after every timed run, by each engine's process, because on a
shared machine it drifts by tens of percent within minutes. Each run's ceiling uses the mean of its
two probes, and its efficiency is its tokens/s over that ceiling. Raw records go to runs/bench-engine-*.json.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# torch and transformers are imported in main() once a benchmark runs: `--report` (reprinting a
# committed record, as the bench-records test does) needs neither.
torch = None
LlamaForCausalLM = None

CASES = {
    "tiny-f32": ("tiny", "f32", "float32", 5.0, None),
    "1b-f32": ("llama-3.2-1b", "f32", "float32", 1.2, 0.85),
    "1b-bf16": ("llama-3.2-1b", "bf16", "bfloat16", 1.2, 0.70),
    # The real pretrained model (scripts/fetch-real-model), f32 weights; bf16 converts at load.
    "real-f32": ("real", "f32", "float32", 1.2, None),
    "real-bf16": ("real", "bf16", "bfloat16", 1.2, None),
}


def real_model_dir():
    """The folder scripts/fetch-real-model makes (CASRAP_REAL_MODEL overrides)."""
    cache = os.environ.get("CASRAP_CACHE", os.path.expanduser("~/.cache/casrap"))
    return Path(os.environ.get("CASRAP_REAL_MODEL", os.path.join(cache, "models/smollm2-135m-instruct")))


class Load:
    """`n` busy processes (one spinning shell each) for the lifetime of a case: a fixed competing
    load, as other work sharing an actor's cores."""

    def __init__(self, n: int):
        self.procs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(n)]

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()


class Bandwidth:
    """Read bandwidth of a 1 GiB f32 sum: median of `reps` after one warm-up (as casrap-actor's probe)."""

    def __init__(self, device: str):
        self.x = torch.ones(256 * 1024 * 1024, dtype=torch.float32, device=device)
        self.cuda = device.startswith("cuda")

    def measure(self, reps: int = 3) -> float:
        rates = []
        for _ in range(reps + 1):
            if self.cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            self.x.sum().item()
            if self.cuda:
                torch.cuda.synchronize()
            rates.append(self.x.numel() * 4 / (time.perf_counter() - t))
        return statistics.median(rates[1:])


class Clock:
    """HF streamer that timestamps the prompt and every new token."""

    def __init__(self, device: str):
        self.t = []
        self.cuda = device.startswith("cuda")

    def put(self, _value):
        if self.cuda:
            torch.cuda.synchronize()
        self.t.append(time.perf_counter())

    def end(self):
        pass


def hf_runs(model, ids, new_tokens, warmup, runs, device, probe):
    x = torch.tensor([ids], device=device)
    out = []
    for i in range(warmup + runs):
        before = probe.measure() if i >= warmup else None
        clock = Clock(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            gen = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, do_sample=False, streamer=clock, pad_token_id=0)
        t = clock.t  # t[0]: prompt, t[1]: first new token, t[-1]: last
        if i >= warmup:
            out.append({"read_bandwidth_bytes_s": [before, probe.measure()], "prefill_ms": (t[1] - t0) * 1e3, "decode_steps": len(t) - 2,
                        "decode_s": t[-1] - t[1], "tokens": gen[0, len(ids):].tolist()})
    return out


def ours_runs(binary, preset, dtype, ids, new_tokens, warmup, runs, threads, device, seed):
    model = str(real_model_dir()) if preset == "real" else f"synthetic:{preset}"
    cmd = [binary, "bench-decode", "--model", model, "--seed", str(seed), "--dtype", dtype,
           "--device", device, "--threads", str(threads), "--new-tokens", str(new_tokens),
           "--warmup", str(warmup), "--runs", str(runs), "--bandwidth", "--prompt-ids", ",".join(map(str, ids))]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(res.stdout)


def tps(r):
    return r["decode_steps"] / r["decode_s"]


def bandwidth(r):
    return statistics.mean(r["read_bandwidth_bytes_s"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin")
    ap.add_argument("--report", help="print the table of a saved raw record and exit")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3, help="timed runs per block (4 blocks: ABBA)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=os.environ.get("CASRAP_BENCH_CACHE",
                    os.path.join(os.environ.get("CASRAP_CACHE", os.path.expanduser("~/.cache/casrap")), "bench-models")))
    ap.add_argument("--out", default="runs")
    ap.add_argument("--load", type=int, default=0,
                    help="busy processes competing for the cores during every case (0: a quiet machine)")
    args = ap.parse_args()
    if args.report:
        print_table(json.loads(Path(args.report).read_text()))
        return
    if not args.bin:
        ap.error("--bin is required unless --report is given")
    global torch, LlamaForCausalLM
    import torch
    from transformers import LlamaForCausalLM

    torch.set_num_threads(args.threads)
    probe = Bandwidth(args.device)
    record = {"device": args.device, "threads": args.threads, "load": args.load, "bin": args.bin,
              "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens, "cases": {}}
    for name in args.cases.split(","):
        preset, dtype, tdtype, _, _ = CASES[name]
        tdtype = getattr(torch, tdtype)
        folder = real_model_dir() if preset == "real" else Path(args.cache) / f"{preset}-seed{args.seed}-{dtype}"
        if preset == "real" and not (folder / "model.safetensors").exists():
            sys.exit(f"{folder}: no model.safetensors; run scripts/fetch-real-model first")
        if not (folder / "model.safetensors").exists():
            print(f"[{name}] exporting {folder}", flush=True)
            subprocess.run([args.bin, "export-synthetic", "--preset", preset, "--seed", str(args.seed),
                            "--dtype", dtype, "--out", str(folder)], check=True, stdout=subprocess.DEVNULL)
        cfg = json.loads((folder / "config.json").read_text())
        vocab = cfg["vocab_size"]
        ids = [(i * 7919 + 13) % (vocab - 3) + 3 for i in range(args.prompt_tokens)]
        print(f"[{name}] loading HF model", flush=True)
        model = LlamaForCausalLM.from_pretrained(folder, dtype=tdtype)
        if next(model.parameters()).dtype != tdtype:  # transformers < 4.56 ignores `dtype`
            model = model.to(tdtype)
        model = model.to(args.device).eval()
        model.generation_config.eos_token_id = None
        common = (ids, args.new_tokens, args.warmup, args.runs)
        print(f"[{name}] ours / HF / HF / ours" + (f", {args.load} busy processes" if args.load else ""), flush=True)
        load = Load(args.load)
        try:
            a1 = ours_runs(args.bin, preset, dtype, *common, args.threads, args.device, args.seed)
            b1 = hf_runs(model, *common, args.device, probe)
            b2 = hf_runs(model, *common, args.device, probe)
            a2 = ours_runs(args.bin, preset, dtype, *common, args.threads, args.device, args.seed)
        finally:
            load.close()
        del model
        record["cases"][name] = {"preset": preset, "dtype": dtype,
                                 "weight_bytes_per_token": a1["weight_bytes_per_token"],
                                 "ours": a1["runs"] + a2["runs"], "hf": b1 + b2}

    out = Path(args.out) if args.out.endswith(".json") else Path(args.out) / f"bench-engine-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print()
    print_table(record)
    print(f"\nraw records: {out} (reprint with: scripts/bench-engine --report {out})")


def print_table(record):
    """The table, computed from a raw record only (so a saved record reprints the same table)."""
    runs = len(next(iter(record["cases"].values()))["ours"])
    load = record.get("load", 0)
    print(f"decode tokens/s, batch 1, greedy, {record['prompt_tokens']}-token prompt, {record['new_tokens']} new tokens, "
          f"{record['threads']} threads, {record['device']}; medians of {runs} runs each (ABBA)"
          + (f"; {load} busy processes competing for the cores" if load else ""))
    print("| case | ours tok/s (min-max) | HF tok/s | ours/HF | ceiling tok/s | ours/ceiling | read GB/s (min-max) | prefill ms ours / HF | same greedy tokens | target |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, c in record["cases"].items():
        _, _, _, min_ratio, min_ceil = CASES[name]
        ours, hf, wbytes = c["ours"], c["hf"], c["weight_bytes_per_token"]
        o = statistics.median(map(tps, ours))
        h = statistics.median(map(tps, hf))
        bws = [b for r in ours + hf for b in r["read_bandwidth_bytes_s"]]
        ceil = statistics.median(bws) / wbytes
        frac = statistics.median(tps(r) / (bandwidth(r) / wbytes) for r in ours)
        same = all(r["tokens"] == hf[0]["tokens"] for r in ours)
        po = statistics.median(r["prefill_ms"] for r in ours)
        ph = statistics.median(r["prefill_ms"] for r in hf)
        target = f">= {min_ratio}x HF" + (f", >= {min_ceil:.0%} ceiling" if min_ceil else "")
        ok = o / h >= min_ratio and (min_ceil is None or frac >= min_ceil)
        print(f"| {name} | {o:.1f} ({min(map(tps, ours)):.1f}-{max(map(tps, ours)):.1f}) | {h:.1f} | {o / h:.2f}x | "
              f"{ceil:.1f} | {frac:.0%} | {min(bws) / 1e9:.0f}-{max(bws) / 1e9:.0f} | {po:.1f} / {ph:.1f} | "
              f"{'yes' if same else 'no'} | {target}: {'met' if ok else 'NOT met'} |")


if __name__ == "__main__":
    sys.exit(main())
