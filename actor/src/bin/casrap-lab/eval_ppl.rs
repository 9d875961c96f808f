//! `casrap-lab eval-ppl`: perplexity of a model on a text beside the best unigram model on the
//! same tokens, optionally with each single layer skipped.

use std::io::Write;

use anyhow::Context;
use casrap_actor::cli::ModelArgs;
use casrap_engine::perplexity;

#[derive(clap::Args)]
pub struct Args {
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

pub fn run(args: Args) -> anyhow::Result<()> {
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
