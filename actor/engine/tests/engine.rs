//! The engine against Hugging Face: the committed fixture (made by scripts/make_fixture.py with
//! pinned transformers) is loaded through the same path as a real model.

use std::path::{Path, PathBuf};

use casrap_engine as engine;
use casrap_engine::resolve::{Download, ModelSource, Resolver};
use casrap_engine::{generate, sampling::Sampling, Logits};
use tch::{Device, Kind, Tensor};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-llama")
}

#[derive(serde::Deserialize)]
struct Expected {
    inputs: Vec<ExpectedInput>,
}
#[derive(serde::Deserialize)]
struct ExpectedInput {
    text: String,
    ids: Vec<u32>,
    greedy: Vec<u32>,
}

fn expected() -> (Expected, Vec<Tensor>) {
    let json = std::fs::read_to_string(fixture().join("expected.json")).expect("expected.json");
    let e: Expected = serde_json::from_str(&json).expect("parse expected.json");
    let named = Tensor::read_safetensors(fixture().join("expected.safetensors"))
        .expect("expected.safetensors");
    let logits = (0..e.inputs.len())
        .map(|i| {
            named
                .iter()
                .find(|(n, _)| *n == format!("logits.{i}"))
                .expect("logits.N")
                .1
                .shallow_clone()
        })
        .collect();
    (e, logits)
}

fn resolver() -> Resolver {
    Resolver { hub_cache: PathBuf::from("/nonexistent-hf-cache"), download: Download::Forbidden }
}

fn load(dir: &Path, kind: Kind) -> casrap_engine::Result<engine::LoadedModel> {
    let source = resolver().resolve(dir.to_str().expect("utf-8 path"))?;
    engine::load(&source, kind, Device::Cpu, 0)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn logits_match_hugging_face_f32() {
    let m = load(&fixture(), Kind::Float).expect("fixture loads");
    let (e, logits) = expected();
    for (input, want) in e.inputs.iter().zip(&logits) {
        assert_eq!(
            m.tokenizer.encode(&input.text).expect("encode"),
            input.ids,
            "tokenizer differs from HF"
        );
        let got = generate::full_logits(&m.model, &input.ids);
        assert_eq!(got.size(), want.size());
        let diff = max_abs_diff(&got, want);
        eprintln!("f32 vs HF, {} tokens: max |logit diff| {diff:.3e}", input.ids.len());
        assert!(diff <= 1e-4, "max |logit diff| {diff} > 1e-4 for {:?}", input.text);
    }
}

#[test]
fn greedy_continuation_matches_hugging_face() {
    let m = load(&fixture(), Kind::Float).expect("fixture loads");
    let (e, _) = expected();
    for input in &e.inputs {
        let opts = generate::GenerateOptions {
            max_new_tokens: 16,
            sampling: Sampling::Greedy,
            ignore_eos: false,
        };
        let g = generate::generate(&m.model, &input.ids, &opts).expect("generate");
        assert_eq!(g.tokens, input.greedy, "greedy tokens differ for {:?}", input.text);
    }
}

#[test]
fn kv_cache_decode_matches_full_recomputation() {
    let m = load(&fixture(), Kind::Float).expect("fixture loads");
    let (e, _) = expected();
    let ids = &e.inputs[2].ids;
    let full = generate::full_logits(&m.model, ids);
    let _g = tch::no_grad_guard();
    // Prefill a prefix of 5, then one token at a time; then a chunked prefill (two chunks of T > 1).
    let mut cache = m.model.new_cache(1, ids.len());
    let t = |s: &[u32]| generate::token_batch(s, Device::Cpu);
    let pre = m.model.forward(&t(&ids[..5]), &mut cache, Logits::All).squeeze_dim(0);
    // Different matmul shapes round differently in f32: the bar is the HF parity bar, 1e-4.
    assert!(max_abs_diff(&pre, &full.narrow(0, 0, 5)) <= 1e-4);
    for (i, &tok) in ids.iter().enumerate().skip(5) {
        let step = m.model.forward(&t(&[tok]), &mut cache, Logits::Last).squeeze_dim(0);
        let diff = max_abs_diff(&step, &full.get(i as i64));
        assert!(diff <= 1e-4, "position {i}: cached decode differs from recomputation by {diff}");
    }
    let mut cache = m.model.new_cache(1, ids.len());
    let a = m.model.forward(&t(&ids[..7]), &mut cache, Logits::All).squeeze_dim(0);
    let b = m.model.forward(&t(&ids[7..]), &mut cache, Logits::All).squeeze_dim(0);
    let diff = max_abs_diff(&Tensor::cat(&[a, b], 0), &full);
    assert!(diff <= 1e-4, "chunked prefill differs by {diff}");
}

/// Copies the fixture into a temp folder, minus the files `skip` names.
fn copy_fixture(skip: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["config.json", "tokenizer.json", "model.safetensors", "generation_config.json"] {
        if !skip.contains(&f) {
            std::fs::copy(fixture().join(f), dir.path().join(f)).expect("copy");
        }
    }
    dir
}

fn fixture_tensors() -> Vec<(String, Tensor)> {
    Tensor::read_safetensors(fixture().join("model.safetensors")).expect("read fixture weights")
}

#[test]
fn sharded_checkpoint_loads_the_same_model() {
    let dir = copy_fixture(&["model.safetensors"]);
    let mut tensors = fixture_tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let half = tensors.len() / 2;
    let mut weight_map = serde_json::Map::new();
    for (i, part) in [&tensors[..half], &tensors[half..]].into_iter().enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", i + 1);
        let refs: Vec<(&str, &Tensor)> = part.iter().map(|(n, t)| (n.as_str(), t)).collect();
        Tensor::write_safetensors(&refs, dir.path().join(&file)).expect("write shard");
        for (n, _) in part {
            weight_map.insert(n.clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(dir.path().join("model.safetensors.index.json"), index.to_string())
        .expect("index");
    let sharded = load(dir.path(), Kind::Float).expect("sharded loads");
    let single = load(&fixture(), Kind::Float).expect("single loads");
    let ids = &expected().0.inputs[1].ids;
    let a = generate::full_logits(&sharded.model, ids);
    let b = generate::full_logits(&single.model, ids);
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}

/// bf16 / f16 logits are compared with HF's at the same dtype: ours may not stray further from HF's
/// than HF's own half-precision logits stray from f32, and must pick the same top-1 token nearly
/// everywhere.
#[test]
fn half_precision_dtypes_match_hugging_face() {
    let named = Tensor::read_safetensors(fixture().join("expected.safetensors"))
        .expect("expected.safetensors");
    let get = |n: String| {
        named
            .iter()
            .find(|(k, _)| *k == n)
            .expect("tensor in expected.safetensors")
            .1
            .shallow_clone()
    };
    let (e, f32_logits) = expected();
    for (kind, tag) in [(Kind::BFloat16, "bf16"), (Kind::Half, "f16")] {
        let m = load(&fixture(), kind).expect("loads in half precision");
        for (i, input) in e.inputs.iter().enumerate() {
            let hf = get(format!("logits_{tag}.{i}"));
            let got = generate::full_logits(&m.model, &input.ids);
            let diff = max_abs_diff(&got, &hf);
            let hf_vs_f32 = max_abs_diff(&hf, &f32_logits[i]);
            let agree = got
                .argmax(-1, false)
                .eq_tensor(&hf.argmax(-1, false))
                .to_kind(Kind::Float)
                .mean(Kind::Float)
                .double_value(&[]);
            eprintln!("{tag} input {i}: |ours - hf| {diff:.4}, |hf - hf_f32| {hf_vs_f32:.4}, top-1 agreement {agree:.3}");
            assert!(
                diff <= hf_vs_f32.max(1e-3),
                "{tag} input {i}: max diff to HF {diff} > HF's own {hf_vs_f32}"
            );
            assert!(agree >= 0.9, "{tag} input {i}: top-1 agreement with HF only {agree}");
        }
    }
}

#[test]
fn sampling_is_seeded() {
    let m = load(&fixture(), Kind::Float).expect("fixture loads");
    let ids = &expected().0.inputs[0].ids;
    let run = |seed| {
        let opts = generate::GenerateOptions {
            max_new_tokens: 24,
            sampling: Sampling::new(1.5, 0.95, seed).expect("valid"),
            ignore_eos: true,
        };
        generate::generate(&m.model, ids, &opts).expect("generate").tokens
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}

#[test]
fn synthetic_presets_are_seeded_and_shaped() {
    let src = resolver().resolve("synthetic:tiny").expect("preset");
    assert_eq!(src, ModelSource::Synthetic { preset: "tiny".into() });
    let a = engine::load(&src, Kind::Float, Device::Cpu, 1).expect("load");
    let b = engine::load(&src, Kind::Float, Device::Cpu, 1).expect("load");
    let c = engine::load(&src, Kind::Float, Device::Cpu, 2).expect("load");
    let cfg = a.model.config();
    assert_eq!(
        (
            cfg.num_layers,
            cfg.hidden_size,
            cfg.num_heads,
            cfg.num_kv_heads,
            cfg.intermediate_size,
            cfg.vocab_size
        ),
        (8, 256, 8, 2, 768, 4096)
    );
    let ids = [1u32, 5, 9, 200];
    let (la, lb, lc) = (
        generate::full_logits(&a.model, &ids),
        generate::full_logits(&b.model, &ids),
        generate::full_logits(&c.model, &ids),
    );
    assert_eq!(max_abs_diff(&la, &lb), 0.0);
    assert!(max_abs_diff(&la, &lc) > 0.0);
    let e = resolver().resolve("synthetic:huge").unwrap_err().to_string();
    assert!(e.contains("huge") && e.contains("llama-3.2-1b"), "{e}");
}

#[test]
fn hub_repo_id_resolves_from_the_local_hf_cache() {
    let cache = tempfile::tempdir().expect("tempdir");
    let repo = cache.path().join("models--acme--tiny-llama");
    let snap = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snap).expect("mkdir");
    std::fs::create_dir_all(repo.join("refs")).expect("mkdir");
    std::fs::write(repo.join("refs/main"), "0123abcd").expect("ref");
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(fixture().join(f), snap.join(f)).expect("copy");
    }
    let r = Resolver { hub_cache: cache.path().into(), download: Download::Forbidden };
    assert_eq!(r.resolve("acme/tiny-llama").expect("found in cache"), ModelSource::Dir(snap));

    let err = r.resolve("acme/absent").unwrap_err().to_string();
    assert!(err.contains("local folder acme/absent"), "{err}");
    assert!(err.contains(&cache.path().display().to_string()), "{err}");
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
}

// ---- bad input: each a clear error naming the file or tensor ----

fn load_err(dir: &Path) -> String {
    match load(dir, Kind::Float) {
        Ok(_) => panic!("{} should not load", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_or_corrupt_config_is_named() {
    let dir = copy_fixture(&["config.json"]);
    let e = load_err(dir.path());
    assert!(e.contains("config.json"), "{e}");
    std::fs::write(dir.path().join("config.json"), "{ not json").expect("write");
    let e = load_err(dir.path());
    assert!(e.contains("config.json") && e.contains("invalid JSON"), "{e}");
}

#[test]
fn unsupported_architecture_is_named() {
    let dir = copy_fixture(&[]);
    let p = dir.path().join("config.json");
    let text =
        std::fs::read_to_string(&p).expect("read").replace("LlamaForCausalLM", "GPT2LMHeadModel");
    std::fs::write(&p, text).expect("write");
    let e = load_err(dir.path());
    assert!(e.contains("GPT2LMHeadModel") && e.contains("config.json"), "{e}");
}

#[test]
fn truncated_safetensors_is_named() {
    let dir = copy_fixture(&[]);
    let p = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&p).expect("read");
    for cut in [bytes.len() - 100, 200, 4] {
        std::fs::write(&p, &bytes[..cut]).expect("write");
        let e = load_err(dir.path());
        assert!(
            e.contains("model.safetensors") && e.contains("truncated or corrupt"),
            "cut {cut}: {e}"
        );
    }
}

#[test]
fn missing_tensor_is_named() {
    let dir = copy_fixture(&[]);
    let kept: Vec<(String, Tensor)> = fixture_tensors()
        .into_iter()
        .filter(|(n, _)| n != "model.layers.2.mlp.up_proj.weight")
        .collect();
    Tensor::write_safetensors(&kept, dir.path().join("model.safetensors")).expect("write");
    let e = load_err(dir.path());
    assert!(
        e.contains("model.layers.2.mlp.up_proj.weight") && e.contains("model.safetensors"),
        "{e}"
    );
}

#[test]
fn shape_mismatch_is_named() {
    let dir = copy_fixture(&[]);
    let changed: Vec<(String, Tensor)> = fixture_tensors()
        .into_iter()
        .map(|(n, t)| {
            if n == "model.layers.1.self_attn.k_proj.weight" {
                (n, t.narrow(0, 0, 16))
            } else {
                (n, t)
            }
        })
        .collect();
    Tensor::write_safetensors(&changed, dir.path().join("model.safetensors")).expect("write");
    let e = load_err(dir.path());
    assert!(
        e.contains("model.layers.1.self_attn.k_proj.weight")
            && e.contains("[16, 64]")
            && e.contains("[32, 64]"),
        "{e}"
    );
}

#[test]
fn missing_or_corrupt_tokenizer_is_named() {
    let dir = copy_fixture(&["tokenizer.json"]);
    let e = load_err(dir.path());
    assert!(e.contains("tokenizer.json"), "{e}");
    std::fs::write(dir.path().join("tokenizer.json"), "{\"model\": 3}").expect("write");
    let e = load_err(dir.path());
    assert!(e.contains("tokenizer.json"), "{e}");
}

#[test]
fn bad_generation_arguments_are_rejected() {
    let m = load(&fixture(), Kind::Float).expect("fixture loads");
    let opts = |n| generate::GenerateOptions {
        max_new_tokens: n,
        sampling: Sampling::Greedy,
        ignore_eos: true,
    };
    assert!(generate::generate(&m.model, &[], &opts(4))
        .unwrap_err()
        .to_string()
        .contains("prompt"));
    assert!(generate::generate(&m.model, &[0, 1], &opts(1000))
        .unwrap_err()
        .to_string()
        .contains("max_position_embeddings"));
    assert!(generate::generate(&m.model, &[0, 99999], &opts(4))
        .unwrap_err()
        .to_string()
        .contains("99999"));
    assert!(engine::parse_dtype("int8").unwrap_err().to_string().contains("int8"));
    if !tch::Cuda::is_available() {
        let e = engine::parse_device("cuda:0").unwrap_err().to_string();
        assert!(e.contains("0 CUDA device"), "{e}");
    }
    assert!(engine::parse_device("tpu").is_err());
}

/// The torch-free CPU decode step (f32, batch 1) against the torch path on the same weights.
#[test]
fn cpu_decode_path_matches_torch_path() {
    let fast = load(&fixture(), Kind::Float).expect("fixture loads");
    let mut slow = load(&fixture(), Kind::Float).expect("fixture loads");
    if !engine::gemv::enabled() {
        assert!(!fast.model.uses_cpu_decode());
        eprintln!("no AVX2/AVX-512: only the torch path exists here");
        return;
    }
    assert!(fast.model.uses_cpu_decode(), "f32 on CPU should take the torch-free decode path");
    slow.model.disable_cpu_decode();
    assert!(!slow.model.uses_cpu_decode());
    let ids = &expected().0.inputs[1].ids;
    let opts = generate::GenerateOptions {
        max_new_tokens: 48,
        sampling: Sampling::Greedy,
        ignore_eos: true,
    };
    let a = generate::generate(&fast.model, ids, &opts).expect("fast");
    let b = generate::generate(&slow.model, ids, &opts).expect("slow");
    assert_eq!(a.tokens, b.tokens);
    let _g = tch::no_grad_guard();
    let t = |s: &[u32]| generate::token_batch(s, Device::Cpu);
    let (mut ca, mut cb) = (fast.model.new_cache(1, 64), slow.model.new_cache(1, 64));
    let _ = fast.model.forward(&t(ids), &mut ca, Logits::Last);
    let _ = slow.model.forward(&t(ids), &mut cb, Logits::Last);
    for &tok in &a.tokens[..20] {
        let la = fast.model.forward(&t(&[tok]), &mut ca, Logits::Last);
        let lb = slow.model.forward(&t(&[tok]), &mut cb, Logits::Last);
        let diff = max_abs_diff(&la, &lb);
        assert!(diff <= 1e-4, "decode step differs from the torch path by {diff}");
    }
}

/// bf16 on CPU: the torch-free step keeps activations in f32, the torch path rounds them to bf16
/// after most ops (as HF does; its fused attention accumulates in f32). Teacher-forced on the f32
/// model's tokens, the torch-free step must stay about as close to the f32 model as the torch path
/// does (within 25% on the worst logit), and agree with its top-1 token at least as often.
#[test]
fn cpu_decode_path_in_bf16_is_at_least_as_close_to_f32() {
    if !engine::gemv::enabled() {
        return;
    }
    let reference = load(&fixture(), Kind::Float).expect("f32");
    let fast = load(&fixture(), Kind::BFloat16).expect("bf16");
    let mut slow = load(&fixture(), Kind::BFloat16).expect("bf16");
    assert!(fast.model.uses_cpu_decode(), "bf16 on CPU should take the torch-free decode path");
    slow.model.disable_cpu_decode();
    let ids = &expected().0.inputs[1].ids;
    let opts = generate::GenerateOptions {
        max_new_tokens: 24,
        sampling: Sampling::Greedy,
        ignore_eos: true,
    };
    let tokens = generate::generate(&reference.model, ids, &opts).expect("f32 greedy").tokens;
    let _g = tch::no_grad_guard();
    let t = |s: &[u32]| generate::token_batch(s, Device::Cpu);
    let mut caches: Vec<_> =
        [&reference, &fast, &slow].iter().map(|m| m.model.new_cache(1, 64)).collect();
    for (m, c) in [&reference, &fast, &slow].iter().zip(caches.iter_mut()) {
        let _ = m.model.forward(&t(ids), c, Logits::Last);
    }
    let (mut worst_fast, mut worst_slow, mut agree_fast, mut agree_slow) =
        (0f64, 0f64, 0usize, 0usize);
    for &tok in &tokens {
        let step: Vec<Tensor> = [&reference, &fast, &slow]
            .iter()
            .zip(caches.iter_mut())
            .map(|(m, c)| m.model.forward(&t(&[tok]), c, Logits::Last).to_kind(Kind::Float))
            .collect();
        worst_fast = worst_fast.max(max_abs_diff(&step[1], &step[0]));
        worst_slow = worst_slow.max(max_abs_diff(&step[2], &step[0]));
        let top = |x: &Tensor| x.argmax(-1, false).int64_value(&[0]);
        agree_fast += usize::from(top(&step[1]) == top(&step[0]));
        agree_slow += usize::from(top(&step[2]) == top(&step[0]));
    }
    eprintln!(
        "bf16 decode vs f32: max |diff| torch-free {worst_fast:.4}, torch path {worst_slow:.4}; \
         top-1 agreement {agree_fast} vs {agree_slow} of {}",
        tokens.len()
    );
    assert!(
        worst_fast <= worst_slow * 1.25,
        "torch-free bf16 step strays {worst_fast} from f32, torch path {worst_slow}"
    );
    assert!(
        agree_fast >= agree_slow,
        "top-1 agreement with f32: torch-free {agree_fast}, torch path {agree_slow}"
    );
}

#[test]
fn skipping_a_layer_equals_the_model_without_it() {
    use casrap_engine::model::{LayerRef, Weights};
    use casrap_engine::weights::SafeTensorFiles;
    let mut m = load(&fixture(), Kind::Float).expect("fixture loads");
    let (e, _) = expected();
    let ids = &e.inputs[2].ids;
    let cfg = m.model.config().clone();
    let files = SafeTensorFiles::open_dir(&fixture()).expect("weights");
    let _g = tch::no_grad_guard();
    let batch = generate::token_batch(ids, Device::Cpu);
    for layer in 0..cfg.num_layers {
        let mut w = Weights::from_hf(&cfg, &files, Kind::Float, Device::Cpu).expect("weights");
        w.layers.remove(layer);
        let mut short_cfg = cfg.clone();
        short_cfg.num_layers -= 1;
        let short = engine::Llama::from_weights(&short_cfg, w, Kind::Float, Device::Cpu);
        let want = short.forward(&batch, &mut short.new_cache(1, ids.len()), Logits::All);
        let layers = (0..cfg.num_layers)
            .map(|i| if i == layer { LayerRef::Skip } else { LayerRef::Dense })
            .collect();
        let id = m.model.add_profile("skip", layers, None).expect("profile");
        m.model.activate(id).expect("activate");
        let got = m.model.forward(&batch, &mut m.model.new_cache(1, ids.len()), Logits::All);
        assert_eq!(max_abs_diff(&got, &want), 0.0, "layer {layer}");
        m.model.activate_dense();
        m.model.remove_profile(id).expect("remove");
        let dense = m.model.forward(&batch, &mut m.model.new_cache(1, ids.len()), Logits::All);
        assert!(max_abs_diff(&got, &dense) > 1e-3, "skipping layer {layer} changed nothing");
    }
}

#[test]
fn fused_weights_split_back_into_the_hf_tensors() {
    use casrap_engine::model::Weights;
    use casrap_engine::weights::SafeTensorFiles;
    let m = load(&fixture(), Kind::Float).expect("fixture loads");
    let files = SafeTensorFiles::open_dir(&fixture()).expect("weights");
    let w = Weights::from_hf(m.model.config(), &files, Kind::Float, Device::Cpu).expect("weights");
    let hf = w.to_hf(m.model.config());
    let originals = fixture_tensors();
    assert_eq!(hf.len(), originals.len());
    for (name, t) in &hf {
        let (_, want) = originals
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} not in the fixture"));
        assert_eq!(max_abs_diff(t, &want.to_kind(Kind::Float)), 0.0, "{name}");
    }
}
