//! `casrap eval`: accuracy on a multiple-choice file whose answers are forced by the model's own
//! likelihoods, the committed samples, and a malformed file named with its line.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use casrap_engine::generate::{self, GenerateOptions};
use casrap_engine::sampling::Sampling;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn eval(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_casrap"))
        .env("RUST_BACKTRACE", "0")
        .arg("eval")
        .arg("--config")
        .arg(repo("deploy/local.yaml"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn accuracy_follows_the_models_own_likelihoods() {
    // For each question: the model's own greedy continuation against junk it cannot predict, in
    // alternating positions. The answer key marks the continuation right on 6 questions and the
    // junk right on 2, so a log-likelihood scorer gets exactly 6 of 8 (always picking the first
    // choice would get 4).
    let cfg = casrap_common::config::RunConfig::from_file(&repo("deploy/local.yaml")).unwrap();
    let (setup, split) = casrap_actor::episodes::open_setup(&cfg, "cpu").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for (i, p) in split.test.iter().take(8).enumerate() {
        let question: String = p.prompt.split_whitespace().take(12).collect::<Vec<_>>().join(" ");
        let tokens = setup.tokenizer.encode(&question).unwrap();
        let opts =
            GenerateOptions { max_new_tokens: 6, sampling: Sampling::Greedy, ignore_eos: true };
        let g = generate::generate(&setup.model, &tokens, &opts).unwrap();
        let own = setup.tokenizer.decode(&g.tokens).unwrap().trim().to_string();
        assert!(!own.is_empty());
        let junk = "qzx vvkj wq zzpx kkq".to_string();
        let (choices, own_at) = if i % 2 == 0 { ([own, junk], 0) } else { ([junk, own], 1) };
        let answer = if i < 6 { own_at } else { 1 - own_at };
        lines.push(
            serde_json::json!({"question": question, "choices": choices, "answer": answer})
                .to_string(),
        );
    }
    let file = tmp.path().join("forced.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = eval(&["--mc", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("| dense | - | - | - | 75.0% (6/8) |"), "{stdout}");
}

#[test]
fn the_committed_samples_evaluate_for_dense_and_fixed_actions() {
    let json = tempfile::NamedTempFile::new().unwrap();
    let out = eval(&[
        "--text",
        repo("data/eval/wikitext-sample.raw").to_str().unwrap(),
        "--format",
        "wikitext",
        "--mc",
        repo("data/eval/mc-sample.jsonl").to_str().unwrap(),
        "--actions",
        "ffn:0.25,layers:0.125",
        "--json",
        json.path().to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(json.path()).unwrap()).unwrap();
    assert_eq!(
        rows.iter().map(|r| r["subject"].as_str().unwrap()).collect::<Vec<_>>(),
        ["dense", "ffn:0.25", "layers:0.125"]
    );
    for r in &rows {
        assert_eq!(r["mc"]["items"], 16);
        assert!(r["text"]["tokens"].as_u64().unwrap() > 3000, "{r}");
        let ppl = r["text"]["perplexity"].as_f64().unwrap();
        assert!(ppl.is_finite() && ppl > 1.0, "{r}");
    }
    // Skipping a layer loses something on every text this model has seen.
    assert!(
        rows[2]["text"]["perplexity"].as_f64().unwrap()
            > rows[0]["text"]["perplexity"].as_f64().unwrap()
    );
}

#[test]
fn a_malformed_question_is_named_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.jsonl");
    std::fs::write(&file, "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 1}\n{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 2}\n").unwrap();
    let out = eval(&["--mc", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("bad.jsonl:2: answer 2 is not one of the 2 choices"), "{stderr}");
}

#[test]
fn casrap_eval_passes_arguments_and_exit_codes_through_to_the_actor() {
    // `casrap eval` runs `casrap-actor eval`: its options, its usage under the name typed, and
    // its exit code (2: a usage error).
    let out = eval(&["--no-such-flag"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--no-such-flag") && stderr.contains("Usage: casrap eval"), "{stderr}");
    let help =
        Command::new(env!("CARGO_BIN_EXE_casrap")).args(["eval", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success() && text.contains("--policy <POLICY>"), "{text}");
}
