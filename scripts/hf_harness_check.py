#!/usr/bin/env python3
"""Does scripts/bench_engine.py's way of timing Hugging Face slow HF down? On the real model
(scripts/fetch-real-model), f32 and bf16, 2 threads, 32-token prompt, 64 new tokens, three rounds
of four variants in turn: bench_engine's `hf_runs` as it is (streamer clock, bandwidth probe
before and after each run); the same without the probe; and a plain harness timing whole
`generate` calls (decode = a 64-token run minus a 1-token run) under `no_grad` and under
`inference_mode`. Prints the medians; the raw tokens/s go to the JSON file named by the first
argument. Run it through the bootstrap venv on a quiet machine:

    source scripts/bootstrap && python3 scripts/hf_harness_check.py bench/engine/hf-harness-check.json
"""
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

VARIANTS = [
    ("probe", "bench-engine's HF timing (streamer clock, bandwidth probe)"),
    ("noprobe", "without the probe"),
    ("plain", "whole `generate` calls, `no_grad`"),
    ("plain_inference", "whole calls, `inference_mode`"),
]


def table(record):
    """The medians of a record as a Markdown table."""
    lines = ["| dtype | " + " | ".join(name for _, name in VARIANTS) + " |",
             "|---|" + "---|" * len(VARIANTS)]
    for dtype, v in record.items():
        label = dtype.replace("torch.float32", "f32").replace("torch.bfloat16", "bf16")
        lines.append(f"| {label} | " + " | ".join(f"{v[k]['median']:.1f}" for k, _ in VARIANTS) + " |")
    return "\n".join(lines)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--report":
        print(table(json.loads(Path(sys.argv[2]).read_text())))
        return
    import torch
    from transformers import LlamaForCausalLM
    import bench_engine as be
    be.torch = torch
    torch.set_num_threads(2)
    folder = be.real_model_dir()
    out = {}
    for dtype in [torch.float32, torch.bfloat16]:
        model = LlamaForCausalLM.from_pretrained(folder, dtype=dtype).eval()
        model.generation_config.eos_token_id = None
        cfg = json.loads((folder / "config.json").read_text())
        ids = [(i * 7919 + 13) % (cfg["vocab_size"] - 3) + 3 for i in range(32)]
        probe = be.Bandwidth("cpu")

        class NoProbe:
            def measure(self, reps=3):
                return 0.0

        res = {k: [] for k, _ in VARIANTS}
        x = torch.tensor([ids])

        def plain(inference):
            ctx = torch.inference_mode() if inference else torch.no_grad()
            kw = dict(attention_mask=torch.ones_like(x), do_sample=False, pad_token_id=0)
            with ctx:
                t0 = time.perf_counter()
                model.generate(x, max_new_tokens=1, min_new_tokens=1, **kw)
                t1 = time.perf_counter()
                model.generate(x, max_new_tokens=64, min_new_tokens=64, **kw)
                t2 = time.perf_counter()
            # 63 decode steps: a 64-token run minus a 1-token run (its prefill and set-up).
            return 63 / ((t2 - t1) - (t1 - t0))

        for _ in range(3):
            res["probe"] += [be.tps(q) for q in be.hf_runs(model, ids, 64, 1, 2, "cpu", probe)]
            res["noprobe"] += [be.tps(q) for q in be.hf_runs(model, ids, 64, 1, 2, "cpu", NoProbe())]
            plain(False)
            res["plain"].append(plain(False))
            plain(True)
            res["plain_inference"].append(plain(True))
        out[str(dtype)] = {k: {"median": statistics.median(v), "runs": v} for k, v in res.items()}
        print(str(dtype), {k: round(v["median"], 1) for k, v in out[str(dtype)].items()}, flush=True)
        del model
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/hf-harness-check.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(table(out))


if __name__ == "__main__":
    main()
