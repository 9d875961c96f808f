//! Verification passes, prompt-lookup speculation and activation sparsity on the embedded model
//! (and on the real one where it is provisioned, like `real_model.rs`):
//! - a verification pass over k positions gives each position the logits k single decode steps
//!   give, bit for bit, and leaves the cache where the accepted positions end;
//! - lookup decoding emits exactly the dense greedy tokens, on prompts of every category;
//! - sparse decode at threshold 0 is the dense model bit for bit, and with thresholds it equals
//!   the torch path that zeroes the inputs and runs dense matmuls (within float tolerance).

use std::collections::BTreeMap;
use std::path::PathBuf;

use casrap_common::action::Allocation;
use casrap_common::prompts::{BadRows, PromptSet};
use casrap_common::repo_path;
use casrap_engine::generate::{self, GenerateOptions, Lookup};
use casrap_engine::model::{Sparsity, MAX_VERIFY};
use casrap_engine::resolve::{Download, Resolver, DEFAULT_MODEL};
use casrap_engine::sampling::Sampling;
use casrap_engine::tokenizer::TextTokenizer;
use casrap_engine::{Llama, Logits};
use tch::{Device, Kind, Tensor};

fn load_dir(dir: &str, kind: Kind) -> casrap_engine::LoadedModel {
    let resolver = Resolver {
        hub_cache: PathBuf::from("/nonexistent-hf-cache"),
        download: Download::Forbidden,
    };
    let source = resolver.resolve(dir).expect("the model resolves");
    casrap_engine::load(&source, kind, Device::Cpu, 0).expect("the model loads")
}

fn embedded(kind: Kind) -> casrap_engine::LoadedModel {
    load_dir(repo_path(DEFAULT_MODEL).to_str().expect("utf-8 path"), kind)
}

fn real(kind: Kind) -> casrap_engine::LoadedModel {
    let dir = std::env::var_os("CASRAP_REAL_MODEL").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        home.join(".cache/casrap/models/smollm2-135m-instruct")
    });
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: needs the real model (scripts/fetch-real-model; scripts/test --services does it)",
        dir.display()
    );
    load_dir(dir.to_str().expect("utf-8 path"), kind)
}

/// `per` prompts of every category of the committed prompt set, encoded (at most `max` tokens).
fn prompts_by_category(
    tok: &TextTokenizer,
    per: usize,
    max: usize,
) -> BTreeMap<String, Vec<Vec<u32>>> {
    let set = PromptSet::load(&repo_path("data/prompts/prompts.csv"), BadRows::Fail)
        .expect("the prompt set loads");
    let mut out: BTreeMap<String, Vec<Vec<u32>>> = BTreeMap::new();
    for p in &set.prompts {
        let v = out.entry(p.category.clone()).or_default();
        if v.len() < per {
            let mut ids = tok.encode(&p.prompt).expect("encode");
            ids.truncate(max);
            v.push(ids);
        }
    }
    assert!(out.len() >= 8, "the prompt set has {} categories", out.len());
    out
}

fn greedy(n: usize) -> GenerateOptions {
    GenerateOptions { max_new_tokens: n, sampling: Sampling::Greedy, ignore_eos: true }
}

/// Logits of `k` single steps after `prompt` on one cache, and of one verification pass over
/// the same tokens on another: equal bit for bit.
fn verify_equals_steps(model: &Llama, prompt: &[u32], k: usize) {
    let _guard = tch::no_grad_guard();
    let g = generate::generate(model, prompt, &greedy(k + 1)).expect("generate");
    let follow: Vec<u32> = g.tokens[..k].to_vec();
    let mut steps = model.new_cache(1, prompt.len() + k + 1);
    let mut pass = model.new_cache(1, prompt.len() + k + 1);
    for cache in [&mut steps, &mut pass] {
        let _ = model.forward(&generate::token_batch(prompt, Device::Cpu), cache, Logits::Last);
    }
    let single: Vec<Tensor> = follow
        .iter()
        .map(|&t| {
            model.forward(&generate::token_batch(&[t], Device::Cpu), &mut steps, Logits::Last)
        })
        .collect();
    let verified = model.verify(&follow, &mut pass).expect("verify");
    assert_eq!(verified.size(), vec![k as i64, model.config().vocab_size as i64]);
    assert_eq!(pass.len(), steps.len(), "the pass advanced the cache by every position");
    for (i, s) in single.iter().enumerate() {
        assert!(
            verified.get(i as i64).equal(&s.reshape([-1])),
            "position {i} of {k}: the verification logits differ from a single step's"
        );
    }
    if k < 3 {
        return;
    }
    // Rolled back to the first two positions, the next step equals a fresh cache's.
    pass.truncate(prompt.len() + 2);
    let mut fresh = model.new_cache(1, prompt.len() + k + 1);
    let _ = model.forward(&generate::token_batch(prompt, Device::Cpu), &mut fresh, Logits::Last);
    let _ = model.verify(&follow[..2], &mut fresh).expect("verify two");
    let a = model.forward(&generate::token_batch(&[7], Device::Cpu), &mut pass, Logits::Last);
    let b = model.forward(&generate::token_batch(&[7], Device::Cpu), &mut fresh, Logits::Last);
    assert!(a.equal(&b), "a truncated cache continues as one that never held the rejected tokens");
}

#[test]
fn verification_pass_equals_single_steps_bit_for_bit() {
    for kind in [Kind::Float, Kind::BFloat16] {
        let m = embedded(kind);
        assert!(m.model.uses_cpu_decode() || !casrap_engine::gemv::enabled());
        let prompt =
            m.tokenizer.encode("The module defines the following functions:").expect("encode");
        for k in [1, 2, 5, 9, MAX_VERIFY] {
            verify_equals_steps(&m.model, &prompt, k);
        }
    }
}

#[test]
fn verification_refuses_what_it_cannot_take() {
    let m = embedded(Kind::Float);
    let mut cache = m.model.new_cache(1, 40);
    let too_many = vec![1u32; MAX_VERIFY + 1];
    let e = m.model.verify(&too_many, &mut cache).unwrap_err().to_string();
    assert!(e.contains("verify") && e.contains(&MAX_VERIFY.to_string()), "{e}");
    assert!(m.model.verify(&[], &mut cache).is_err());
    let vocab = m.model.config().vocab_size as u32;
    assert!(m.model.verify(&[vocab], &mut cache).unwrap_err().to_string().contains("vocabulary"));
    let mut small = m.model.new_cache(1, 2);
    assert!(m.model.verify(&[1, 2, 3], &mut small).unwrap_err().to_string().contains("cache"));
    for (draft, ngram) in [(0, 3), (MAX_VERIFY, 3), (4, 0)] {
        let e =
            generate::generate_lookup(&m.model, &[1, 2, 3], &greedy(8), Lookup { draft, ngram })
                .unwrap_err()
                .to_string();
        assert!(e.contains("lookup"), "{e}");
    }
}

#[test]
fn draft_is_what_followed_the_longest_earlier_match() {
    let l = Lookup { draft: 3, ngram: 3 };
    // "5 6" occurred earlier followed by 7 8 9; the longer "4 5 6" did not.
    assert_eq!(l.draft_for(&[1, 5, 6, 7, 8, 9, 4, 5, 6], 8), vec![7, 8, 9]);
    // The most recent earlier occurrence wins.
    assert_eq!(l.draft_for(&[2, 3, 2, 4, 2], 8), vec![4, 2]);
    assert_eq!(l.draft_for(&[1, 2, 3], 8), Vec::<u32>::new());
    assert_eq!(l.draft_for(&[1, 2, 1], 1), vec![2], "capped by the room left");
}

/// Lookup decoding against plain greedy decoding on `per` prompts of every category; returns
/// (drafted, accepted) over all of them.
fn lookup_is_greedy(
    m: &casrap_engine::LoadedModel,
    per: usize,
    new_tokens: usize,
) -> (usize, usize) {
    let (mut drafted, mut accepted) = (0, 0);
    for (category, prompts) in prompts_by_category(&m.tokenizer, per, 160) {
        for p in prompts {
            let dense = generate::generate(&m.model, &p, &greedy(new_tokens)).expect("greedy");
            for draft in [3, 8] {
                let l = generate::generate_lookup(
                    &m.model,
                    &p,
                    &greedy(new_tokens),
                    Lookup { draft, ngram: 3 },
                )
                .expect("lookup");
                assert_eq!(
                    l.generation.tokens, dense.tokens,
                    "{category}: lookup:{draft} differs from greedy"
                );
                assert!(l.generation.decode_steps <= dense.decode_steps);
                drafted += l.drafted;
                accepted += l.accepted;
            }
        }
    }
    (drafted, accepted)
}

#[test]
fn lookup_decoding_is_dense_greedy_on_every_category() {
    for kind in [Kind::Float, Kind::BFloat16] {
        let m = embedded(kind);
        let (drafted, accepted) = lookup_is_greedy(&m, 1, 32);
        eprintln!("{kind:?}: {accepted} of {drafted} drafted tokens accepted");
        assert!(
            accepted > 0 && accepted < drafted,
            "lookup drafted {drafted}, accepted {accepted}"
        );
    }
}

#[test]
#[ignore = "needs the real model (scripts/fetch-real-model)"]
fn real_model_lookup_decoding_is_dense_greedy_on_every_category() {
    let m = real(Kind::Float);
    let (drafted, accepted) = lookup_is_greedy(&m, 1, 32);
    eprintln!("{accepted} of {drafted} drafted tokens accepted");
    assert!(accepted > 0);
}

/// Thresholds at the `s`-quantile of each matrix's input magnitudes over `tokens`.
fn quantile_thresholds(model: &Llama, tokens: &[u32], s: f64) -> Sparsity {
    let ids = generate::token_batch(tokens, Device::Cpu);
    let thresholds = model
        .input_magnitudes(&ids)
        .iter()
        .map(|mats| {
            mats.each_ref().map(|m| {
                let (sorted, _) = m.sort(0, false);
                let i = ((m.numel() - 1) as f64 * s).floor() as i64;
                sorted.double_value(&[i]) as f32
            })
        })
        .collect();
    Sparsity { level: s, thresholds }
}

/// Greedy decode of `n` steps after `prompt` on the active profile: every step's logits.
fn decode_logits(model: &Llama, prompt: &[u32], n: usize) -> Vec<Tensor> {
    let _guard = tch::no_grad_guard();
    let mut cache = model.new_cache(1, prompt.len() + n + 1);
    let mut logits =
        model.forward(&generate::token_batch(prompt, Device::Cpu), &mut cache, Logits::Last);
    let mut out = Vec::new();
    for _ in 0..n {
        let next = logits.reshape([-1]).argmax(-1, false).int64_value(&[]) as u32;
        logits =
            model.forward(&generate::token_batch(&[next], Device::Cpu), &mut cache, Logits::Last);
        out.push(logits.to_kind(Kind::Float));
    }
    out
}

#[test]
fn sparse_decode_at_zero_is_dense_bit_for_bit() {
    for kind in [Kind::Float, Kind::BFloat16] {
        let mut m = embedded(kind);
        let prompt = m.tokenizer.encode("Return a new list containing").expect("encode");
        let dense = decode_logits(&m.model, &prompt, 12);
        let layers = m.model.config().num_layers;
        let id = m
            .model
            .add_sparse_profile(
                "sparsity:0",
                Sparsity { level: 0.0, thresholds: vec![[0.0; 4]; layers] },
            )
            .expect("a sparse profile");
        m.model.activate(id).expect("activate");
        assert!(m.model.uses_cpu_decode() || !casrap_engine::gemv::enabled());
        let sparse = decode_logits(&m.model, &prompt, 12);
        for (i, (a, b)) in dense.iter().zip(&sparse).enumerate() {
            assert!(a.equal(b), "{kind:?} step {i}: sparsity 0 differs from dense");
        }
    }
}

#[test]
fn sparse_decode_equals_zeroed_inputs_through_dense_matmuls() {
    let mut m = embedded(Kind::Float);
    let calib = m
        .tokenizer
        .encode(
            &"The tokenize module provides a lexical scanner for Python source code. ".repeat(8),
        )
        .expect("encode");
    let prompt = m.tokenizer.encode("Open the file and return its lines").expect("encode");
    for s in [0.25, 0.5] {
        let sparsity = quantile_thresholds(&m.model, &calib, s);
        assert!(sparsity.thresholds.iter().flatten().all(|&t| t > 0.0));
        let id = m.model.add_sparse_profile(&format!("sparsity:{s}"), sparsity).expect("profile");
        m.model.activate(id).expect("activate");
        let kernel = decode_logits(&m.model, &prompt, 8);
        let read = m.model.measured_weight_bytes_per_token().expect("steps counted");
        m.model.disable_cpu_decode();
        let reference = decode_logits(&m.model, &prompt, 8);
        m.model.enable_cpu_decode();
        m.model.activate_dense();
        let dense = decode_logits(&m.model, &prompt, 8);
        let full = m.model.measured_weight_bytes_per_token().expect("dense steps counted");
        let mut changed = 0.0f64;
        for (i, (a, b)) in kernel.iter().zip(&reference).enumerate() {
            let diff = (a - b).abs().max().double_value(&[]);
            let scale = b.abs().max().double_value(&[]);
            assert!(
                diff <= 1e-4 * scale.max(1.0),
                "s={s} step {i}: |kernel - masked torch| {diff}"
            );
        }
        for (a, d) in kernel.iter().zip(&dense) {
            changed = changed.max((a - d).abs().max().double_value(&[]));
        }
        assert!(changed > 1e-3, "s={s}: sparsity changed nothing ({changed})");
        assert!(read < full, "s={s}: the sparse kernel read {read} bytes a token, dense {full}");
        eprintln!("s={s}: {:.3} of the dense bytes read", read / full);
    }
    assert!(m.model.input_major_bytes() > 0);
}

#[test]
fn sparse_profiles_refuse_bad_thresholds() {
    let mut m = embedded(Kind::Float);
    let layers = m.model.config().num_layers;
    let e = m
        .model
        .add_sparse_profile("x", Sparsity { level: 0.1, thresholds: vec![[0.0; 4]; layers - 1] });
    assert!(e.unwrap_err().to_string().contains("layers"));
    let mut t = vec![[0.1f32; 4]; layers];
    t[2][1] = f32::NAN;
    let e = m
        .model
        .add_sparse_profile("x", Sparsity { level: 0.1, thresholds: t })
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer 2"), "{e}");
}

#[test]
fn thresholds_need_enough_calibration_text_and_refuse_another_models_file() {
    use casrap_actor::prune::sparsity::{Thresholds, MIN_TOKENS};
    let m = embedded(Kind::Float);
    let short = vec![m.tokenizer.encode("Too short to fit anything.").expect("encode")];
    let e = Thresholds::calibrate(&m.model, "emb", &short, "a short note").unwrap_err().to_string();
    assert!(e.contains("a short note") && e.contains(&MIN_TOKENS.to_string()), "{e}");

    let text = "The json module encodes and decodes JSON documents. ".repeat(40);
    let windows: Vec<Vec<u32>> =
        m.tokenizer.encode(&text).expect("encode").chunks(128).map(<[u32]>::to_vec).collect();
    let a = Thresholds::calibrate(&m.model, "emb", &windows, "json text").expect("calibrates");
    let b = Thresholds::calibrate(&m.model, "emb", &windows, "json text").expect("calibrates");
    assert_eq!(a, b, "the same text gives the same distributions");
    let (ta, tb) = (
        a.at(0.3, Allocation::Uniform).expect("level"),
        b.at(0.3, Allocation::Uniform).expect("level"),
    );
    let bits =
        |t: &Sparsity| t.thresholds.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&ta), bits(&tb), "thresholds bit for bit");
    assert!(a
        .at(0.0, Allocation::Uniform)
        .expect("level")
        .thresholds
        .iter()
        .flatten()
        .all(|&t| t == 0.0));
    assert!(a.at(0.95, Allocation::Uniform).unwrap_err().to_string().contains("0.95"));
    // A deeper level keeps no more inputs.
    let (lo, hi) = (
        a.at(0.2, Allocation::Uniform).expect("level"),
        a.at(0.5, Allocation::Uniform).expect("level"),
    );
    assert!(lo
        .thresholds
        .iter()
        .flatten()
        .zip(hi.thresholds.iter().flatten())
        .all(|(l, h)| l <= h));

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("thresholds.json");
    a.save(&path).expect("save");
    let e = Thresholds::load_or(&path, &m.model, "another-model", || unreachable!())
        .unwrap_err()
        .to_string();
    assert!(e.contains("thresholds.json") && e.contains("another-model"), "{e}");
    let (back, reused) =
        Thresholds::load_or(&path, &m.model, "emb", || unreachable!()).expect("reused");
    assert!(reused && back == a);
}

#[test]
fn block_errors_grow_with_the_thresholds() {
    let m = embedded(Kind::Float);
    let ids = m.tokenizer.encode(&"Lists keep their items in order. ".repeat(12)).expect("encode");
    let ids =
        Tensor::from_slice(&ids.iter().map(|&t| i64::from(t)).collect::<Vec<_>>()).view([1, -1]);
    let mut seen = 0;
    m.model.block_errors(&ids, |_, error| {
        seen += 1;
        assert_eq!(error(&[0.0; 4]), 0.0, "no threshold, no error");
        let (small, large) = (error(&[0.01; 4]), error(&[0.5; 4]));
        assert!(0.0 < small && small < large, "{small} then {large}");
    });
    assert_eq!(seen, m.model.config().num_layers);
}

#[test]
fn greedy_allocation_spreads_each_level_over_the_blocks_bytes_and_is_reproducible() {
    use casrap_actor::prune::sparsity::Thresholds;
    use casrap_common::action::MAX_SPARSITY;
    let m = embedded(Kind::Float);
    let text = "Dictionaries map keys to values; a missing key raises KeyError. ".repeat(40);
    let windows: Vec<Vec<u32>> =
        m.tokenizer.encode(&text).expect("encode").chunks_exact(128).map(<[u32]>::to_vec).collect();
    let mut a = Thresholds::calibrate(&m.model, "emb", &windows, "dict text").expect("calibrates");
    let e = a.at(0.3, Allocation::Greedy).unwrap_err().to_string();
    assert!(e.contains("greedy"), "{e}");
    let mut b = a.clone();
    // Steps of 5% of a block's bytes: the search's logic at a fifth of its real cost.
    a.fit_greedy(&m.model, &windows, 0.05).expect("greedy");
    b.fit_greedy(&m.model, &windows, 0.05).expect("greedy");
    let e = b.fit_greedy(&m.model, &windows, 0.0).unwrap_err().to_string();
    assert!(e.contains("step 0"), "{e}");
    assert!(a == b, "the same text gives the same paths");
    let g = a.greedy.clone().expect("fitted");
    let weights: Vec<[f64; 4]> = m
        .model
        .dense_blocks()
        .iter()
        .map(|b| {
            [b.qkv_weight(), b.o_weight(), b.gate_up_weight(), b.down_weight()]
                .map(|t| t.numel() as f64)
        })
        .collect();
    for (path, w) in g.paths.iter().zip(&weights) {
        assert_eq!(path[0], (0.0, [0.0; 4]));
        assert_eq!(path.last().expect("steps").1, [MAX_SPARSITY; 4]);
        for pair in path.windows(2) {
            let ((l0, s0), (l1, s1)) = (pair[0], pair[1]);
            // One matrix raised per step, by at most the step's share of the block's bytes.
            assert_eq!(s0.iter().zip(&s1).filter(|(x, y)| x != y).count(), 1, "{s0:?} -> {s1:?}");
            assert!(l1 > l0 && l1 - l0 <= g.step + 1e-9, "{l0} -> {l1}");
            let level = s1.iter().zip(w).map(|(s, w)| s * w).sum::<f64>() / w.iter().sum::<f64>();
            assert!((level - l1).abs() < 1e-9, "{level} vs {l1}");
        }
    }
    // A level's per-matrix shares weigh to that level in every block.
    for level in [0.1, 0.33, 0.5] {
        for (layer, w) in weights.iter().enumerate() {
            let s = g.levels(layer, level);
            let got = s.iter().zip(w).map(|(s, w)| s * w).sum::<f64>() / w.iter().sum::<f64>();
            assert!((got - level).abs() < 1e-9, "layer {layer} at {level}: {got}");
        }
    }
    let zero = a.at(0.0, Allocation::Greedy).expect("level");
    assert!(zero.thresholds.iter().flatten().all(|&t| t == 0.0));
    let (lo, hi) = (
        a.at(0.2, Allocation::Greedy).expect("level"),
        a.at(0.5, Allocation::Greedy).expect("level"),
    );
    assert!(lo
        .thresholds
        .iter()
        .flatten()
        .zip(hi.thresholds.iter().flatten())
        .all(|(l, h)| l <= h));
    assert!(hi != a.at(0.5, Allocation::Uniform).expect("level"), "greedy is not uniform");

    // Saved with the paths; a file whose paths do not fit the model is refused, naming the field.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("thresholds.json");
    a.save(&path).expect("save");
    let (back, _) = Thresholds::load_or(&path, &m.model, "emb", || unreachable!()).expect("reused");
    assert!(back.histograms == a.histograms, "the histograms come back as saved");
    // JSON keeps each level to within a rounding of its last digit.
    let levels = |t: &Thresholds| -> Vec<f64> {
        let g = t.greedy.as_ref().expect("fitted");
        g.paths.iter().flatten().flat_map(|(l, s)| std::iter::once(*l).chain(*s)).collect()
    };
    let (x, y) = (levels(&back), levels(&a));
    assert!(x.len() == y.len() && x.iter().zip(&y).all(|(p, q)| (p - q).abs() < 1e-12));
    let mut bad = a.clone();
    bad.greedy.as_mut().expect("fitted").paths.pop();
    bad.save(&path).expect("save");
    let e = Thresholds::load(&path, &m.model, "emb").unwrap_err().to_string();
    assert!(e.contains("thresholds.json") && e.contains("greedy"), "{e}");
}

#[test]
fn self_speculation_is_dense_greedy_on_every_category() {
    let mut m = embedded(Kind::Float);
    let calib = m
        .tokenizer
        .encode(&"Tuples are immutable sequences of items. ".repeat(20))
        .expect("encode");
    let sparse = quantile_thresholds(&m.model, &calib, 0.5);
    let id = m.model.add_sparse_profile("sparsity:0.5", sparse).expect("sparse profile");
    let (mut drafted, mut accepted) = (0, 0);
    for (category, prompts) in prompts_by_category(&m.tokenizer, 1, 160) {
        let p = &prompts[0];
        let dense = generate::generate(&m.model, p, &greedy(24)).expect("greedy");
        for len in [1, 3] {
            let s = generate::generate_self_spec(&mut m.model, id, p, &greedy(24), len)
                .expect("self-speculation");
            assert_eq!(
                s.generation.tokens, dense.tokens,
                "{category}: draft {len} differs from greedy"
            );
            assert_eq!(m.model.active(), casrap_engine::model::ProfileId::DENSE);
            assert!(s.generation.decode_steps <= dense.decode_steps);
            drafted += s.drafted;
            accepted += s.accepted;
        }
    }
    eprintln!("{accepted} of {drafted} drafted tokens accepted");
    assert!(accepted > 0 && accepted < drafted, "drafted {drafted}, accepted {accepted}");
    for bad in [0, MAX_VERIFY] {
        let e = generate::generate_self_spec(&mut m.model, id, &calib[..8], &greedy(4), bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("draft length"), "{e}");
    }
}
