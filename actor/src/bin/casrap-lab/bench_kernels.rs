//! `casrap-lab bench-kernels`: the decode kernels side by side on one model: verification passes
//! against one step, sparse decode against dense, dense decode against its bandwidth ceiling.

use anyhow::Context;
use casrap_actor::cli::{parse_allocation, read_record, write_record, ModelArgs};
use casrap_common::action::Allocation;
use casrap_common::config::PromptFormat;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    m: ModelArgs,
    /// Positions per verification pass (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "2,5,9,16")]
    ks: Vec<usize>,
    /// Rounds of one step and one pass per k.
    #[arg(long, default_value_t = 40)]
    rounds: usize,
    /// Sparsity levels (comma-separated), thresholds fitted on the train split of --prompt-file.
    #[arg(long, value_delimiter = ',', default_value = "0.25,0.3,0.4,0.5")]
    levels: Vec<f64>,
    /// Decode steps per side and level.
    #[arg(long, default_value_t = 96)]
    steps: usize,
    /// How a level is shared among each block's matrices: uniform or greedy.
    #[arg(long, default_value = "uniform", value_parser = parse_allocation)]
    allocation: Allocation,
    /// Prompt CSV: its first test prompt is decoded after, its train split calibrates.
    #[arg(long, default_value = casrap_engine::resolve::DEFAULT_PROMPTS)]
    prompt_file: String,
    /// Cut the prompt to this many tokens.
    #[arg(long, default_value_t = 256)]
    max_prompt_tokens: usize,
    /// Raw record file (default: runs/bench-kernels-<unix time>.json).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Print the tables of a saved record instead of measuring.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    use casrap_actor::prune::kernel_bench::{self, Options, Record};
    if let Some(path) = &args.report {
        let record: Record = read_record(path)?;
        print!("{}", kernel_bench::table(&record));
        return Ok(());
    }
    let (mut setup, split) = args.m.open_sparse_setup(&args.prompt_file, args.allocation)?;
    let prompt =
        setup.tokenizer.prompt(&split.test[0].prompt, PromptFormat::Raw, args.max_prompt_tokens)?;
    let thresholds =
        setup.harness.cache.sparsity.clone().context("no sparsity thresholds were fitted")?;
    let options = Options {
        ks: args.ks,
        rounds: args.rounds,
        levels: args.levels,
        steps: args.steps,
        allocation: args.allocation,
    };
    let record = kernel_bench::run(
        &mut setup.model,
        &casrap_engine::describe(&setup.source),
        &args.m.dtype,
        &thresholds,
        &prompt,
        &options,
    )?;
    print!("{}", kernel_bench::table(&record));
    let out = write_record(args.out, "bench-kernels", &record)?;
    eprintln!("raw record: {}", out.display());
    Ok(())
}
