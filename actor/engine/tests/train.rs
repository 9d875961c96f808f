//! Training: the BPE tokenizer and the LLaMA trainer are deterministic from a seed, training
//! lowers the loss, and the folder it writes loads through the normal model path.

use std::path::Path;

use casrap_common::repo_path;
use casrap_engine as engine;
use casrap_engine::resolve::{Resolver, DEFAULT_EVAL_TEXT};
use casrap_engine::train::export::Shape;
use casrap_engine::train::lm::TrainOptions;
use casrap_engine::train::pipeline::{self, Recipe, RECORD_FILE};
use casrap_engine::train::{bpe, corpus::Corpus};
use casrap_engine::{generate, perplexity, sampling::Sampling};
use tch::{Device, Kind};

/// A small corpus folder: the committed held-out text cut into documents of about 3 KB.
fn small_corpus(dir: &Path, docs: usize) {
    let text = std::fs::read_to_string(repo_path(DEFAULT_EVAL_TEXT)).expect("held-out text");
    let mut chunk = String::new();
    let mut n = 0;
    for para in text.split("\n\n") {
        chunk.push_str(para);
        chunk.push_str("\n\n");
        if chunk.len() > 3000 {
            std::fs::write(dir.join(format!("doc{n:03}.txt")), &chunk)
                .expect("write a corpus document");
            chunk.clear();
            n += 1;
            if n == docs {
                break;
            }
        }
    }
}

#[test]
fn tokenizer_training_is_deterministic_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    small_corpus(dir.path(), 20);
    let corpus = Corpus::from_dir(dir.path()).unwrap();
    let a = bpe::train(&corpus.documents, 600).unwrap();
    let b = bpe::train(&corpus.documents, 600).unwrap();
    assert_eq!(a.to_string(false).unwrap(), b.to_string(false).unwrap());
    assert_eq!(a.get_vocab_size(true), 600);
    for text in [&corpus.documents[3][..400], "Ünïcödé 🦀 and\ttabs\r\n", "x"] {
        let enc = a.encode(text, true).unwrap();
        assert_eq!(enc.get_ids()[0], bpe::BOS_ID);
        assert_eq!(a.decode(enc.get_ids(), true).unwrap(), text);
    }
    let doc = bpe::encode_document(&a, "hello").unwrap();
    assert_eq!((doc.first(), doc.last()), (Some(&bpe::BOS_ID), Some(&bpe::EOS_ID)));
    assert!(bpe::train(&corpus.documents, 200).unwrap_err().to_string().contains("vocab_size"));
}

fn recipe(corpus: &Path, out: &Path) -> Recipe {
    Recipe {
        corpus: corpus.into(),
        out: out.into(),
        shape: Shape {
            hidden: 64,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            ffn: 128,
            vocab: 400,
            max_positions: 128,
            rope_theta: 10000.0,
        },
        options: TrainOptions {
            steps: 80,
            batch: 8,
            seq_len: 32,
            warmup_steps: 5,
            lr: 3e-3,
            min_lr: 3e-4,
            ..TrainOptions::default()
        },
    }
}

#[test]
fn training_is_reproducible_learns_and_writes_a_loadable_folder() {
    let corpus = tempfile::tempdir().unwrap();
    small_corpus(corpus.path(), 20);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ra = pipeline::run(&recipe(corpus.path(), a.path()), |_| {}).unwrap();
    pipeline::run(&recipe(corpus.path(), b.path()), |_| {}).unwrap();
    for f in ["model.safetensors", "tokenizer.json", "config.json"] {
        assert_eq!(
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap(),
            "{f} differs between runs"
        );
    }
    // Training must beat the best unigram model of the corpus (what a model that only learned
    // token frequencies would reach), not just the initial ln(vocab).
    let tokenizer = tokenizers::Tokenizer::from_file(a.path().join("tokenizer.json")).unwrap();
    let stream: Vec<u32> = Corpus::from_dir(corpus.path())
        .unwrap()
        .documents
        .iter()
        .flat_map(|d| bpe::encode_document(&tokenizer, d).unwrap())
        .collect();
    let unigram = perplexity::unigram(&stream, stream.len()).perplexity().ln();
    let first = ra.steps[0].loss;
    let last: f64 = ra.steps[ra.steps.len() - 5..].iter().map(|s| s.loss).sum::<f64>() / 5.0;
    assert!((first - (400f64).ln()).abs() < 0.5, "initial loss {first} is not near ln(vocab)");
    eprintln!("loss {first:.3} -> {last:.3}; unigram entropy {unigram:.3}");
    assert!(
        last < unigram - 0.1,
        "loss went from {first} to {last}; the corpus' unigram entropy is {unigram}"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.path().join(RECORD_FILE)).unwrap())
            .unwrap();
    assert_eq!(record["steps"].as_array().map(Vec::len), Some(80));

    let source = Resolver::from_env().resolve(a.path().to_str().unwrap()).unwrap();
    let m = engine::load(&source, Kind::Float, Device::Cpu, 0).unwrap();
    assert_eq!(m.model.config().num_layers, 2);
    let prompt = m.tokenizer.encode("The module").unwrap();
    let opts = generate::GenerateOptions {
        max_new_tokens: 5,
        sampling: Sampling::Greedy,
        ignore_eos: true,
    };
    assert_eq!(generate::generate(&m.model, &prompt, &opts).unwrap().tokens.len(), 5);
}

#[test]
fn bad_training_input_is_reported() {
    let empty = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = pipeline::run(&recipe(empty.path(), out.path()), |_| {}).unwrap_err().to_string();
    assert!(err.contains("no non-empty *.txt"), "{err}");
    std::fs::write(empty.path().join("bad.txt"), b"caf\xe9").unwrap();
    let err = pipeline::run(&recipe(empty.path(), out.path()), |_| {}).unwrap_err().to_string();
    assert!(err.contains("bad.txt") && err.contains("not UTF-8"), "{err}");
}
