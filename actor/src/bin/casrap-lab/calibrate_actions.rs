//! `casrap-lab calibrate-actions`: fits an action set to a model: per kind, the strongest
//! intensity within each perplexity budget (on windows of a text, or on served requests); prints
//! the table and writes the `actions:` list.

use anyhow::Context;
use casrap_actor::cli::{parse_allocation, parse_prompt_format, set_threads};
use casrap_common::action::Allocation;
use casrap_common::config::PromptFormat;

#[derive(clap::Args)]
pub struct Args {
    /// Model, as for `generate`.
    #[arg(long, env = "CASRAP_MODEL", default_value = casrap_engine::resolve::DEFAULT_MODEL)]
    model: String,
    /// Prompt CSV whose train split calibrates the importances (as a run with it does).
    #[arg(long, default_value = casrap_engine::resolve::DEFAULT_PROMPTS)]
    prompts: String,
    /// Text the perplexity changes are measured on (default: the embedded model's held-out text).
    #[arg(long, default_value = casrap_engine::resolve::DEFAULT_EVAL_TEXT)]
    text: String,
    /// Use the first N tokens of the text.
    #[arg(long, default_value_t = 4096)]
    max_tokens: usize,
    /// Tokens per perplexity window.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Judge on N served requests instead of --text: N prompts spread over the train split of
    /// --prompts, each formatted as --format serves it and followed by the dense model's greedy
    /// continuation of --new-tokens, the change of each request's perplexity on prompt +
    /// continuation averaged as test mode averages a budget class's.
    #[arg(long, default_value_t = 0)]
    served: usize,
    /// How served prompts are formatted: raw or chat (the model's chat template).
    #[arg(long, default_value = "raw", value_parser = parse_prompt_format)]
    format: PromptFormat,
    /// Tokens of each served request's dense continuation.
    #[arg(long, default_value_t = 48)]
    new_tokens: usize,
    /// Cut each served prompt to this many tokens.
    #[arg(long, default_value_t = 960)]
    max_prompt_tokens: usize,
    /// The quality budgets: relative perplexity increases, comma-separated.
    #[arg(long, default_value = "0.02,0.05,0.1,0.2", value_delimiter = ',')]
    budgets: Vec<f64>,
    /// Kinds to fit, comma-separated (heads, ffn, layers, kv_window, sparsity).
    #[arg(long, default_value = "heads,ffn,layers,kv_window", value_delimiter = ',')]
    kinds: Vec<String>,
    /// How a sparsity level is shared among each block's matrices: uniform or greedy.
    #[arg(long, default_value = "uniform", value_parser = parse_allocation)]
    allocation: Allocation,
    /// Instead of fitting, compare uniform with greedy allocation at these sparsity levels
    /// (comma-separated) on the --served requests: perplexity change and bytes skipped.
    #[arg(long, value_delimiter = ',')]
    compare_allocation: Vec<f64>,
    /// Weight dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Write the fitted `actions:` list (YAML) here.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Write the raw record (every point, JSON) here.
    #[arg(long)]
    record: Option<std::path::PathBuf>,
    /// CPU thread budget (default: one per core).
    #[arg(long, env = "CASRAP_THREADS")]
    threads: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    use casrap_actor::prune::calibrate;
    use casrap_actor::prune::setup::{Setup, SetupOptions};
    use casrap_common::action::ActionKind;
    use casrap_common::prompts::{BadRows, PromptSet};
    set_threads(args.threads)?;
    let kinds = args
        .kinds
        .iter()
        .map(|k| match k.trim() {
            "heads" => Ok(ActionKind::Heads),
            "ffn" => Ok(ActionKind::Ffn),
            "layers" => Ok(ActionKind::Layers),
            "kv_window" => Ok(ActionKind::KvWindow),
            "sparsity" => Ok(ActionKind::Sparsity),
            other => anyhow::bail!(
                "--kinds: unknown kind `{other}` (heads, ffn, layers, kv_window, sparsity)"
            ),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(b) = args.budgets.iter().find(|b| !(b.is_finite() && **b > 0.0)) {
        anyhow::bail!("--budgets: {b} is not a positive perplexity change");
    }
    if args.window < 2 {
        anyhow::bail!("--window: must be at least 2");
    }
    let compare = !args.compare_allocation.is_empty();
    if compare && args.served == 0 {
        anyhow::bail!("--compare-allocation judges served requests: give --served N");
    }
    if let Some(l) = args
        .compare_allocation
        .iter()
        .find(|l| !(l.is_finite() && (0.0..=casrap_common::action::MAX_SPARSITY).contains(*l)))
    {
        anyhow::bail!("--compare-allocation: {l} is outside [0, 0.9]");
    }
    let set = PromptSet::load(&casrap_common::repo_path(&args.prompts), BadRows::Skip)?;
    // The split a run with the default test fraction makes, so its importances are reused.
    let test_fraction = casrap_common::config::ActorsConfig::default().test_fraction;
    let split = set.split(test_fraction, casrap_actor::episodes::SPLIT_SEED);
    let mut setup = Setup::open(&SetupOptions {
        model: args.model.clone(),
        dtype: args.dtype.clone(),
        device: "cpu".into(),
        seed: 0,
        calibration: casrap_actor::episodes::train_calibration(&split.train, &args.prompts),
        // Each profile is used once: the default budget (twice the dense weights) evicts them.
        max_profile_bytes: None,
        sparsity: if compare {
            Some(Allocation::Greedy)
        } else {
            kinds.contains(&ActionKind::Sparsity).then_some(args.allocation)
        },
    })?;
    let started = std::time::Instant::now();
    let progress = |p: &calibrate::Point| {
        eprintln!(
            "[{:6.1} s] {}: perplexity {:+.1}%",
            started.elapsed().as_secs_f64(),
            p.action,
            p.ppl_change * 100.0
        )
    };
    let c = if args.served > 0 {
        let train = &split.train;
        if train.is_empty() {
            anyhow::bail!("--prompts {}: the train split is empty", args.prompts);
        }
        let n = args.served.min(train.len());
        let mut sequences = Vec::with_capacity(n);
        for i in 0..n {
            let p = &train[i * train.len() / n];
            let mut seq = setup.tokenizer.prompt(&p.prompt, args.format, args.max_prompt_tokens)?;
            let r = casrap_actor::prune::harness::reference(&setup.model, &seq, args.new_tokens)?;
            seq.extend(r.continuation);
            sequences.push(seq);
        }
        let name = format!(
            "{} ({} format, {} new tokens)",
            args.prompts,
            args.format.name(),
            args.new_tokens
        );
        if compare {
            use casrap_actor::prune::allocation;
            let progress = |r: &allocation::Row| {
                eprintln!(
                    "[{:6.1} s] sparsity:{}: uniform {:+.1}%, greedy {:+.1}%",
                    started.elapsed().as_secs_f64(),
                    r.level,
                    r.uniform.ppl_change * 100.0,
                    r.greedy.ppl_change * 100.0
                )
            };
            let c = allocation::compare(
                &mut setup,
                (&args.model, &name),
                &sequences,
                args.new_tokens,
                &args.compare_allocation,
                progress,
            )?;
            print!("{}", c.table());
            if let Some(path) = &args.record {
                std::fs::write(path, serde_json::to_string_pretty(&c)? + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            return Ok(());
        }
        let options = calibrate::Options {
            model: &args.model,
            text: &name,
            budgets: &args.budgets,
            kinds: &kinds,
        };
        calibrate::run(
            &mut setup,
            &calibrate::Text::Served { sequences: &sequences },
            &options,
            progress,
        )?
    } else {
        let text = casrap_common::text::read_plain(&casrap_common::repo_path(&args.text))?;
        let mut tokens = setup.tokenizer.encode(&text)?;
        tokens.truncate(args.max_tokens);
        let options = calibrate::Options {
            model: &args.model,
            text: &args.text,
            budgets: &args.budgets,
            kinds: &kinds,
        };
        let text = calibrate::Text::Windows { tokens: &tokens, window: args.window };
        calibrate::run(&mut setup, &text, &options, progress)?
    };
    print!("{}", c.table());
    let yaml = c.actions_yaml();
    match &args.out {
        Some(path) => {
            std::fs::write(path, &yaml).with_context(|| format!("writing {}", path.display()))?;
            println!("\nactions written to {}", path.display());
        }
        None => print!("\n{yaml}"),
    }
    if let Some(path) = &args.record {
        std::fs::write(path, serde_json::to_string_pretty(&c)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
