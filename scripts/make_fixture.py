#!/usr/bin/env python3
"""Makes the Hugging Face parity fixture: a tiny random LLaMA plus HF's own outputs for it.

Run through scripts/make-fixture (which bootstraps the pinned venv). Writes
actor/tests/fixtures/tiny-llama/:
  config.json, generation_config.json, model.safetensors, tokenizer.json   (an HF model folder)
  expected.safetensors   logits of every position of input N (eager attention): `logits.N` from
                         the f32 model, `logits_bf16.N` / `logits_f16.N` from the same weights
                         loaded in bf16 / f16 (stored as f32)
  expected.json          the inputs' token ids, HF's 16-token greedy continuations, versions
The model has GQA (4 query / 2 KV heads), llama3 rope scaling with a short original context (so
all three frequency bands occur within 64 positions), tied embeddings, non-unit norm weights and a
large init so logits differ clearly between tokens. Everything is seeded: rerunning reproduces it.
"""
import json
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "actor/tests/fixtures/tiny-llama")
TEXT = """The learner keeps the replay buffer on disk and trains the policy.
Each actor measures the dense and the pruned model on the same prompt.
Attention heads, feed-forward channels and whole layers can be removed at run time.
A small model decodes quickly; a large one is limited by memory bandwidth.
Rotary position embeddings rotate query and key vectors by an angle that grows with position.
"""
INPUTS = [
    "The learner",
    "Each actor measures the dense and the pruned model.",
    "Rotary position embeddings rotate query and key vectors by an angle; a small model decodes quickly.",
]


def make_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|begin|>", "<|end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TEXT.splitlines(), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin|> $A", special_tokens=[("<|begin|>", 0)]
    )
    return tok


def main() -> None:
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer()
    vocab = tok.get_vocab_size()
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32,
        },
        tie_word_embeddings=True,
        initializer_range=0.2,
        bos_token_id=0,
        eos_token_id=[1],
        attn_implementation="eager",
    )
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    model.save_pretrained(OUT, safe_serialization=True)
    tok.save(str(OUT / "tokenizer.json"))

    expected = {"transformers": transformers.__version__, "torch": torch.__version__, "inputs": []}
    tensors = {}
    with torch.no_grad():
        for i, text in enumerate(INPUTS):
            ids = tok.encode(text).ids
            x = torch.tensor([ids])
            tensors[f"logits.{i}"] = model(x).logits[0].float().contiguous()
            out = model.generate(x, max_new_tokens=16, do_sample=False, attention_mask=torch.ones_like(x))
            expected["inputs"].append({"text": text, "ids": ids, "greedy": out[0, len(ids):].tolist()})
    for name, dtype in [("bf16", torch.bfloat16), ("f16", torch.float16)]:
        half = LlamaForCausalLM.from_pretrained(OUT, dtype=dtype, attn_implementation="eager").eval()
        with torch.no_grad():
            for i, inp in enumerate(expected["inputs"]):
                tensors[f"logits_{name}.{i}"] = half(torch.tensor([inp["ids"]])).logits[0].float().contiguous()
    save_file(tensors, str(OUT / "expected.safetensors"))
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(f"wrote {OUT} (vocab {vocab}, {sum(p.numel() for p in model.parameters())} parameters)")


if __name__ == "__main__":
    main()
