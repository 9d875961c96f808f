//! `casrap-learner`: serve a run's learner, or load-test one with simulated actors.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc: with glibc's allocator, allocation was a sixth of the learner's time under a fleet
/// (`docs/learner.md`, the fleet section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CASRAP learner: replay store, Double-DQN trainer and policy broadcast over gRPC.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the learner of a run until SIGINT/SIGTERM (then flush, checkpoint and stop).
    Serve(ServeArgs),
    /// Start a learner in-process and drive simulated actors against it at full speed; print one
    /// table (durable ingest rate, ack latency, policy push latency).
    Bench(casrap_store::fleet::BenchArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Run config (deploy/*.yaml).
    #[arg(long)]
    config: PathBuf,
    /// Override `learner.listen` (host:port; port 0 picks one, printed on stdout).
    #[arg(long)]
    listen: Option<String>,
    /// Override `learner.dir` (replay store and checkpoints).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Override `learner.metrics`: serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    metrics: Option<String>,
    /// Serve a replay store that holds less than its witness (`marks.log`) says was
    /// acknowledged: each loss is logged by actor and seqs, and the actors continue after it.
    /// Without it such a store is refused at start.
    #[arg(long)]
    accept_lost_data: bool,
}

fn main() -> std::process::ExitCode {
    let runtime = tokio::runtime::Runtime::new();
    casrap_common::exit::report(
        runtime.map_err(anyhow::Error::from).and_then(|rt| rt.block_on(run())),
    )
}

async fn run() -> anyhow::Result<()> {
    casrap_common::init_tracing();
    match Cli::parse().command {
        Command::Serve(args) => {
            let mut cfg = casrap_common::config::RunConfig::from_file(&args.config)?;
            if args.metrics.is_some() {
                cfg.learner.metrics = args.metrics;
            }
            let listen = args.listen.unwrap_or_else(|| cfg.learner.listen.clone());
            let dir = args.dir.unwrap_or_else(|| PathBuf::from(&cfg.learner.dir));
            let options =
                casrap_learner::server::StartOptions { accept_lost_data: args.accept_lost_data };
            let learner = casrap_learner::server::start_with(
                &cfg,
                &listen,
                &dir,
                &options,
                casrap_learner::server::shutdown_signal(),
            )
            .await?;
            if let Some(m) = learner.metrics_addr {
                println!("metrics on {m}");
            }
            println!("listening on {}", learner.addr);
            Ok(learner.wait().await?)
        }
        Command::Bench(args) => casrap_learner::bench::run(args).await,
    }
}
