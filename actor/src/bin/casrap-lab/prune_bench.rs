//! `casrap-lab prune-bench`: every action against the dense model over N prompts, one table, raw
//! records to a JSON file; `--report` and `--compare` reprint tables from saved records.

use anyhow::Context;
use casrap_actor::cli::{
    parse_allocation, parse_prompt_format, set_threads, write_record, ModelArgs,
};
use casrap_common::action::Allocation;
use casrap_common::config::PromptFormat;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    m: ModelArgs,
    /// Comma-separated actions: none, heads:F, ffn:F, layers:F, kv_window:[S+]W, sparsity:S,
    /// lookup:G[/N], sparsity:S+lookup:G[/N].
    #[arg(long, default_value = "none,heads:0.1,heads:0.15,ffn:0.25,layers:0.125,kv_window:4+32")]
    actions: String,
    /// Prompts measured (spread over the test split of --prompt-file).
    #[arg(long, default_value_t = 8)]
    prompts: usize,
    /// Prompt CSV.
    #[arg(long, default_value = casrap_engine::resolve::DEFAULT_PROMPTS)]
    prompt_file: String,
    /// Tokens decoded per run (EOS ignored).
    #[arg(long, default_value_t = 32)]
    new_tokens: usize,
    /// Cut longer prompts to this many tokens (synthetic models tokenize bytes).
    #[arg(long, default_value_t = 256)]
    max_prompt_tokens: usize,
    /// `raw` text, or `chat`: one user turn of the model's chat template (as an instruct model
    /// is served).
    #[arg(long, default_value = "raw", value_parser = parse_prompt_format)]
    prompt_format: PromptFormat,
    /// Dense/pruned pairs per prompt and action (order alternates: ABBA); interleaved passes
    /// with `--timing interleaved`.
    #[arg(long, default_value_t = 2)]
    pairs: usize,
    /// `interleaved`: dense and pruned decode alternate step by step, speedup = median step-time
    /// ratio; `runs`: whole generations in ABBA pairs.
    #[arg(long, default_value = "interleaved")]
    timing: casrap_common::config::Timing,
    /// Importances from calibration windows cut from the train prompts (`prompts`) or from
    /// weight norms (`none`).
    #[arg(long, default_value = "prompts")]
    calibration: String,
    /// Calibration windows.
    #[arg(long, default_value_t = 64)]
    calibration_windows: usize,
    /// Tokens per calibration window.
    #[arg(long, default_value_t = 128)]
    calibration_seq: usize,
    /// Budget for pruned weights held by cached profiles, in MB (default: twice the dense weights).
    #[arg(long)]
    max_profile_mb: Option<f64>,
    /// How a sparsity level is shared among each block's matrices: uniform or greedy.
    #[arg(long, default_value = "uniform", value_parser = parse_allocation)]
    allocation: Allocation,
    /// Raw records file (default: runs/prune-bench-<unix time>.json).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Print the table of a saved raw-records file instead of measuring.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
    /// Instead of measuring, compare saved records' timing: the noise and cost of each
    /// (`none`'s spread), and with --bias-reference each one's speedups against the reference's.
    #[arg(long, num_args = 1.., value_name = "RECORD")]
    compare: Vec<std::path::PathBuf>,
    /// With --compare: a record of the same prompts and actions timed as long separate runs.
    #[arg(long)]
    bias_reference: Option<std::path::PathBuf>,
}

/// A prune-bench record's header line and its measurements (named by the file's stem).
fn read_prune_record(
    path: &std::path::Path,
) -> anyhow::Result<(String, casrap_actor::prune::harness::TimingRecord)> {
    Ok(casrap_actor::prune::harness::TimingRecord::load(path)?)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    use casrap_actor::prune::harness::{self, MeasureOptions};
    use casrap_actor::prune::setup::{Calibration, Setup, SetupOptions};
    use casrap_common::action::Action;
    use casrap_common::prompts::{BadRows, PromptSet};
    if let Some(path) = &args.report {
        let (header, r) = read_prune_record(path)?;
        println!("{header}");
        print!("{}", harness::table(&harness::summarize(&r.measurements)));
        print!("{}", harness::noise_table(std::slice::from_ref(&r)));
        return Ok(());
    }
    if !args.compare.is_empty() {
        let records: Vec<harness::TimingRecord> = args
            .compare
            .iter()
            .map(|p| read_prune_record(p).map(|(_, r)| r))
            .collect::<anyhow::Result<_>>()?;
        let reference = args.bias_reference.as_deref().map(read_prune_record).transpose()?;
        print!("{}", harness::compare(&records, reference.as_ref().map(|(_, r)| r))?);
        return Ok(());
    }
    let actions = Action::parse_list(&args.actions)?;
    anyhow::ensure!(!actions.is_empty(), "--actions is empty");
    set_threads(args.m.threads)?;
    let prompts = PromptSet::load(&casrap_common::repo_path(&args.prompt_file), BadRows::Skip)?;
    let split = prompts.split(0.2, 0);
    anyhow::ensure!(!split.test.is_empty(), "no test prompts");
    let calibration = match args.calibration.as_str() {
        "none" => Calibration::WeightNorm,
        "prompts" => Calibration::Texts {
            texts: split.train.iter().map(|p| p.prompt.clone()).collect(),
            description: format!("the train split of {}", args.prompt_file),
            windows: args.calibration_windows,
            seq: args.calibration_seq,
        },
        other => anyhow::bail!("--calibration `{other}`: expected prompts or none"),
    };
    let setup = Setup::open(&SetupOptions {
        model: args.m.model.clone(),
        dtype: args.m.dtype.clone(),
        device: args.m.device.clone(),
        seed: args.m.seed,
        calibration,
        max_profile_bytes: args.max_profile_mb.map(|mb| (mb * 1e6) as usize),
        sparsity: actions.iter().any(|a| a.sparsity().is_some()).then_some(args.allocation),
    })
    .with_context(|| format!("loading model {}", args.m.model))?;
    let n = args.prompts.max(1).min(split.test.len());
    let picked: Vec<&casrap_common::prompts::Prompt> =
        (0..n).map(|i| &split.test[i * split.test.len() / n]).collect();
    let categories: Vec<&str> = picked.iter().map(|p| p.category.as_str()).collect();
    let chosen: Vec<Vec<u32>> = picked
        .iter()
        .map(|p| {
            setup.tokenizer.prompt(&p.prompt, args.prompt_format, args.max_prompt_tokens.max(2))
        })
        .collect::<Result<_, _>>()?;
    let mut setup = setup;
    setup.set_probe(&chosen[0]);
    let Setup { mut model, source, mut harness, .. } = setup;
    let device = model.device();
    let opts =
        MeasureOptions { new_tokens: args.new_tokens, pairs: args.pairs, timing: args.timing };
    let header = format!(
        "model {} ({} params), {} {:?}, {} threads; {} prompts from the test split (tokens {}-{}), {} new tokens, {} {}; importances: {}",
        casrap_engine::describe(&source),
        model.config().num_parameters(),
        args.m.dtype,
        device,
        casrap_engine::gemv::threads(),
        n,
        chosen.iter().map(Vec::len).min().unwrap_or(0),
        chosen.iter().map(Vec::len).max().unwrap_or(0),
        args.new_tokens,
        args.pairs,
        match args.timing {
            casrap_common::config::Timing::Runs => "ABBA pairs",
            casrap_common::config::Timing::Interleaved => "step-interleaved passes",
        },
        harness.cache.importance.source,
    );
    let mut measurements = Vec::new();
    for (i, prompt) in chosen.iter().enumerate() {
        for action in &actions {
            let m = harness.measure(&mut model, action, prompt, None, &opts, i)?;
            tracing::info!(prompt = i, action = %m.action, speedup = format!("{:.3}", m.speedup()), ceiling = format!("{:.3}", m.ceiling()), "measured");
            measurements.push(m);
        }
    }
    let record = serde_json::json!({ "header": header, "options": opts, "actions": args.actions, "categories": categories, "measurements": measurements });
    let out = write_record(args.out, "prune-bench", &record)?;
    println!("{header}");
    print!("{}", harness::table(&harness::summarize(&measurements)));
    let name = out.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    print!(
        "{}",
        harness::noise_table(&[harness::TimingRecord { name, options: opts, measurements }])
    );
    println!("raw records: {}", out.display());
    Ok(())
}
