//! `casrap-lab export-synthetic`: a synthetic preset's random weights written as an HF folder
//! (config.json, model.safetensors).

#[derive(clap::Args)]
pub struct Args {
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

pub fn run(args: Args) -> anyhow::Result<()> {
    let kind = casrap_engine::parse_dtype(&args.dtype)?;
    casrap_engine::synthetic::export(&args.preset, args.seed, kind, &args.out)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
