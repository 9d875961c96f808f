#!/usr/bin/env python3
"""Before/after comparisons of two builds, interleaved on one machine, and their summaries.

  scripts/bench_ab.py decode OLD_ACTOR NEW_ACTOR --model M --dtype D [--pairs 6] [--runs 5]
      `casrap-lab bench-decode` of both binaries, alternating which goes first; one line per
      invocation (`old 49.5`: the median decode tokens/s of its timed runs), then a medians line.
  scripts/bench_ab.py ingest OLD_LEARNER NEW_LEARNER [--pairs 10] [--seconds 15] [--record-bytes 0]
      `casrap-learner bench --config deploy/local.yaml --actors 64 --batch 64 --in-flight 4` of
      both (each transition with an episode record of that many bytes, if not 0); one line per
      invocation (the bench's durable-ingest row, prefixed old/new).
  scripts/bench_ab.py summary FILE
      reprints a saved record (the lines above, under `#` comments and `## section` headings)
      followed by one summary line per section; deploy/tests/bench_records.rs renders `*.ab.txt`
      records with it, so README figures quoted from a summary cannot drift from the raw lines.

Nothing else may run meanwhile: these are timings on a shared machine, which is why the order
alternates and every raw line is kept.
"""
import argparse
import json
import statistics
import subprocess
import sys


def decode(args):
    ids = ",".join(str(i) for i in range(100, 164))
    res = {"old": [], "new": []}
    for p in range(args.pairs):
        for v in (("old", "new") if p % 2 == 0 else ("new", "old")):
            binary = args.old if v == "old" else args.new
            cmd = [binary, "bench-decode", "--model", args.model, "--seed", "0", "--dtype", args.dtype,
                   "--device", "cpu", "--threads", "2", "--new-tokens", "64", "--warmup", "1",
                   "--runs", str(args.runs), "--prompt-ids", ids]
            out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            t = statistics.median(r["decode_steps"] / r["decode_s"] for r in out["runs"])
            res[v].append(t)
            print(v, f"{t:.1f}", flush=True)
    o, n = statistics.median(res["old"]), statistics.median(res["new"])
    print(f"{args.model} {args.dtype}: old median {o:.1f} tok/s, new {n:.1f} tok/s, new/old {n / o:.3f}")


def ingest(args):
    for p in range(args.pairs):
        for v in (("old", "new") if p % 2 == 0 else ("new", "old")):
            binary = args.old if v == "old" else args.new
            cmd = [binary, "bench", "--config", "deploy/local.yaml", "--actors", "64", "--batch", "64",
                   "--in-flight", "4", "--seconds", str(args.seconds), "--record-bytes", str(args.record_bytes)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            row = next(l for l in out.splitlines() if "durable ingest" in l)
            print(f"{v} {row}", flush=True)


def value(line):
    """The measurement of an `old ...`/`new ...` line: its last number."""
    for tok in reversed(line.replace("|", " ").split()):
        try:
            return float(tok)
        except ValueError:
            continue
    return None


def summary(args):
    text = open(args.file).read()
    sections, name = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            name = line[3:].strip()
        label = line.split(" ", 1)[0]
        if label in ("old", "new") and value(line) is not None:
            sections.setdefault(name or "all", {"old": [], "new": []})[label].append(value(line))
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    print("summary (scripts/bench_ab.py summary):")
    for name, s in sections.items():
        if not s["old"] or not s["new"]:
            continue
        parts = []
        for label in ("old", "new"):
            v = s[label]
            parts.append(f"{label} n={len(v)} mean {statistics.mean(v):.1f} median {statistics.median(v):.1f} "
                         f"min {min(v):.1f} max {max(v):.1f}")
        mean_ratio = statistics.mean(s["new"]) / statistics.mean(s["old"])
        median_ratio = statistics.median(s["new"]) / statistics.median(s["old"])
        print(f"{name}: {'; '.join(parts)}; new/old mean {mean_ratio:.3f}, median {median_ratio:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("decode")
    d.add_argument("old")
    d.add_argument("new")
    d.add_argument("--model", required=True)
    d.add_argument("--dtype", default="f32")
    d.add_argument("--pairs", type=int, default=6)
    d.add_argument("--runs", type=int, default=5)
    i = sub.add_parser("ingest")
    i.add_argument("old")
    i.add_argument("new")
    i.add_argument("--pairs", type=int, default=10)
    i.add_argument("--seconds", type=int, default=15)
    i.add_argument("--record-bytes", type=int, default=0)
    s = sub.add_parser("summary")
    s.add_argument("file")
    args = ap.parse_args()
    {"decode": decode, "ingest": ingest, "summary": summary}[args.cmd](args)


if __name__ == "__main__":
    main()
