//! `casrap-lab`: the research tools beside the production actor (`casrap-actor`): engine and
//! kernel benchmarks, pruning measurements, action calibration, the embedded model's training and
//! evaluation. One file per command.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

mod bench_decode;
mod bench_kernels;
mod calibrate_actions;
mod eval_ppl;
mod export_synthetic;
mod prompt_stats;
mod prune_bench;
mod self_spec;
mod train_model;

/// CASRAP lab tools: benchmarks, measurements and calibration of models and pruning actions.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Time fixed-length greedy decode (EOS ignored) and print one JSON object (used by
    /// scripts/bench-engine to compare with Hugging Face).
    BenchDecode(bench_decode::Args),
    /// Write a synthetic preset's random weights as an HF folder (config.json, model.safetensors).
    ExportSynthetic(export_synthetic::Args),
    /// Train the embedded model: a byte-level BPE tokenizer and a small LLaMA on a folder of
    /// documents (scripts/fetch-corpus makes it), written as an HF folder.
    TrainModel(train_model::Args),
    /// Perplexity of a model on a text (plain or WikiText raw) next to the best unigram model on
    /// the same tokens, optionally with each single layer skipped.
    EvalPpl(eval_ppl::Args),
    /// Per-category statistics of a prompt CSV under a model: counts, the train/test split, token
    /// lengths and the model's perplexity on the prompts (the complexity features' raw inputs).
    PromptStats(prompt_stats::Args),
    /// Measure every pruning action against the dense model over N prompts (interleaved ABBA,
    /// fixed-length decode) and print one table: speedup, ceiling, efficiency, quality, apply and
    /// restore time. Raw records go to a JSON file.
    PruneBench(prune_bench::Args),
    /// Fit an action set to a model: per pruning kind, the strongest intensity whose perplexity
    /// change on calibration text (or on served requests) stays within each budget; prints the
    /// table and writes the `actions:` list for a run config.
    CalibrateActions(calibrate_actions::Args),
    /// The decode kernels side by side on one model: a verification pass over k positions
    /// against one decode step, sparse decode at each sparsity against dense (step by step in
    /// turn, with the bytes each kernel read), and dense decode against its bandwidth ceiling.
    /// Prints the tables; the raw record goes to a JSON file.
    BenchKernels(bench_kernels::Args),
    /// Self-speculation: a sparse profile of the model drafts, the dense model verifies
    /// (lossless), against dense decode and the sparse profile alone on served test prompts
    /// (whole generations, ABBA). Prints the table; the raw record goes to a JSON file.
    SelfSpec(self_spec::Args),
}

fn main() -> std::process::ExitCode {
    casrap_common::exit::report(run())
}

fn run() -> anyhow::Result<()> {
    casrap_common::init_tracing();
    match Cli::parse().command {
        Command::BenchDecode(args) => bench_decode::run(args),
        Command::ExportSynthetic(args) => export_synthetic::run(args),
        Command::TrainModel(args) => train_model::run(args),
        Command::EvalPpl(args) => eval_ppl::run(args),
        Command::PromptStats(args) => prompt_stats::run(args),
        Command::PruneBench(args) => prune_bench::run(args),
        Command::CalibrateActions(args) => calibrate_actions::run(args),
        Command::BenchKernels(args) => bench_kernels::run(args),
        Command::SelfSpec(args) => self_spec::run(args),
    }
}
