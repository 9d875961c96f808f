//! `casrap-lab bench-decode`: fixed-length greedy decode (EOS ignored) timed, printed as one JSON
//! object; scripts/bench-engine compares it with Hugging Face.

use casrap_actor::cli::ModelArgs;
use casrap_engine::generate;
use casrap_engine::sampling::Sampling;

#[derive(clap::Args)]
pub struct Args {
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

pub fn run(args: Args) -> anyhow::Result<()> {
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
