//! `casrap-lab self-spec`: self-speculation (a sparse draft verified by the dense model) against
//! dense decode and against the sparse profile alone, on served test prompts; prints the table and
//! keeps the raw record.

use anyhow::Context;
use casrap_actor::cli::{
    parse_allocation, parse_prompt_format, read_record, write_record, ModelArgs,
};
use casrap_common::action::Allocation;
use casrap_common::config::PromptFormat;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    m: ModelArgs,
    /// Draft sparsity levels (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0.4,0.5")]
    levels: Vec<f64>,
    /// Draft lengths (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    drafts: Vec<usize>,
    /// Prompts measured (spread over the test split of --prompt-file).
    #[arg(long, default_value_t = 12)]
    prompts: usize,
    /// Prompt CSV: its test split is measured, its train split calibrates the thresholds.
    #[arg(long, default_value = casrap_engine::resolve::DEFAULT_PROMPTS)]
    prompt_file: String,
    /// How prompts are served: raw or chat.
    #[arg(long, default_value = "raw", value_parser = parse_prompt_format)]
    format: PromptFormat,
    /// Tokens decoded per run (EOS ignored).
    #[arg(long, default_value_t = 48)]
    new_tokens: usize,
    /// Cut longer prompts to this many tokens.
    #[arg(long, default_value_t = 960)]
    max_prompt_tokens: usize,
    /// How a sparsity level is shared among each block's matrices: uniform or greedy.
    #[arg(long, default_value = "uniform", value_parser = parse_allocation)]
    allocation: Allocation,
    /// Raw record file (default: runs/self-spec-<unix time>.json).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Print the table of a saved record instead of measuring.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    use casrap_actor::prune::self_spec::{self, Prompt, Record};
    if let Some(path) = &args.report {
        let record: Record = read_record(path)?;
        print!("{}", record.table());
        return Ok(());
    }
    let (mut setup, split) = args.m.open_sparse_setup(&args.prompt_file, args.allocation)?;
    let thresholds =
        setup.harness.cache.sparsity.clone().context("no sparsity thresholds were fitted")?;
    let n = args.prompts.clamp(1, split.test.len());
    let prompts = (0..n)
        .map(|i| {
            let index = i * split.test.len() / n;
            let p = &split.test[index];
            let tokens = setup.tokenizer.prompt(&p.prompt, args.format, args.max_prompt_tokens)?;
            Ok(Prompt { index, category: p.category.clone(), tokens })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = std::time::Instant::now();
    let settings = self_spec::run(
        &mut setup.model,
        &thresholds,
        args.allocation,
        &prompts,
        &args.levels,
        &args.drafts,
        args.new_tokens,
        |s, c| {
            eprintln!(
                "[{:6.1} s] sparsity:{} draft {}: prompt {} ({}): {:.3}x, {} of {} accepted",
                started.elapsed().as_secs_f64(),
                s.level,
                s.draft,
                c.prompt,
                c.category,
                c.dense_s.iter().sum::<f64>() / c.spec_s.iter().sum::<f64>(),
                c.accepted,
                c.drafted
            )
        },
    )?;
    let record = Record {
        model: casrap_engine::describe(&setup.source),
        dtype: args.m.dtype.clone(),
        threads: casrap_engine::gemv::threads(),
        format: args.format.name().into(),
        new_tokens: args.new_tokens,
        allocation: args.allocation,
        settings,
    };
    print!("{}", record.table());
    let out = write_record(args.out, "self-spec", &record)?;
    eprintln!("raw record: {}", out.display());
    Ok(())
}
