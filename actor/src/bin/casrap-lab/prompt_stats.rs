//! `casrap-lab prompt-stats`: per-category statistics of a prompt CSV under a model: counts, the
//! train/test split, token lengths and the model's perplexity on the prompts.

use std::io::Write;

use anyhow::Context;
use casrap_actor::cli::set_threads;
use casrap_engine::perplexity;
use casrap_engine::resolve::Resolver;

#[derive(clap::Args)]
pub struct Args {
    /// Model, as for `generate`.
    #[arg(long, env = "CASRAP_MODEL", default_value = casrap_engine::resolve::DEFAULT_MODEL)]
    model: String,
    /// Prompt CSV (columns prompt, category, subject, context_dependency).
    #[arg(long, default_value = casrap_engine::resolve::DEFAULT_PROMPTS)]
    prompts: String,
    /// Skip bad rows (counted and logged) instead of failing on the first one.
    #[arg(long)]
    skip_bad_rows: bool,
    /// Fraction of each category in the test split.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Seed of the split.
    #[arg(long, default_value_t = 0)]
    split_seed: u64,
    /// CPU thread budget (default: one per core).
    #[arg(long, env = "CASRAP_THREADS")]
    threads: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    use casrap_common::prompts::{BadRows, PromptSet};
    use casrap_common::stats::quantile;
    set_threads(args.threads)?;
    let path = casrap_common::repo_path(&args.prompts);
    let bad = if args.skip_bad_rows { BadRows::Skip } else { BadRows::Fail };
    let set = PromptSet::load(&path, bad)?;
    let split = set.split(args.test_fraction, args.split_seed);
    let source = Resolver::from_env().resolve(&args.model)?;
    let loaded = casrap_engine::load(&source, tch::Kind::Float, tch::Device::Cpu, 0)
        .with_context(|| format!("loading model {}", casrap_engine::describe(&source)))?;
    let mut per: std::collections::BTreeMap<String, (Vec<f64>, Vec<f64>)> = Default::default();
    for p in &set.prompts {
        let ids = loaded.tokenizer.encode(&p.prompt)?;
        let nll = perplexity::evaluate(&loaded.model, &ids, ids.len(), 1)?;
        for key in [p.category.clone(), "all".to_string()] {
            let e = per.entry(key).or_default();
            e.0.push(ids.len() as f64);
            e.1.push(nll.perplexity());
        }
    }
    let train = PromptSet::counts(&split.train);
    let test = PromptSet::counts(&split.test);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "prompts: {} ({} rows skipped)  model: {}",
        path.display(),
        set.skipped.len(),
        casrap_engine::describe(&source)
    )?;
    writeln!(out, "| category | prompts | train | test | tokens p10 / p50 / p90 / max | perplexity p10 / p50 / p90 |")?;
    writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: |")?;
    for (category, (tokens, ppl)) in per.iter_mut() {
        tokens.sort_by(f64::total_cmp);
        ppl.sort_by(f64::total_cmp);
        let (tr, te) = if category == "all" {
            (split.train.len(), split.test.len())
        } else {
            (
                train.get(category.as_str()).copied().unwrap_or(0),
                test.get(category.as_str()).copied().unwrap_or(0),
            )
        };
        writeln!(
            out,
            "| {category} | {} | {tr} | {te} | {:.0} / {:.0} / {:.0} / {:.0} | {:.0} / {:.0} / {:.0} |",
            tokens.len(),
            quantile(tokens, 0.1),
            quantile(tokens, 0.5),
            quantile(tokens, 0.9),
            quantile(tokens, 1.0),
            quantile(ppl, 0.1),
            quantile(ppl, 0.5),
            quantile(ppl, 0.9),
        )?;
    }
    Ok(())
}
