//! `casrap-lab train-model`: trains the embedded model (a byte-level BPE tokenizer and a small
//! LLaMA on a folder of documents), written as an HF folder.

use anyhow::Context;
use casrap_actor::cli::set_threads;
use casrap_engine::train::export::Shape;
use casrap_engine::train::lm::TrainOptions;
use casrap_engine::train::pipeline::{self, Progress, Recipe};

#[derive(clap::Args)]
pub struct Args {
    /// Folder of UTF-8 `.txt` documents (default: where scripts/fetch-corpus puts them).
    #[arg(long)]
    corpus: Option<std::path::PathBuf>,
    /// Output folder.
    #[arg(long, default_value = casrap_engine::resolve::DEFAULT_MODEL)]
    out: std::path::PathBuf,
    /// Seed of the initial weights and of the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Optimiser steps.
    #[arg(long, default_value_t = TrainOptions::default().steps)]
    steps: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = TrainOptions::default().batch)]
    batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = TrainOptions::default().seq_len)]
    seq_len: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = TrainOptions::default().lr)]
    lr: f64,
    /// Compute dtype: bf16 (mixed precision, f32 master weights) or f32.
    #[arg(long, default_value = "bf16")]
    compute: String,
    /// Layers (the other dimensions are the embedded model's; see `models/README.md`).
    #[arg(long, default_value_t = Shape::default().layers)]
    layers: usize,
    /// Hidden size.
    #[arg(long, default_value_t = Shape::default().hidden)]
    hidden: usize,
    /// FFN width.
    #[arg(long, default_value_t = Shape::default().ffn)]
    ffn: usize,
    /// Vocabulary size of the BPE tokenizer.
    #[arg(long, default_value_t = Shape::default().vocab)]
    vocab: usize,
    /// Torch threads (default: one per core).
    #[arg(long, env = "CASRAP_THREADS")]
    threads: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    set_threads(args.threads)?;
    let corpus = match args.corpus {
        Some(c) => c,
        None => casrap_engine::resolve::cache_dir()
            .context("pass --corpus")?
            .join("corpus/python3.11-doc/train"),
    };
    anyhow::ensure!(
        corpus.is_dir(),
        "corpus folder {} not found; run scripts/fetch-corpus first",
        corpus.display()
    );
    let shape = Shape {
        layers: args.layers,
        hidden: args.hidden,
        ffn: args.ffn,
        vocab: args.vocab,
        ..Shape::default()
    };
    let options = TrainOptions {
        seed: args.seed,
        steps: args.steps,
        batch: args.batch,
        seq_len: args.seq_len,
        lr: args.lr,
        min_lr: args.lr / 10.0,
        compute: match args.compute.as_str() {
            "bf16" => "bf16",
            "f32" => "f32",
            other => anyhow::bail!("--compute `{other}`: expected bf16 or f32"),
        },
        ..TrainOptions::default()
    };
    let recipe = Recipe { corpus, out: args.out.clone(), shape, options };
    let tokens_per_step = (recipe.options.batch * recipe.options.seq_len) as f64;
    let mut ema: Option<f64> = None;
    let record = pipeline::run(&recipe, |p| match p {
        Progress::Stage(s) => tracing::info!("{s}"),
        Progress::Step(s, eta) => {
            let e = ema.map_or(s.loss, |e| 0.95 * e + 0.05 * s.loss);
            ema = Some(e);
            if s.step % 20 == 0 || s.step + 1 == recipe.options.steps {
                tracing::info!(
                    step = s.step + 1,
                    of = recipe.options.steps,
                    loss = format!("{e:.3}"),
                    lr = format!("{:.2e}", s.lr),
                    tokens_per_s = (tokens_per_step * (s.step + 1) as f64 / s.elapsed_s) as u64,
                    eta_s = eta.as_secs(),
                    "training"
                );
            }
        }
    })?;
    println!(
        "wrote {} ({} parameters, {} corpus tokens, tokenizer {:.0} s, training {:.0} s)",
        args.out.display(),
        record.parameters,
        record.corpus_tokens,
        record.tokenizer_s,
        record.train_s
    );
    Ok(())
}
