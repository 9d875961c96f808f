//! `casrap-actor`: what a deployment runs: the episode loop against a learner (`run`), test
//! mode's measuring process (`test`), evaluation (`eval`) and plain generation (`generate`). The
//! research tools are `casrap-lab`'s.
#![forbid(unsafe_code)]

use std::io::Write;

use anyhow::Context;
use casrap_actor::cli::ModelArgs;
use casrap_common::config::PromptFormat;
use casrap_engine::{generate, sampling::Sampling};
use clap::{Parser, Subcommand};

/// CASRAP actor: runs adaptation episodes of a LLaMA-family model against a learner, test mode's
/// measurements, evaluation and generation.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run adaptation episodes against a learner: telemetry, complexity, ε-greedy action from the
    /// newest policy, dense vs adapted measurement, reward, transition. Resumes after the last
    /// episode the learner holds for this actor id; Ctrl-C abandons the current episode, waits
    /// briefly for acknowledgements and exits.
    Run(RunArgs),
    /// Test mode's measuring process (`casrap test` starts one per training actor): every action
    /// on this shard of the held-out prompts, one JSON result per line.
    Test(TestArgs),
    /// Perplexity on a text and zero-shot multiple-choice accuracy for the dense model, fixed
    /// actions and a checkpoint's greedy policy, in one table (what `casrap eval` runs).
    Eval(casrap_actor::eval::EvalArgs),
    /// Generate text from a prompt and print prefill and decode timing. An instruct model's chat
    /// template (chat_template.jinja or tokenizer_config.json's) wraps the prompt as a user turn
    /// unless `--raw` is given.
    Generate(GenerateArgs),
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
    /// Take this actor id from another session that holds it (a process that is gone, or one to
    /// replace), with the run's operator token (`security.operator_token_file`, else
    /// CASRAP_OPERATOR_TOKEN). Without it a held id is registered once its hold ends.
    #[arg(long)]
    take_over: bool,
    /// Keep the learner session in this file (mode 600): a restart with the same file reconnects
    /// as this actor at once instead of waiting out its id's hold (`learner.session_hold_s`).
    #[arg(long, env = "CASRAP_SESSION_FILE")]
    session_file: Option<std::path::PathBuf>,
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
    match Cli::parse().command {
        Command::Run(args) => run_episodes(args),
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
        Command::Generate(args) => run_generate(args),
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
        operator_token: None,
        session_file: args.session_file,
        config,
    };
    let options = if args.take_over {
        let token = options.config.security.operator_token()?.ok_or_else(|| {
            anyhow::anyhow!(
                "--take-over needs the run's operator token: set security.operator_token_file or {}",
                casrap_common::config::OPERATOR_TOKEN_ENV
            )
        })?;
        RunOptions { operator_token: Some(token), ..options }
    } else {
        options
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
