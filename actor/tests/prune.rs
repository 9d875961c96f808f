//! Pruning: sliced profiles against references that mask the same heads or channels to zero,
//! GQA mapping, layer choice, bit-identical restore, the rebuild after a failed check, and errors.

#![allow(clippy::unwrap_used)] // test helpers, like the tests, stop at the first failure

use std::path::PathBuf;

use casrap_actor::prune::importance::Importance;
use casrap_actor::prune::profiles::{self, ProfileCache};
use casrap_common::action::{Action, Allocation};
use casrap_common::config::Timing;
use casrap_common::repo_path;
use casrap_engine::model::{LayerRef, Weights};
use casrap_engine::resolve::{Resolver, DEFAULT_MODEL};
use casrap_engine::weights::SafeTensorFiles;
use casrap_engine::{generate, Llama, Logits};
use tch::{Device, Kind, Tensor};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama")
}

fn load(dir: &std::path::Path) -> Llama {
    let source = Resolver::from_env().resolve(dir.to_str().unwrap()).unwrap();
    casrap_engine::load(&source, Kind::Float, Device::Cpu, 0).unwrap().model
}

fn ids(n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 37 + 11) % vocab) as u32).collect()
}

fn logits(m: &Llama, tokens: &[u32]) -> Tensor {
    let _g = tch::no_grad_guard();
    m.forward(
        &generate::token_batch(tokens, Device::Cpu),
        &mut m.new_cache(1, tokens.len()),
        Logits::All,
    )
}

/// Prefill of `tokens[..split]`, then one token at a time: every position's logits, `[T-1, V]`
/// from position 1 on (exercises the CPU decode plan when the model has one).
fn stepped(m: &Llama, tokens: &[u32], split: usize) -> Tensor {
    let _g = tch::no_grad_guard();
    let mut cache = m.new_cache(1, tokens.len());
    let t = |s: &[u32]| generate::token_batch(s, Device::Cpu);
    let mut out = vec![m.forward(&t(&tokens[..split]), &mut cache, Logits::All).squeeze_dim(0)];
    for &tok in &tokens[split..] {
        out.push(m.forward(&t(&[tok]), &mut cache, Logits::Last));
    }
    Tensor::cat(&out, 0)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// A dense model from the fixture with `edit` applied to its fused weights, on the same decode
/// path (CPU plan or torch) as `like`.
fn edited_fixture(
    like: &Llama,
    edit: impl Fn(usize, &mut casrap_engine::block::LayerWeights),
) -> Llama {
    let m = load(&fixture());
    let cfg = m.config().clone();
    let files = SafeTensorFiles::open_dir(&fixture()).unwrap();
    let mut w = Weights::from_hf(&cfg, &files, Kind::Float, Device::Cpu).unwrap();
    let _g = tch::no_grad_guard();
    for (i, l) in w.layers.iter_mut().enumerate() {
        edit(i, l);
    }
    let mut m = Llama::from_weights(&cfg, w, Kind::Float, Device::Cpu);
    if like.uses_cpu_decode() {
        m.enable_cpu_decode();
    }
    m
}

fn flat_importance(m: &Llama) -> Importance {
    let c = m.config();
    Importance {
        model: "test".into(),
        source: "test".into(),
        heads: vec![vec![1.0; c.num_heads]; c.num_layers],
        channels: vec![vec![1.0; c.intermediate_size]; c.num_layers],
        layers: vec![1.0; c.num_layers],
    }
}

#[test]
fn sliced_heads_match_a_reference_with_those_heads_masked_and_keep_gqa_mapping() {
    for cpu_decode in [true, false] {
        let mut m = load(&fixture());
        if !cpu_decode {
            m.disable_cpu_decode();
        }
        let mut imp = flat_importance(&m);
        // Layer 0 loses both query heads of KV group 0 (so KV head 0 goes too); layer 1 loses
        // head 3 only (groups of 2 and 1 remain).
        imp.heads[0] = vec![0.1, 0.1, 1.0, 1.0];
        imp.heads[1] = vec![1.0, 1.0, 1.0, 0.1];
        let action = Action::Heads { intensity: 3.0 / 16.0 };
        assert_eq!(
            profiles::heads_kept(&imp, 3.0 / 16.0, &action).unwrap(),
            vec![vec![2, 3], vec![0, 1, 2], vec![0, 1, 2, 3], vec![0, 1, 2, 3]]
        );
        let mut cache = ProfileCache::new(imp, usize::MAX);
        let built = cache.ensure(&mut m, &action).unwrap().unwrap();
        let shapes: Vec<_> = m
            .profile(built.id)
            .unwrap()
            .layers()
            .iter()
            .map(|l| match l {
                LayerRef::Own(b) => Some(b.shape()),
                _ => None,
            })
            .collect();
        let s0 = shapes[0].clone().unwrap();
        assert_eq!((s0.num_heads, s0.num_kv_heads, s0.kv_of_head.clone()), (2, 1, vec![0, 0]));
        let s1 = shapes[1].clone().unwrap();
        assert_eq!((s1.num_heads, s1.num_kv_heads, s1.kv_of_head.clone()), (3, 2, vec![0, 0, 1]));
        assert!(
            shapes[2].is_none() && shapes[3].is_none(),
            "untouched layers share the dense blocks"
        );
        assert_eq!(
            m.new_cache(1, 4).bytes(),
            {
                m.activate(built.id).unwrap();
                m.new_cache(1, 4).bytes() * 8 / 7
            },
            "the pruned profile's cache holds 7 of 8 KV heads"
        );

        let hd = m.config().head_dim as i64;
        let reference = edited_fixture(&m, |i, l| {
            let masked: &[i64] = match i {
                0 => &[0, 1],
                1 => &[3],
                _ => &[],
            };
            for &h in masked {
                let _ = l.o.narrow(1, h * hd, hd).fill_(0.0);
            }
        });
        let tokens = ids(24, m.config().vocab_size);
        let d_all = max_diff(&logits(&m, &tokens), &logits(&reference, &tokens));
        let d_step = max_diff(&stepped(&m, &tokens, 5), &stepped(&reference, &tokens, 5));
        assert!(
            d_all <= 1e-5 && d_step <= 1e-5,
            "cpu_decode={cpu_decode}: prefill {d_all}, stepped {d_step}"
        );
        m.activate_dense();
        assert!(
            max_diff(&logits(&m, &tokens), &logits(&reference, &tokens)) > 1e-3,
            "masking changed nothing"
        );
    }
}

#[test]
fn sliced_ffn_matches_a_reference_with_those_channels_masked() {
    let mut m = load(&fixture());
    let mut imp = flat_importance(&m);
    let f = m.config().intermediate_size;
    // Channels with odd index are the least important in every layer.
    for c in &mut imp.channels {
        *c = (0..f).map(|i| if i % 2 == 1 { 0.5 } else { 1.0 }).collect();
    }
    let action = Action::Ffn { intensity: 0.5 };
    let kept = profiles::channels_kept(&imp, 0.5, &action).unwrap();
    assert!(kept.iter().all(|k| k.len() == 64 && k.iter().all(|c| c % 2 == 0)));
    let mut cache = ProfileCache::new(imp, usize::MAX);
    let before = m.weight_bytes_per_token();
    cache.apply(&mut m, &action).unwrap();
    assert!(m.weight_bytes_per_token() < before);
    let reference = edited_fixture(&m, |_, l| {
        for c in (1..f as i64).step_by(2) {
            let _ = l.down.narrow(1, c, 1).fill_(0.0);
        }
    });
    let tokens = ids(20, m.config().vocab_size);
    let d_all = max_diff(&logits(&m, &tokens), &logits(&reference, &tokens));
    let d_step = max_diff(&stepped(&m, &tokens, 4), &stepped(&reference, &tokens, 4));
    assert!(d_all <= 1e-5 && d_step <= 1e-5, "prefill {d_all}, stepped {d_step}");
}

#[test]
fn layers_are_chosen_by_influence_never_first_or_last() {
    let m = load(&fixture());
    let mut imp = flat_importance(&m);
    imp.layers = vec![0.0, 0.5, 0.2, 0.0];
    let a = |i| Action::Layers { intensity: i };
    assert_eq!(profiles::layers_skipped(&imp, 0.25, &a(0.25)).unwrap(), vec![2]);
    assert_eq!(
        profiles::layers_skipped(&imp, 0.1, &a(0.1)).unwrap(),
        vec![2],
        "at least one layer"
    );
    assert_eq!(profiles::layers_skipped(&imp, 0.5, &a(0.5)).unwrap(), vec![1, 2]);
    let e = profiles::layers_skipped(&imp, 0.75, &a(0.75)).unwrap_err().to_string();
    assert!(e.contains("never the first or the last"), "{e}");
}

#[test]
fn pruning_that_would_remove_everything_is_refused() {
    let m = load(&fixture());
    let imp = flat_importance(&m);
    let e =
        profiles::heads_kept(&imp, 0.9, &Action::Heads { intensity: 0.9 }).unwrap_err().to_string();
    assert!(e.contains("one stays per layer"), "{e}");
    let mut small = imp.clone();
    small.channels = vec![vec![1.0; 100]; 4];
    let e = profiles::channels_kept(&small, 0.5, &Action::Ffn { intensity: 0.5 })
        .unwrap_err()
        .to_string();
    assert!(e.contains("multiple of 64"), "{e}");
    // The widest cut still keeps 64 channels; the smallest still removes 64.
    assert!(profiles::channels_kept(&imp, 0.99, &Action::Ffn { intensity: 0.99 })
        .unwrap()
        .iter()
        .all(|k| k.len() == 64));
    assert!(profiles::channels_kept(&imp, 0.01, &Action::Ffn { intensity: 0.01 })
        .unwrap()
        .iter()
        .all(|k| k.len() == 64));
}

fn embedded() -> (Llama, Importance) {
    let m = load(&repo_path(DEFAULT_MODEL));
    let imp = Importance::weight_norm(&m, "embedded");
    (m, imp)
}

#[test]
fn restore_is_bit_identical_for_every_action_kind() {
    let (mut m, imp) = embedded();
    let tokens = ids(40, m.config().vocab_size);
    let dense = logits(&m, &tokens);
    let dense_stepped = stepped(&m, &tokens, 30);
    let mut cache = ProfileCache::new(imp, usize::MAX);
    cache.set_probe(&mut m, &tokens[..16]);
    let src = repo_path(DEFAULT_MODEL);
    let mut reload = || Ok(load(&src));
    for action in ["heads:0.1", "ffn:0.25", "layers:0.25", "kv_window:2+8"] {
        let action = Action::parse(action).unwrap();
        for _ in 0..2 {
            cache.apply(&mut m, &action).unwrap();
            assert!(
                max_diff(&stepped(&m, &tokens, 30), &dense_stepped) > 1e-4,
                "{} changed nothing",
                action.label()
            );
            let r = cache.restore(&mut m, &mut reload).unwrap();
            assert!(r.identical && !r.rebuilt, "{}", action.label());
            assert!(
                logits(&m, &tokens).equal(&dense),
                "{}: prefill logits differ after restore",
                action.label()
            );
            assert!(
                stepped(&m, &tokens, 30).equal(&dense_stepped),
                "{}: decode logits differ after restore",
                action.label()
            );
        }
    }
}

#[test]
fn a_failed_restore_check_rebuilds_the_dense_model() {
    let (mut m, imp) = embedded();
    let tokens = ids(16, m.config().vocab_size);
    let dense = logits(&m, &tokens);
    let mut cache = ProfileCache::new(imp, usize::MAX);
    cache.set_probe(&mut m, &tokens);
    cache.apply(&mut m, &Action::parse("layers:0.25").unwrap()).unwrap();
    {
        // Something scribbles on a dense weight while pruned.
        let _g = tch::no_grad_guard();
        let _ = m.dense_blocks()[3].down_weight().shallow_clone().narrow(0, 0, 1).fill_(0.0);
    }
    let src = repo_path(DEFAULT_MODEL);
    let r = cache.restore(&mut m, &mut || Ok(load(&src))).unwrap();
    assert!(!r.identical && r.rebuilt);
    assert!(logits(&m, &tokens).equal(&dense));
    assert!(m.profile_ids().is_empty(), "profiles of the old model are gone");
}

#[test]
fn kv_window_decode_matches_between_paths_and_is_dense_when_wide() {
    let (mut fast, imp) = embedded();
    let (mut slow, _) = embedded();
    slow.disable_cpu_decode();
    let tokens = ids(48, fast.config().vocab_size);
    let dense = stepped(&fast, &tokens, 8);
    let mut cf = ProfileCache::new(imp.clone(), usize::MAX);
    let mut cs = ProfileCache::new(imp, usize::MAX);
    for (spec, same_as_dense) in [("kv_window:2+8", false), ("kv_window:4+64", true)] {
        let a = Action::parse(spec).unwrap();
        cf.apply(&mut fast, &a).unwrap();
        cs.apply(&mut slow, &a).unwrap();
        let (x, y) = (stepped(&fast, &tokens, 8), stepped(&slow, &tokens, 8));
        assert!(max_diff(&x, &y) <= 1e-4, "{spec}: CPU decode vs torch path {}", max_diff(&x, &y));
        assert_eq!(max_diff(&x, &dense) <= 1e-4, same_as_dense, "{spec}");
        fast.activate_dense();
        slow.activate_dense();
    }
}

#[test]
fn the_profile_cache_evicts_least_recently_used_within_its_budget() {
    let (mut m, imp) = embedded();
    let mut probe = ProfileCache::new(imp.clone(), usize::MAX);
    let one = probe.ensure(&mut m, &Action::parse("ffn:0.25").unwrap()).unwrap().unwrap().bytes;
    assert!(one > 0);
    let (mut m, _) = embedded();
    let mut cache = ProfileCache::new(imp, one * 2 + one / 2);
    for a in ["ffn:0.25", "ffn:0.5", "ffn:0.25", "ffn:0.125"] {
        cache.ensure(&mut m, &Action::parse(a).unwrap()).unwrap();
    }
    // ffn:0.5 was least recently used when ffn:0.125 arrived.
    let names: Vec<String> =
        m.profile_ids().iter().map(|&id| m.profile(id).unwrap().name.clone()).collect();
    assert_eq!(names, vec!["ffn:0.25", "ffn:0.125"]);
    assert!(cache.bytes() <= cache.max_bytes);
    let mut tiny = ProfileCache::new(cache.importance.clone(), 10);
    let e = tiny.ensure(&mut m, &Action::parse("ffn:0.25").unwrap()).unwrap_err().to_string();
    assert!(e.contains("cache budget"), "{e}");
}

/// The embedded model, a 24-token prompt and a harness whose probe is its first 8 tokens.
fn harness_on_embedded() -> (Llama, Vec<u32>, casrap_actor::prune::harness::Harness) {
    let (mut m, imp) = embedded();
    let tokens = ids(24, m.config().vocab_size);
    let mut cache = ProfileCache::new(imp, usize::MAX);
    cache.set_probe(&mut m, &tokens[..8]);
    let src = repo_path(DEFAULT_MODEL);
    let h = casrap_actor::prune::harness::Harness::new(cache, Box::new(move || Ok(load(&src))));
    (m, tokens, h)
}

#[test]
fn harness_interleaves_runs_and_judges_quality_on_dense_tokens() {
    use casrap_actor::prune::harness::{summarize, table, MeasureOptions, Measurement};
    let (mut m, tokens, mut h) = harness_on_embedded();
    let o = MeasureOptions { new_tokens: 8, pairs: 2, timing: Timing::Runs };
    let none = h.measure(&mut m, &Action::None, &tokens, None, &o, 0).unwrap();
    let order: Vec<bool> = none.runs.iter().map(|r| r.pruned).collect();
    assert_eq!(order, vec![false, true, true, false], "ABBA");
    assert_eq!((none.ppl_dense, none.top1_agreement, none.ceiling()), (none.ppl_pruned, 1.0, 1.0));
    assert!(none.runs.iter().all(|r| r.decode_steps == 7));
    let layers =
        h.measure(&mut m, &Action::parse("layers:0.25").unwrap(), &tokens, None, &o, 1).unwrap();
    let order: Vec<bool> = layers.runs.iter().map(|r| r.pruned).collect();
    assert_eq!(
        order,
        vec![true, false, false, true],
        "the next measurement starts with the other side"
    );
    assert!(
        layers.ceiling() > 1.2 && layers.ceiling() < 1.4,
        "2 of 8 layers skipped: ceiling {}",
        layers.ceiling()
    );
    assert!(layers.ppl_pruned != layers.ppl_dense && layers.top1_agreement < 1.0);
    assert!(layers.restore_identical && !layers.rebuilt);
    assert_eq!(
        layers.runs.iter().filter(|r| r.apply_s.is_some() && r.restore_s.is_some()).count(),
        2
    );
    assert_eq!(m.active(), casrap_engine::model::ProfileId::DENSE);
    // A KV window's ceiling counts the K/V bytes of every decode step at its own context: the
    // dense steps read keys 24..=31 (mean 27.5), the windowed ones 2 + 4 of them.
    let window =
        h.measure(&mut m, &Action::parse("kv_window:2+4").unwrap(), &tokens, None, &o, 2).unwrap();
    let (weights, per_key) = (m.weight_bytes_per_token(), m.kv_bytes_per_token(1));
    assert_eq!(window.dense_bytes_per_token, weights + (24..32).sum::<usize>() * per_key / 8);
    assert_eq!(window.pruned_bytes_per_token, weights + 6 * per_key);
    assert!(window.ceiling() > 1.0, "{}", window.ceiling());
    // The table is computed from the raw records alone.
    let ms = vec![none, layers];
    let json = serde_json::to_string(&ms).unwrap();
    let back: Vec<Measurement> = serde_json::from_str(&json).unwrap();
    let t = table(&summarize(&back));
    assert_eq!(t, table(&summarize(&ms)));
    assert!(t.contains("| none | 1 |") && t.contains("| layers:0.25 | 1 |"), "{t}");
}

#[test]
fn interleaved_timing_keeps_every_step_and_judges_the_same_tokens_as_whole_runs() {
    use casrap_actor::prune::harness::{median, MeasureOptions};
    let (mut m, tokens, mut h) = harness_on_embedded();
    let inter = MeasureOptions { new_tokens: 8, pairs: 2, timing: Timing::Interleaved };
    let runs = MeasureOptions { timing: Timing::Runs, ..inter.clone() };
    for (k, label) in ["none", "layers:0.25", "heads:0.25", "kv_window:2+4"].iter().enumerate() {
        let action = Action::parse(label).unwrap();
        let a = h.measure(&mut m, &action, &tokens, None, &inter, k).unwrap();
        let b = h.measure(&mut m, &action, &tokens, None, &runs, k).unwrap();
        assert_eq!(a.steps.len(), 2 * 7, "{label}: every decode step of both passes");
        assert!(a.steps.iter().flatten().all(|&s| s > 0.0 && s.is_finite()), "{label}");
        assert!(b.steps.is_empty(), "{label}: whole runs keep no steps");
        let ratios = a.steps.iter().map(|[d, p]| d / p).collect();
        assert_eq!(a.speedup(), median(ratios), "{label}: the speedup comes from the steps");
        // The dense side of an interleaved pass decodes what a whole dense run decodes, so both
        // methods judge quality on the same tokens.
        assert_eq!(
            (a.ppl_dense, a.ppl_pruned, a.top1_agreement),
            (b.ppl_dense, b.ppl_pruned, b.top1_agreement),
            "{label}"
        );
        let order: Vec<bool> = a.runs.iter().map(|r| r.pruned).collect();
        let want = if k % 2 == 0 { [false, true, true, false] } else { [true, false, false, true] };
        assert_eq!(order, want, "{label}: passes alternate which side starts");
        assert_eq!(
            a.restores_checked, 1,
            "{label}: passes switch back; the last restore is checked"
        );
        assert!(a.restore_identical && !a.rebuilt, "{label}");
        assert_eq!(m.active(), casrap_engine::model::ProfileId::DENSE, "{label}");
    }
}

#[test]
fn calibration_fits_each_kind_within_each_budget_and_writes_a_usable_action_list() {
    use casrap_actor::prune::calibrate;
    use casrap_actor::prune::setup::{Calibration, Setup, SetupOptions};
    use casrap_common::action::ActionKind;
    let mut setup = Setup::open(&SetupOptions {
        model: DEFAULT_MODEL.into(),
        dtype: "f32".into(),
        device: "cpu".into(),
        seed: 0,
        calibration: Calibration::WeightNorm,
        max_profile_bytes: None,
        sparsity: None,
    })
    .unwrap();
    let text =
        casrap_common::text::read_plain(&repo_path(casrap_engine::resolve::DEFAULT_EVAL_TEXT))
            .unwrap();
    let mut tokens = setup.tokenizer.encode(&text).unwrap();
    tokens.truncate(512);
    let kinds = [ActionKind::Layers, ActionKind::Ffn, ActionKind::KvWindow];
    let budgets = [0.05, 0.5];
    let mut seen = 0;
    let o = calibrate::Options { model: "m", text: "t", budgets: &budgets, kinds: &kinds };
    let text = calibrate::Text::Windows { tokens: &tokens, window: 128 };
    let c = calibrate::run(&mut setup, &text, &o, |_| seen += 1).unwrap();
    // 8 layers: 1 and 2 skipped; FFN 768 channels: 64 to 384 removed in steps of 64; KV windows
    // of 16, 32 and 64 (4 + 128 would cover the calibration windows of 128: it changes nothing).
    assert_eq!(c.points.len(), 2 + 6 + 3, "{}", c.table());
    // Every FFN step removes more than the one before.
    let ffn: Vec<f64> =
        c.points.iter().filter(|p| p.kind == ActionKind::Ffn).map(|p| p.ceiling).collect();
    assert!(ffn.windows(2).all(|w| w[1] > w[0]), "{ffn:?}");
    assert_eq!(seen, c.points.len());
    assert!(c.points.iter().all(|p| p.kind != ActionKind::KvWindow || p.intensity < 124.0));
    for f in &c.fitted {
        assert!(f.ppl_change <= f.budget, "{f:?}");
        // The strongest within the budget: no point of the kind with a higher ceiling fits it.
        assert!(!c
            .points
            .iter()
            .any(|p| p.kind == f.kind && p.ppl_change <= f.budget && p.ceiling > f.ceiling));
    }
    let labels: Vec<&str> = c.fitted.iter().map(|f| f.action.as_str()).collect();
    let mut unique = labels.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), labels.len(), "an action listed twice: {labels:?}");
    // The list is a valid `actions:` section of a run config.
    let yaml = format!("{}learner: {{dir: /tmp/x}}\n", c.actions_yaml());
    let cfg =
        casrap_common::config::RunConfig::from_yaml(&yaml, std::path::Path::new("fitted.yaml"))
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(cfg.action_labels().len(), 1 + c.fitted.len(), "{yaml}");
    assert_eq!(cfg.action_labels()[1..], labels[..]);
}

#[test]
fn calibration_on_served_requests_averages_each_requests_change() {
    use casrap_actor::prune::calibrate;
    use casrap_actor::prune::setup::{Setup, SetupOptions};
    use casrap_common::action::ActionKind;
    use casrap_common::config::PromptFormat;
    use casrap_common::prompts::{BadRows, PromptSet};
    use casrap_engine::perplexity;
    let prompts = casrap_engine::resolve::DEFAULT_PROMPTS;
    let set = PromptSet::load(&repo_path(prompts), BadRows::Skip).unwrap();
    let split = set.split(0.2, casrap_actor::episodes::SPLIT_SEED);
    let mut setup = Setup::open(&SetupOptions {
        model: DEFAULT_MODEL.into(),
        dtype: "f32".into(),
        device: "cpu".into(),
        seed: 0,
        calibration: casrap_actor::episodes::train_calibration(&split.train, prompts),
        max_profile_bytes: None,
        sparsity: Some(Allocation::Uniform),
    })
    .unwrap();
    let sequences: Vec<Vec<u32>> = split.train[..3]
        .iter()
        .map(|p| {
            let mut seq = setup.tokenizer.prompt(&p.prompt, PromptFormat::Raw, 64).unwrap();
            let r = casrap_actor::prune::harness::reference(&setup.model, &seq, 8).unwrap();
            seq.extend(r.continuation);
            seq
        })
        .collect();
    let (kinds, budgets) = ([ActionKind::Sparsity], [0.02, 0.2]);
    let o = calibrate::Options { model: "m", text: "served", budgets: &budgets, kinds: &kinds };
    let text = calibrate::Text::Served { sequences: &sequences };
    let c = calibrate::run(&mut setup, &text, &o, |_| ()).unwrap();
    assert_eq!((c.requests, c.window), (3, 0));
    assert_eq!(c.tokens, sequences.iter().map(Vec::len).sum::<usize>());
    assert!(c.points.len() >= 13, "{}", c.table());
    // Each point's change is the mean of the requests' own changes, recomputed here.
    let ppl = |m: &Llama, s: &[u32]| perplexity::evaluate(m, s, s.len(), 1).unwrap().perplexity();
    setup.model.activate_dense();
    let dense: Vec<f64> = sequences.iter().map(|s| ppl(&setup.model, s)).collect();
    for point in [&c.points[0], c.points.last().unwrap()] {
        let action = Action::parse(&point.action).unwrap();
        setup.harness.cache.apply(&mut setup.model, &action).unwrap();
        let change =
            sequences.iter().zip(&dense).map(|(s, d)| (ppl(&setup.model, s) - d) / d).sum::<f64>()
                / 3.0;
        setup.model.activate_dense();
        assert!(
            (point.ppl_change - change).abs() < 1e-9,
            "{}: {} vs {change}",
            point.action,
            point.ppl_change
        );
    }
    // An empty request list is refused, naming the text.
    let empty: Vec<Vec<u32>> = Vec::new();
    let err =
        calibrate::run(&mut setup, &calibrate::Text::Served { sequences: &empty }, &o, |_| ())
            .unwrap_err();
    assert!(err.to_string().contains("served"), "{err}");
}
