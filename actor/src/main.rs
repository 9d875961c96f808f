//! `casrap-actor`: the actor's command line.
#![forbid(unsafe_code)]

use std::io::Write;

use anyhow::Context;
use casrap_common::config::PromptFormat;
use casrap_engine::resolve::Resolver;
use casrap_engine::train::export::Shape;
use casrap_engine::train::lm::TrainOptions;
use casrap_engine::train::pipeline::{self, Progress, Recipe};
use casrap_engine::{generate, perplexity, sampling::Sampling};
use clap::{Parser, Subcommand};

/// CASRAP actor: runs LLaMA-family models and (soon) pruning episodes against a learner.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run pruning episodes against a learner: telemetry, complexity, ε-greedy action from the
    /// newest policy, dense vs pruned measurement, reward, transition. Resumes after the last
    /// episode the learner holds for this actor id; Ctrl-C abandons the current episode, waits
    /// briefly for acknowledgements and exits.
    Run(RunArgs),
    /// Generate text from a prompt and print prefill and decode timing. An instruct model's chat
    /// template (chat_template.jinja or tokenizer_config.json's) wraps the prompt as a user turn
    /// unless `--raw` is given.
    Generate(GenerateArgs),
    /// Time fixed-length greedy decode (EOS ignored) and print one JSON object (used by
    /// scripts/bench-engine to compare with Hugging Face).
    BenchDecode(BenchArgs),
    /// Write a synthetic preset's random weights as an HF folder (config.json, model.safetensors).
    ExportSynthetic(ExportArgs),
    /// Train the embedded model: a byte-level BPE tokenizer and a small LLaMA on a folder of
    /// documents (scripts/fetch-corpus makes it), written as an HF folder.
    TrainModel(TrainArgs),
    /// Perplexity of a model on a text (plain or WikiText raw) next to the best unigram model on
    /// the same tokens, optionally with each single layer skipped.
    EvalPpl(EvalArgs),
    /// Per-category statistics of a prompt CSV under a model: counts, the train/test split, token
    /// lengths and the model's perplexity on the prompts (the complexity features' raw inputs).
    PromptStats(PromptStatsArgs),
    /// Measure every pruning action against the dense model over N prompts (interleaved ABBA,
    /// fixed-length decode) and print one table: speedup, ceiling, efficiency, quality, apply and
    /// restore time. Raw records go to a JSON file.
    PruneBench(PruneBenchArgs),
    /// Fit an action set to a model: per pruning kind, the strongest intensity whose perplexity
    /// change on calibration text stays within each budget; prints the table and writes the
    /// `actions:` list for a run config.
    CalibrateActions(CalibrateArgs),
    /// The decode kernels side by side on one model: a verification pass over k positions
    /// against one decode step, sparse decode at each sparsity against dense (step by step in
    /// turn, with the bytes each kernel read), and dense decode against its bandwidth ceiling.
    /// Prints the tables; the raw record goes to a JSON file.
    BenchKernels(KernelBenchArgs),
    /// Test mode's measuring process (`casrap test` starts one per training actor): every action
    /// on this shard of the held-out prompts, one JSON result per line.
    Test(TestArgs),
    /// Perplexity on a text and zero-shot multiple-choice accuracy for the dense model, fixed
    /// actions and a checkpoint's greedy policy, in one table (what `casrap eval` runs).
    Eval(casrap_actor::eval::EvalArgs),
}

#[derive(clap::Args)]
struct TestArgs {
    /// Run config (the run's model, actions, state, reward and actors sections).
    #[arg(long)]
    config: std::path::PathBuf,
    /// The greedy policy: an encoded Q-network (what `casrap test` writes as `policy.bin`).
    #[arg(long)]
    policy: std::path::PathBuf,
    /// Held-out prompts of the whole test, spread over the test split (0: all of it).
    #[arg(long, default_value_t = 0)]
    prompts: usize,
    /// This process measures the prompts whose index is SHARD modulo SHARDS.
    #[arg(long, default_value_t = 0)]
    shard: usize,
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Kernel and torch threads (0: one per core).
    #[arg(long, env = "CASRAP_THREADS", default_value_t = 0)]
    threads: usize,
    /// Seed of the random baseline.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Results file (JSON lines, written as each prompt finishes).
    #[arg(long)]
    out: std::path::PathBuf,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The learner's URL.
    #[arg(long, env = "CASRAP_LEARNER")]
    learner: String,
    /// Run config (deploy/*.yaml); the actor uses its model, actions, state, reward and actors sections.
    #[arg(long)]
    config: std::path::PathBuf,
    /// This actor's id; a restart with the same id continues its sequence (default: host-device).
    #[arg(long, env = "CASRAP_ACTOR_ID")]
    actor_id: Option<String>,
    /// Run until this actor has this many episodes stored (default: the config's `actors.episodes`
    /// divided among `actors.count`).
    #[arg(long)]
    episodes: Option<u64>,
    /// Device: cpu, cuda or cuda:N (default: the config's first device).
    #[arg(long)]
    device: Option<String>,
    /// Kernel and torch threads (default: `actors.threads`, 0 meaning one per core).
    #[arg(long, env = "CASRAP_THREADS")]
    threads: Option<usize>,
    /// Seconds to wait at the end for the learner to acknowledge everything.
    #[arg(long, default_value_t = 300)]
    drain_timeout: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (port 0 picks one, printed on stdout).
    #[arg(long)]
    metrics: Option<String>,
}

#[derive(clap::Args)]
struct PruneBenchArgs {
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

#[derive(clap::Args)]
struct KernelBenchArgs {
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

#[derive(clap::Args)]
struct CalibrateArgs {
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
    #[arg(long, default_value = "raw")]
    format: String,
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

#[derive(clap::Args)]
struct PromptStatsArgs {
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

#[derive(clap::Args)]
struct TrainArgs {
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

#[derive(clap::Args)]
struct EvalArgs {
    #[command(flatten)]
    m: ModelArgs,
    /// Text to evaluate on (default: the embedded model's held-out text).
    #[arg(long, default_value = casrap_engine::resolve::DEFAULT_EVAL_TEXT)]
    text: String,
    /// Format of --text: plain, or wikitext (WikiText raw: ` = Title = ` headings).
    #[arg(long, default_value = "plain")]
    format: String,
    /// Tokens per evaluation window.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Use only the first N tokens of the text (0: all).
    #[arg(long, default_value_t = 0)]
    max_tokens: usize,
    /// Also evaluate with each single layer skipped.
    #[arg(long)]
    skip_each_layer: bool,
    /// Write the raw figures as JSON to this file too.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
struct BenchArgs {
    #[command(flatten)]
    m: ModelArgs,
    /// Comma-separated prompt token ids.
    #[arg(long, value_delimiter = ',', required = true)]
    prompt_ids: Vec<u32>,
    /// New tokens per run (decode steps = this - 1).
    #[arg(long, default_value_t = 64)]
    new_tokens: usize,
    /// Untimed warm-up generations before the timed ones.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed generations.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Measure read bandwidth (1 GiB f32 sum) right before and right after each timed run.
    #[arg(long)]
    bandwidth: bool,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// Preset name (tiny, llama-3.2-1b).
    #[arg(long)]
    preset: String,
    /// Seed of the random weights (the same seed as `--model synthetic:<preset> --seed`).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Storage dtype: f32, bf16 or f16.
    #[arg(long, default_value = "bf16")]
    dtype: String,
    /// Output folder.
    #[arg(long)]
    out: std::path::PathBuf,
}

/// The model flags every model-loading subcommand shares.
#[derive(clap::Args)]
struct ModelArgs {
    /// Model: a local HF folder, an HF repo id (from the local HF cache; downloaded only when
    /// HF_HUB_OFFLINE is unset), casrap-cache:models/NAME (a folder of the per-user cache), or
    /// synthetic:<preset> (tiny, llama-3.2-1b) with random weights.
    #[arg(long, env = "CASRAP_MODEL", default_value = casrap_engine::resolve::DEFAULT_MODEL)]
    model: String,
    /// Weight and activation dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Seed of synthetic weights (and of sampling, where the command samples).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// CPU thread budget for decode kernels and torch (default: one per core).
    #[arg(long, env = "CASRAP_THREADS")]
    threads: Option<usize>,
}

impl ModelArgs {
    /// Sets the thread budget, then resolves and loads the model (logged with its load time).
    fn load(&self) -> anyhow::Result<casrap_engine::LoadedModel> {
        let kind = casrap_engine::parse_dtype(&self.dtype)?;
        let device = casrap_engine::parse_device(&self.device)?;
        set_threads(self.threads)?;
        let source = Resolver::from_env().resolve(&self.model)?;
        let t0 = std::time::Instant::now();
        let loaded = casrap_engine::load(&source, kind, device, self.seed)
            .with_context(|| format!("loading model {}", casrap_engine::describe(&source)))?;
        tracing::info!(
            model = %casrap_engine::describe(&source),
            dtype = ?kind,
            device = ?device,
            params = loaded.model.config().num_parameters(),
            load_ms = t0.elapsed().as_millis() as u64,
            "model loaded"
        );
        Ok(loaded)
    }
}

#[derive(clap::Args)]
struct GenerateArgs {
    #[command(flatten)]
    m: ModelArgs,
    /// Prompt text.
    #[arg(long, default_value = "The quick brown fox")]
    prompt: String,
    /// Feed the prompt as it is, without the model's chat template (models without one always
    /// get it raw).
    #[arg(long)]
    raw: bool,
    /// Maximum number of new tokens.
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Nucleus (top-p) mass kept when sampling.
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Keep decoding past EOS (fixed-length decode, for timing).
    #[arg(long)]
    ignore_eos: bool,
}

fn main() -> std::process::ExitCode {
    casrap_common::exit::report(run())
}

fn run() -> anyhow::Result<()> {
    casrap_common::init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run_episodes(args),
        Command::Generate(args) => run_generate(args),
        Command::BenchDecode(args) => run_bench(args),
        Command::ExportSynthetic(args) => {
            let kind = casrap_engine::parse_dtype(&args.dtype)?;
            casrap_engine::synthetic::export(&args.preset, args.seed, kind, &args.out)?;
            println!("wrote {}", args.out.display());
            Ok(())
        }
        Command::TrainModel(args) => run_train(args),
        Command::EvalPpl(args) => run_eval(args),
        Command::PromptStats(args) => run_prompt_stats(args),
        Command::CalibrateActions(args) => run_calibrate(args),
        Command::PruneBench(args) => run_prune_bench(args),
        Command::BenchKernels(args) => run_kernel_bench(args),
        Command::Test(args) => run_test(args),
        Command::Eval(args) => {
            let rows = casrap_actor::eval::run(&args)?;
            print!("{}", casrap_actor::eval::table(&rows));
            if let Some(path) = &args.json {
                std::fs::write(path, serde_json::to_string_pretty(&rows)? + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
    }
}

fn run_test(args: TestArgs) -> anyhow::Result<()> {
    let config = casrap_common::config::RunConfig::from_file(&args.config)?;
    // A signal, or `casrap test` dying, stops this process after the prompt being measured (the
    // results written so far stay in --out).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
            rt.block_on(casrap_common::signals::shutdown_or_orphaned());
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    })?;
    let bytes = std::fs::read(&args.policy)
        .with_context(|| format!("reading {}", args.policy.display()))?;
    let policy = casrap_common::qnet::QNet::decode(&bytes, None)
        .with_context(|| format!("decoding the policy {}", args.policy.display()))?;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?,
    );
    let options = casrap_actor::test_shard::TestOptions {
        config,
        policy,
        prompts: args.prompts,
        shard: args.shard,
        shards: args.shards,
        device: args.device,
        threads: args.threads,
        seed: args.seed,
    };
    let mut write_err = None;
    casrap_actor::test_shard::run(&options, &stop, |done, n, r| {
        let line = serde_json::to_string(r).map_err(std::io::Error::other);
        if let Err(e) = line.and_then(|l| writeln!(out, "{l}")).and_then(|()| out.flush()) {
            write_err.get_or_insert(e);
        }
        tracing::info!(done, of = n, prompt = r.prompt_id, "measured");
    })?;
    if let Some(e) = write_err {
        return Err(anyhow::Error::new(e).context(format!("writing {}", args.out.display())));
    }
    if stop.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!("test mode stopped: signalled, or its orchestrator is gone");
        drop(out);
        std::process::exit(130);
    }
    Ok(())
}

fn run_episodes(args: RunArgs) -> anyhow::Result<()> {
    use casrap_actor::episodes::{self, RunOptions};
    let config = casrap_common::config::RunConfig::from_file(&args.config)?;
    let device = args.device.unwrap_or_else(|| config.actors.device_of(0).to_string());
    let options = RunOptions {
        learner: args.learner,
        actor_id: args.actor_id.unwrap_or_else(|| episodes::default_actor_id(&device)),
        episodes: args.episodes.unwrap_or_else(|| config.actors.episodes_of(0)),
        threads: args.threads.unwrap_or(config.actors.threads),
        device,
        drain_timeout: std::time::Duration::from_secs(args.drain_timeout),
        metrics: args.metrics,
        config,
    };
    casrap_common::rl::check_actor_id(&options.actor_id)
        .map_err(|e| anyhow::anyhow!("--actor-id: {e}"))?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    // Ctrl-C / SIGTERM: finish cleanly (the current episode is abandoned); a second one exits at once.
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        if let Ok(rt) = rt {
            rt.block_on(async {
                casrap_common::signals::shutdown_or_orphaned().await;
                tracing::warn!(
                    "stopping: abandoning the current episode, then waiting for acknowledgements"
                );
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
                if casrap_common::signals::orphaned() == Some(true) {
                    // No orchestrator to wait for us: give the outbox a few seconds, then go.
                    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                    tracing::error!("orphaned: exiting now");
                    std::process::exit(1);
                }
                casrap_common::signals::shutdown().await;
                tracing::error!("second signal: exiting now");
                std::process::exit(130);
            });
        }
    })?;
    let summary = episodes::run(&options, stop)?;
    println!("{}", serde_json::to_string(&summary)?);
    if summary.interrupted {
        return Err(casrap_common::exit::Interrupted(format!(
            "stopped after seq {} (the learner holds everything up to it)",
            summary.last_seq
        ))
        .into());
    }
    Ok(())
}

/// A prune-bench record's header line and its measurements (named by the file's stem).
fn read_prune_record(
    path: &std::path::Path,
) -> anyhow::Result<(String, casrap_actor::prune::harness::TimingRecord)> {
    Ok(casrap_actor::prune::harness::TimingRecord::load(path)?)
}

fn run_prune_bench(args: PruneBenchArgs) -> anyhow::Result<()> {
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
        sparsity: actions.iter().any(|a| a.sparsity().is_some()),
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
    let out = args.out.unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        std::path::PathBuf::from(format!("runs/prune-bench-{secs}.json"))
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let record = serde_json::json!({ "header": header, "options": opts, "actions": args.actions, "categories": categories, "measurements": measurements });
    std::fs::write(&out, serde_json::to_string(&record)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
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

fn run_calibrate(args: CalibrateArgs) -> anyhow::Result<()> {
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
        sparsity: kinds.contains(&ActionKind::Sparsity),
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
        use casrap_common::config::PromptFormat;
        let format = match args.format.as_str() {
            "raw" => PromptFormat::Raw,
            "chat" => PromptFormat::Chat,
            other => anyhow::bail!("--format: unknown format `{other}` (raw, chat)"),
        };
        let train = &split.train;
        if train.is_empty() {
            anyhow::bail!("--prompts {}: the train split is empty", args.prompts);
        }
        let n = args.served.min(train.len());
        let mut sequences = Vec::with_capacity(n);
        for i in 0..n {
            let p = &train[i * train.len() / n];
            let mut seq = setup.tokenizer.prompt(&p.prompt, format, args.max_prompt_tokens)?;
            let r = casrap_actor::prune::harness::reference(&setup.model, &seq, args.new_tokens)?;
            seq.extend(r.continuation);
            sequences.push(seq);
        }
        let name =
            format!("{} ({} format, {} new tokens)", args.prompts, args.format, args.new_tokens);
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

fn run_prompt_stats(args: PromptStatsArgs) -> anyhow::Result<()> {
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

fn run_train(args: TrainArgs) -> anyhow::Result<()> {
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

fn run_eval(args: EvalArgs) -> anyhow::Result<()> {
    let text_path = casrap_common::repo_path(&args.text);
    let text = match args.format.as_str() {
        "plain" => casrap_common::text::read_plain(&text_path)?,
        "wikitext" => casrap_common::text::wikitext_as_text(&text_path)?,
        other => anyhow::bail!("--format `{other}`: expected plain or wikitext"),
    };
    let loaded = args.m.load()?;
    let source = loaded.source.clone();
    let mut tokens = loaded.tokenizer.encode(&text)?;
    if args.max_tokens > 0 {
        tokens.truncate(args.max_tokens);
    }
    let mut model = loaded.model;
    let report =
        perplexity::report(&mut model, &tokens, args.window, args.batch, args.skip_each_layer)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "model: {}  text: {}  dtype: {}",
        casrap_engine::describe(&source),
        text_path.display(),
        args.m.dtype
    )?;
    writeln!(out, "{} tokens predicted in windows of {}", report.dense.tokens, args.window)?;
    write!(out, "{}", report.table())?;
    if let Some(path) = args.json {
        let json = serde_json::json!({
            "model": casrap_engine::describe(&source), "text": text_path.display().to_string(),
            "dtype": args.m.dtype, "window": args.window, "report": report,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `--threads` through the one thread configuration ([`casrap_engine::configure_threads`]).
fn set_threads(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        anyhow::ensure!(n > 0, "--threads must be positive, got {n}");
    }
    casrap_engine::configure_threads(threads.unwrap_or(0));
    Ok(())
}

fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let loaded = args.m.load()?;
    let source = loaded.source.clone();
    let device = loaded.model.device();
    let opts = generate::GenerateOptions {
        max_new_tokens: args.new_tokens,
        sampling: Sampling::Greedy,
        ignore_eos: true,
    };
    for _ in 0..args.warmup {
        generate::generate(&loaded.model, &args.prompt_ids, &opts)?;
    }
    let probe = args.bandwidth.then(|| casrap_engine::bandwidth::BandwidthProbe::new(device));
    let mut runs = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let before = probe.as_ref().map(|p| p.measure(3));
        let g = generate::generate(&loaded.model, &args.prompt_ids, &opts)?;
        let after = probe.as_ref().map(|p| p.measure(3));
        runs.push(serde_json::json!({
            "read_bandwidth_bytes_s": [before, after],
            "prefill_ms": g.prefill.as_secs_f64() * 1e3,
            "decode_steps": g.decode_steps,
            "decode_s": g.decode.as_secs_f64(),
            "tokens": g.tokens,
        }));
    }
    let report = serde_json::json!({
        "model": casrap_engine::describe(&source),
        "dtype": args.m.dtype,
        "device": args.m.device,
        "threads": casrap_engine::gemv::threads(),
        "params": loaded.model.config().num_parameters(),
        "weight_bytes_per_token": loaded.model.weight_bytes_per_token(),
        "runs": runs,
    });
    println!("{report}");
    Ok(())
}

fn parse_prompt_format(s: &str) -> Result<PromptFormat, String> {
    match s {
        "raw" => Ok(PromptFormat::Raw),
        "chat" => Ok(PromptFormat::Chat),
        other => Err(format!("`{other}`: expected raw or chat")),
    }
}

fn run_kernel_bench(args: KernelBenchArgs) -> anyhow::Result<()> {
    use casrap_actor::prune::kernel_bench::{self, Options, Record};
    use casrap_actor::prune::setup::{Setup, SetupOptions};
    use casrap_common::prompts::{BadRows, PromptSet};
    if let Some(path) = &args.report {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let record: Record =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        print!("{}", kernel_bench::table(&record));
        return Ok(());
    }
    set_threads(args.m.threads)?;
    let set = PromptSet::load(&casrap_common::repo_path(&args.prompt_file), BadRows::Skip)?;
    let test_fraction = casrap_common::config::ActorsConfig::default().test_fraction;
    let split = set.split(test_fraction, casrap_actor::episodes::SPLIT_SEED);
    anyhow::ensure!(!split.test.is_empty(), "{}: no test prompts", args.prompt_file);
    let mut setup = Setup::open(&SetupOptions {
        model: args.m.model.clone(),
        dtype: args.m.dtype.clone(),
        device: args.m.device.clone(),
        seed: args.m.seed,
        calibration: casrap_actor::episodes::train_calibration(&split.train, &args.prompt_file),
        max_profile_bytes: None,
        sparsity: true,
    })
    .with_context(|| format!("loading model {}", args.m.model))?;
    let prompt =
        setup.tokenizer.prompt(&split.test[0].prompt, PromptFormat::Raw, args.max_prompt_tokens)?;
    let thresholds =
        setup.harness.cache.sparsity.clone().context("no sparsity thresholds were fitted")?;
    let options =
        Options { ks: args.ks, rounds: args.rounds, levels: args.levels, steps: args.steps };
    let record = kernel_bench::run(
        &mut setup.model,
        &casrap_engine::describe(&setup.source),
        &args.m.dtype,
        &thresholds,
        &prompt,
        &options,
    )?;
    print!("{}", kernel_bench::table(&record));
    let out = args.out.unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        std::path::PathBuf::from(format!("runs/bench-kernels-{secs}.json"))
    });
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&out, serde_json::to_string(&record)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("raw record: {}", out.display());
    Ok(())
}

fn run_generate(args: GenerateArgs) -> anyhow::Result<()> {
    let sampling = Sampling::new(args.temperature, args.top_p, args.m.seed)?;
    let loaded = args.m.load()?;
    // --raw never reads the template, so a broken one does not stop a raw prompt.
    let format = if !args.raw && loaded.tokenizer.chat_template()?.is_some() {
        PromptFormat::Chat
    } else {
        PromptFormat::Raw
    };
    let shown = loaded.tokenizer.format(&args.prompt, format)?;
    let prompt = loaded.tokenizer.encode_formatted(&shown, format)?;
    let opts = generate::GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        sampling,
        ignore_eos: args.ignore_eos,
    };
    let gen = generate::generate(&loaded.model, &prompt, &opts)?;
    let text = loaded.tokenizer.decode(&gen.tokens)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{shown}{text}")?;
    writeln!(out, "---")?;
    let how = match format {
        PromptFormat::Chat => "chat template",
        PromptFormat::Raw => "raw",
    };
    writeln!(out, "prompt tokens:   {} ({how})", prompt.len())?;
    writeln!(out, "new tokens:      {} (stop: {:?})", gen.tokens.len(), gen.stop)?;
    writeln!(out, "prefill:         {:.2} ms", gen.prefill.as_secs_f64() * 1e3)?;
    match gen.decode_tokens_per_s() {
        Some(tps) => writeln!(
            out,
            "decode:          {tps:.1} tokens/s ({} steps in {:.2} ms)",
            gen.decode_steps,
            gen.decode.as_secs_f64() * 1e3
        )?,
        None => writeln!(out, "decode:          no decode steps")?,
    }
    Ok(())
}
