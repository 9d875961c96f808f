#!/usr/bin/env python3
"""Makes the committed chat-template reference of the real model (SmolLM2-135M-Instruct, the folder
scripts/fetch-real-model converts): actor/tests/fixtures/smollm2-chat-reference.json, so the Rust
rendering (minijinja) can be checked against transformers without Python.

Run through scripts/make-real-model-reference (fetches the model, bootstraps the pinned venv), or
  python scripts/real_model_chat_reference.py [MODEL_DIR] [OUT]
With the pinned transformers it records, per conversation: the messages, add_generation_prompt,
`apply_chat_template(..., tokenize=False)` (the text) and its token ids (the text encoded without
special tokens, as `apply_chat_template(..., tokenize=True)` does). Only the tokenizer files are read;
rerunning gives the same file.
"""
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("CASRAP_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "casrap")
MODEL = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(
    os.environ.get("CASRAP_REAL_MODEL_DIR") or CACHE / "models" / "smollm2-135m-instruct")
OUT = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "actor/tests/fixtures/smollm2-chat-reference.json"

# A prompt from data/prompts/prompts.csv as one user turn (how episodes send it), one with its own
# system turn (the template then leaves out its default one), a multi-turn conversation without the
# generation prompt, and one with newlines and code.
CONVERSATIONS = [
    ([{"role": "user", "content": "What is the most abundant gas in Earth's atmosphere?"}], True),
    ([{"role": "system", "content": "You answer in one word."},
      {"role": "user", "content": "Capital of France?"}], True),
    ([{"role": "user", "content": "Work out 66 times 64."},
      {"role": "assistant", "content": "66 times 64 is 4224."},
      {"role": "user", "content": "And 66 times 65?"}], False),
    ([{"role": "user", "content": "Fix this:\n\n```python\ndef f(x):\n    return x +\n```"}], True),
]


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(MODEL))
    cases = []
    for messages, gen in CONVERSATIONS:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
        ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        ids = [int(i) for i in ids]
        # The token ids are the rendered text's own encoding, without special tokens added.
        assert ids == tok.backend_tokenizer.encode(text, add_special_tokens=False).ids, messages
        cases.append({"messages": messages, "add_generation_prompt": gen, "text": text, "ids": ids})
    out = {
        "model": MODEL.name,
        "transformers": transformers.__version__,
        "cases": cases,
    }
    OUT.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({len(cases)} conversations)")


if __name__ == "__main__":
    main()
