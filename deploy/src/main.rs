//! `casrap`: the orchestrator. `casrap run deploy/local.yaml` starts a learner and N actors as
//! processes, shows progress, stops them cleanly and says where the outputs are.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand};

/// CASRAP: runs of a learner and actors described by deploy/*.yaml.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train: start the learner and `actors.count` actors on this machine, run the episodes, stop
    /// everything and export `episodes.jsonl`. Outputs go to a new `runs/train-N/`.
    Run(RunArgs),
    /// Run every point of a sweep file (a base run config and a grid or list of overrides) on this
    /// machine, `parallel` at a time, into a new `runs/sweep-N/point-K/`; then a table and a plot
    /// comparing the points.
    Sweep {
        /// Sweep file (deploy/sweep-*.yaml).
        file: PathBuf,
        /// Folder the sweep folder is made in.
        #[arg(long, default_value = "runs")]
        out: PathBuf,
        /// Where each point runs: this machine, or SLURM.
        #[arg(long, value_enum, default_value = "local")]
        backend: casrap_deploy::run::Backend,
    },
    /// Test a checkpoint's greedy policy on held-out prompts against always-none, every fixed
    /// action, uniform random and the oracle, all on the same measurements; outputs go to a new
    /// `runs/test-N/`.
    Test(TestArgs),
    /// Perplexity on a text (plain or WikiText raw) and zero-shot multiple-choice accuracy
    /// (JSONL of {question, choices, answer}) for the dense model, fixed actions and a policy.
    /// Runs `casrap-actor eval`, which holds the model, with these arguments (its options:
    /// `casrap eval --help`).
    #[command(disable_help_flag = true)]
    Eval {
        /// Passed on to `casrap-actor eval` (--config, --text, --format, --max-tokens, --window,
        /// --mc, --actions, --policy, --device, --threads, --json).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Render deployment material from a run config: `k8s` writes Kubernetes manifests (ConfigMap,
    /// Secret, learner StatefulSet + Service, actor Indexed Jobs).
    Render {
        #[command(subcommand)]
        what: RenderWhat,
    },
    /// Regenerate a run's (or a sweep's) summary.json, report.txt and plots from its records alone;
    /// given a fleet benchmark record (`bench/fleet/*.json`), reprint its table and draw its memory curve.
    Report {
        /// A run folder (`runs/train-N`), a sweep folder, or a fleet record (`*.json`).
        run: PathBuf,
    },
    /// Write `episodes.jsonl` from a replay store: a run folder (`runs/train-N`), a learner
    /// folder (holding `replay/`) or the store itself. Prints the episodes per actor and any gap.
    Export {
        /// A run folder, a learner folder or a replay store.
        path: PathBuf,
        /// Where to write (default: `episodes.jsonl` in the run or learner folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// How the learned Q-values of a finished run rank the actions against the rewards observed
    /// (per action: episodes, mean reward and its 95% CI, mean Q; Spearman's rank correlation;
    /// the pairs the rewards tell apart that Q ranks the other way).
    PolicyFit {
        /// A run folder (`runs/train-N`).
        run: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Run config (deploy/*.yaml).
    config: PathBuf,
    /// Episodes of the whole run (overrides `actors.episodes`).
    #[arg(long)]
    episodes: Option<u64>,
    /// Actor processes (overrides `actors.count`).
    #[arg(long)]
    actors: Option<usize>,
    /// Threads per actor (overrides `actors.threads`; 0: cores divided among the actors).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of prompt order, exploration and the trainer (overrides `actors.seed` and `trainer.seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Folder the run folder is made in (on a filesystem the nodes share, for SLURM).
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Where the processes run: this machine, or SLURM (sbatch; SLURM_CONF as usual).
    #[arg(long, value_enum, default_value = "local")]
    backend: casrap_deploy::run::Backend,
}

#[derive(clap::Args)]
struct TestArgs {
    /// A run folder (`runs/train-N`), its `learner/checkpoints`, or one `ckpt-N` folder.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Run config (default: the run folder's config.yaml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Held-out prompts, spread over the test split (0: all of it).
    #[arg(long, default_value_t = 0)]
    prompts: usize,
    /// Device: cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Kernel and torch threads per measuring process (0: as the run's actors had).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Measuring processes (0: `actors.count`, as in training).
    #[arg(long, default_value_t = 0)]
    processes: usize,
    /// Seed of the random baseline.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder the run folder is made in.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
}

#[derive(Subcommand)]
enum RenderWhat {
    /// Kubernetes manifests for the run, as one multi-document YAML file.
    K8s {
        /// Run config (deploy/*.yaml).
        config: PathBuf,
        /// Output file.
        #[arg(long, default_value = "casrap-k8s.yaml")]
        out: PathBuf,
        /// Container image with casrap-learner and casrap-actor.
        #[arg(long, default_value = "casrap:latest")]
        image: String,
        #[arg(long, default_value = "default")]
        namespace: String,
        /// File with the bearer token for the Secret (default: the config's security.token_file;
        /// else a random one is generated).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Size of the learner's persistent volume.
        #[arg(long, default_value = "10Gi")]
        storage: String,
        #[arg(long)]
        storage_class: Option<String>,
    },
}

/// Counts SIGINT/SIGTERM from now on (a run stops at the first and kills at the second).
fn signal_counter() -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        loop {
            casrap_common::signals::shutdown().await;
            c.fetch_add(1, Ordering::Relaxed);
        }
    });
    count
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
        Command::Run(args) => {
            let stop = signal_counter();
            let overrides = casrap_deploy::run::Overrides {
                episodes: args.episodes,
                actors: args.actors,
                threads: args.threads,
                seed: args.seed,
            };
            let o =
                casrap_deploy::run::run(&args.config, &overrides, &args.out, stop, args.backend)
                    .await?;
            println!(
                "{} episodes of {} in {:.1} s; final policy version {}",
                o.episodes, o.expected, o.seconds, o.policy_version
            );
            if let Some(text) = &o.report {
                print!("{text}");
            }
            println!("outputs: {}/ (config.yaml, episodes.jsonl, summary.json, report.txt, plots/, learner/, logs/)", o.dir.display());
            if !o.failures.is_empty() {
                for f in &o.failures {
                    eprintln!("error: {f}");
                }
                anyhow::bail!(
                    "the run failed ({} part(s)); outputs so far are in {}",
                    o.failures.len(),
                    o.dir.display()
                );
            }
            if o.interrupted {
                return Err(casrap_common::exit::Interrupted(format!(
                    "the records so far are in {}",
                    o.dir.display()
                ))
                .into());
            }
            Ok(())
        }
        Command::Sweep { file, out, backend } => {
            let stop = signal_counter();
            let o = casrap_deploy::sweep::run(&file, &out, stop, backend).await?;
            if let Some(t) = &o.text {
                print!("{t}");
            }
            println!("outputs: {}/ (sweep.yaml, sweep.json, summary.json, report.txt, sweep.png, point-K/)", o.dir.display());
            if !o.failures.is_empty() {
                for f in &o.failures {
                    eprintln!("error: {f}");
                }
                anyhow::bail!(
                    "{} point(s) failed; outputs so far are in {}",
                    o.failures.len(),
                    o.dir.display()
                );
            }
            Ok(())
        }
        Command::Test(a) => {
            let args = casrap_deploy::testrun::TestArgs {
                checkpoint: a.checkpoint,
                config: a.config,
                prompts: a.prompts,
                device: a.device,
                threads: a.threads,
                processes: a.processes,
                seed: a.seed,
                out: a.out,
            };
            // Waiting on the measuring processes blocks this thread, not tokio's workers.
            let (dir, text) = tokio::task::block_in_place(|| casrap_deploy::testrun::run(&args))?;
            print!("{text}");
            println!(
                "outputs: {}/ (config.yaml, results.jsonl, summary.json, report.txt, plots/)",
                dir.display()
            );
            Ok(())
        }
        Command::Eval { args } => {
            let bin = casrap_deploy::procs::locate("casrap-actor")?;
            let status = tokio::task::block_in_place(|| {
                use std::os::unix::process::CommandExt;
                // Named `casrap` in its usage and errors, as the user typed it.
                std::process::Command::new(&bin).arg0("casrap").arg("eval").args(&args).status()
            })
            .map_err(|e| anyhow::anyhow!("{}: {e}", bin.display()))?;
            use std::os::unix::process::ExitStatusExt;
            // Its own message is already on stderr; exit as it did (128 + N for signal N).
            match (status.code(), status.signal()) {
                (Some(0), _) => Ok(()),
                (Some(code), _) => std::process::exit(code),
                (None, Some(sig)) => std::process::exit(128 + sig),
                (None, None) => anyhow::bail!("casrap-actor eval ended with {status}"),
            }
        }
        Command::Render {
            what:
                RenderWhat::K8s { config, out, image, namespace, token_file, storage, storage_class },
        } => {
            let cfg = casrap_common::config::RunConfig::from_file(&config)?;
            let token = match token_file
                .map(|p| p.display().to_string())
                .or_else(|| cfg.security.token_file.clone())
            {
                Some(path) if std::path::Path::new(&path).is_file() => {
                    casrap_common::config::SecurityConfig {
                        token_file: Some(path),
                        ..Default::default()
                    }
                    .token()?
                    .unwrap_or_default()
                }
                _ => {
                    let t = casrap_common::config::SecurityConfig::random_token();
                    eprintln!(
                        "no token file: generated a random token into the Secret; keep {} private",
                        out.display()
                    );
                    t
                }
            };
            let opts =
                casrap_deploy::k8s::K8sOptions { image, namespace, token, storage, storage_class };
            let text = casrap_deploy::k8s::render(&cfg, &opts)?;
            std::fs::write(&out, text).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Report { run } if run.extension().is_some_and(|e| e == "json") => {
            let (table, png) = casrap_deploy::report::fleet(&run)?;
            print!("{table}");
            println!("wrote {}", png.display());
            Ok(())
        }
        Command::Report { run } if run.join("sweep.json").is_file() => {
            let (_, text) = casrap_deploy::sweep::report(&run)?;
            print!("{text}");
            Ok(())
        }
        Command::Report { run } => {
            let w = casrap_deploy::report::write(&run)?;
            print!("{}", w.text);
            println!(
                "wrote {}, {} and {} plots in {}",
                w.summary.display(),
                w.report.display(),
                w.plots.len(),
                run.join("plots").display()
            );
            Ok(())
        }
        Command::Export { path, out } => {
            let e = casrap_deploy::run_records::export(&path, out.as_deref())?;
            print!("{}", e.table());
            Ok(())
        }
        Command::PolicyFit { run } => {
            let fit = casrap_deploy::run_records::policy_fit(&run)?;
            print!("{}", fit.table());
            Ok(())
        }
    }
}
