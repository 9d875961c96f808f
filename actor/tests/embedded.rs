//! The committed default model (models/pydoc-llama-7m): it loads through the normal `--model`
//! path, its tokenizer round-trips, it beats the unigram baseline by the margin its README claims,
//! and skipping layers costs quality unevenly.

use casrap_common::config::PromptFormat;
use casrap_common::repo_path;
use casrap_engine::resolve::{ModelSource, Resolver, DEFAULT_EVAL_TEXT, DEFAULT_MODEL};
use casrap_engine::{generate, perplexity, sampling::Sampling};
use tch::{Device, Kind};

fn load() -> casrap_engine::LoadedModel {
    let source = Resolver::from_env().resolve(DEFAULT_MODEL).expect("the default model resolves");
    assert!(matches!(source, ModelSource::Dir(_)), "default model is a folder");
    casrap_engine::load(&source, Kind::Float, Device::Cpu, 0).expect("the default model loads")
}

fn heldout_tokens(m: &casrap_engine::LoadedModel, n: usize) -> Vec<u32> {
    let text =
        casrap_common::text::read_plain(&repo_path(DEFAULT_EVAL_TEXT)).expect("held-out text");
    let mut ids = m.tokenizer.encode(&text).expect("encode");
    ids.truncate(n);
    ids
}

#[test]
fn default_model_has_the_promised_shape() {
    let m = load();
    let c = m.model.config();
    assert!(c.num_layers >= 8, "{} layers", c.num_layers);
    assert!(c.group_size() >= 2, "GQA group of {}", c.group_size());
    assert!(c.tie_word_embeddings);
    let p = c.num_parameters();
    assert!((5_000_000..=10_000_000).contains(&p), "{p} parameters");
    let dir = repo_path(DEFAULT_MODEL);
    for f in ["config.json", "tokenizer.json", "model.safetensors", "generation_config.json"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let bytes: u64 =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(bytes <= 20 * 1024 * 1024, "model folder is {bytes} bytes");
}

#[test]
fn tokenizer_round_trips_text_exactly() {
    let m = load();
    for text in [
        "The quick brown fox jumps over the lazy dog.",
        "def f(x):\n    return x ** 2  # square\n",
        "  leading and trailing spaces  ",
        "Unicode: naïve café, 東京, emoji 🦀, math ∑∫.",
        "tabs\tand\r\nwindows newlines",
        "",
    ] {
        let ids = m.tokenizer.encode(text).expect("encode");
        assert_eq!(ids.first(), Some(&0), "BOS first for {text:?}");
        assert_eq!(m.tokenizer.decode(&ids).expect("decode"), text);
    }
}

#[test]
fn default_model_generates_from_the_command_line_in_any_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_casrap-actor"))
        .args(["generate", "--prompt", "The list type in Python", "--max-new-tokens", "12"])
        .current_dir(cwd.path())
        .env_remove("CASRAP_MODEL")
        .output()
        .expect("run casrap-actor");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("The list type in Python"), "{stdout}");
    assert!(stdout.contains("new tokens:      12") || stdout.contains("stop: Eos"), "{stdout}");
}

/// `casrap-actor generate` on a copy of the default model with `template` as its
/// `chat_template.jinja` (none when empty); returns (success, stdout, stderr).
fn generate_with_template(template: &str, extra: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    for e in std::fs::read_dir(repo_path(DEFAULT_MODEL)).expect("model folder") {
        let e = e.expect("model folder entry");
        std::fs::copy(e.path(), dir.path().join(e.file_name())).expect("copy a model file");
    }
    if !template.is_empty() {
        std::fs::write(dir.path().join("chat_template.jinja"), template).expect("write template");
    }
    let model = dir.path().to_str().expect("UTF-8 temp path");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_casrap-actor"))
        .args(["generate", "--model", model, "--prompt", "Lists", "--max-new-tokens", "4"])
        .args(extra)
        .output()
        .expect("run casrap-actor");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn generate_applies_the_models_chat_template_unless_raw() {
    let template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}\
                    {% if add_generation_prompt %}<|assistant|>{% endif %}";
    let (ok, out, err) = generate_with_template(template, &[]);
    assert!(ok, "{err}");
    assert!(out.starts_with("<|user|>Lists\n<|assistant|>"), "{out}");
    assert!(out.contains("(chat template)"), "{out}");
    let (ok, out, err) = generate_with_template(template, &["--raw"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("Lists") && out.contains("(raw)"), "{out}");
    // A model without a template gets the prompt raw.
    let (ok, out, err) = generate_with_template("", &[]);
    assert!(ok, "{err}");
    assert!(out.starts_with("Lists") && out.contains("(raw)"), "{out}");
    // A broken template is named with its cause; --raw still works.
    let (ok, _, err) = generate_with_template("{% for m in messages %}", &[]);
    assert!(!ok);
    assert!(err.contains("chat_template.jinja") && err.contains("chat template"), "{err}");
    let (ok, _, err) = generate_with_template("{% for m in messages %}", &["--raw"]);
    assert!(ok, "{err}");
}

#[test]
fn chat_prompts_need_a_template_and_say_so() {
    let m = load();
    let e = m.tokenizer.prompt("x", PromptFormat::Chat, 8).expect_err("no template").to_string();
    assert!(e.contains("no chat template") && e.contains("pydoc-llama-7m"), "{e}");
    let raw = m.tokenizer.prompt("The dictionary type", PromptFormat::Raw, 3).expect("raw");
    assert_eq!(raw.len(), 3, "truncated to the first 3 tokens");
    assert_eq!(raw, m.tokenizer.encode("The dictionary type").unwrap()[..3]);
}

#[test]
fn greedy_text_is_english_like() {
    let m = load();
    let prompt = m.tokenizer.encode("The dictionary").unwrap();
    let g = generate::generate(
        &m.model,
        &prompt,
        &generate::GenerateOptions {
            max_new_tokens: 24,
            sampling: Sampling::Greedy,
            ignore_eos: true,
        },
    )
    .unwrap();
    let text = m.tokenizer.decode(&g.tokens).unwrap();
    let words =
        text.split_whitespace().filter(|w| w.chars().all(|c| c.is_ascii_alphabetic())).count();
    assert!(words >= 5, "few words in {text:?}");
}

#[test]
fn heldout_perplexity_is_under_a_quarter_of_the_unigram_baseline() {
    let mut m = load();
    let ids = heldout_tokens(&m, 16 * 1024);
    let r = perplexity::report(&mut m.model, &ids, 256, 8, false).unwrap();
    let (ppl, uni) = (r.dense.perplexity(), r.unigram.perplexity());
    eprintln!("held-out perplexity {ppl:.2}, unigram {uni:.2} on {} tokens", r.dense.tokens);
    assert!(ppl * 4.0 <= uni, "perplexity {ppl} vs unigram {uni}");
}

#[test]
fn skipping_a_layer_costs_quality_and_unevenly() {
    let mut m = load();
    let ids = heldout_tokens(&m, 4 * 1024);
    let r = perplexity::report(&mut m.model, &ids, 256, 8, true).unwrap();
    let dense = r.dense.perplexity();
    let costs: Vec<f64> = r.skip_layer.iter().map(|(_, n)| n.perplexity() / dense).collect();
    eprintln!("dense {dense:.2}; skip cost per layer {costs:.3?}");
    assert_eq!(costs.len(), m.model.config().num_layers);
    assert!(m.model.profile_ids().is_empty(), "the skip profiles are removed");
    assert!(costs.iter().all(|&c| c > 1.0), "a skipped layer did not cost quality: {costs:?}");
    let (lo, hi) = costs.iter().fold((f64::MAX, 0f64), |(lo, hi), &c| (lo.min(c), hi.max(c)));
    assert!(hi - 1.0 >= 3.0 * (lo - 1.0), "costs are too even: {costs:?}");
}

#[test]
fn prune_bench_prints_a_table_and_reprints_it_from_its_raw_records() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench.json");
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_casrap-lab"))
            .args(args)
            .env("CASRAP_CACHE", dir.path())
            .output()
            .expect("run casrap-lab");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let first = run(&[
        "prune-bench",
        "--prompts",
        "2",
        "--new-tokens",
        "4",
        "--pairs",
        "1",
        "--calibration-windows",
        "4",
        "--actions",
        "none,heads:0.1,ffn:0.25,layers:0.125,kv_window:2+8",
        "--out",
        out.to_str().unwrap(),
    ]);
    for action in ["none", "heads:0.1", "ffn:0.25", "layers:0.125", "kv_window:2+8"] {
        assert!(first.contains(&format!("| {action} | 2 |")), "{action} missing:\n{first}");
    }
    assert!(first.contains("calibration (4 windows"), "{first}");
    let again = run(&["prune-bench", "--report", out.to_str().unwrap()]);
    let table =
        |s: &str| s.lines().filter(|l| l.starts_with('|')).map(String::from).collect::<Vec<_>>();
    assert_eq!(table(&first), table(&again));
    // A second run reuses the saved importances.
    let cached = std::fs::read_dir(dir.path().join("importance")).unwrap().count();
    assert_eq!(cached, 1);
}

#[test]
fn long_prompts_fit_the_embedded_model() {
    // The prompt set's `long` category (data/prompts/make_prompts.py) exists so that long-context
    // actions matter: 400 to 900 tokens, within the model's positions with the decoded tokens.
    use casrap_common::prompts::{BadRows, PromptSet};
    let m = load();
    let set = PromptSet::load(&repo_path("data/prompts/prompts.csv"), BadRows::Fail).unwrap();
    let long: Vec<_> = set.prompts.iter().filter(|p| p.category == "long").collect();
    assert!(long.len() >= 100, "{} long prompts", long.len());
    let max_positions = m.model.config().max_position_embeddings;
    for p in long {
        let n = m.tokenizer.encode(&p.prompt).unwrap().len();
        assert!((400..=900).contains(&n), "line {}: {n} tokens", p.line);
        assert!(n + 64 <= max_positions, "line {}: {n} tokens leave no room to decode", p.line);
    }
}

/// An error is printed with its causes and without a backtrace, even where RUST_BACKTRACE asks
/// for one (a user needs the message, not the stack).
#[test]
fn an_error_is_reported_without_a_backtrace() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_casrap-actor"))
        .args(["generate", "--model", "/nonexistent/model", "--prompt", "x"])
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("run casrap-actor");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: ") && stderr.contains("/nonexistent/model"), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
}

/// The production binary carries what a deployment runs; the research tools are `casrap-lab`'s.
#[test]
fn the_actor_binary_keeps_production_commands_and_the_lab_the_rest() {
    let help = |bin: &str| {
        let out = std::process::Command::new(bin).arg("--help").output().expect("run --help");
        assert!(out.status.success(), "{bin}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let commands: Vec<String> = text
            .lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .filter(|c| c != "help")
            .collect();
        commands
    };
    assert_eq!(help(env!("CARGO_BIN_EXE_casrap-actor")), ["run", "test", "eval", "generate"]);
    let lab = help(env!("CARGO_BIN_EXE_casrap-lab"));
    for c in [
        "bench-decode",
        "export-synthetic",
        "train-model",
        "eval-ppl",
        "prompt-stats",
        "prune-bench",
        "calibrate-actions",
        "bench-kernels",
        "self-spec",
    ] {
        assert!(lab.iter().any(|l| l == c), "{c} missing from casrap-lab: {lab:?}");
    }
    assert!(!lab.iter().any(|l| l == "run"), "{lab:?}");
}
