//! `casrap-actor eval` (what `casrap eval` runs): perplexity on a text (plain or WikiText raw)
//! and zero-shot multiple-choice accuracy, for the dense model, fixed actions and a checkpoint's
//! policy, in one table. It runs in an actor process because it holds the model; the
//! orchestrator only starts it.

use std::path::PathBuf;

use casrap_common::action::Action;
use casrap_common::config::RunConfig;
use casrap_common::telemetry::Telemetry;
use serde::Serialize;

use crate::scoring::{self, McResult, Subject, TextResult};
use casrap_engine::error::{Error, Result};

/// What to evaluate.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// Run config: the model, the state and the action set a policy uses.
    #[arg(long, default_value = "deploy/local.yaml")]
    pub config: PathBuf,
    /// Text to compute perplexity on.
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// Format of --text: plain, or wikitext (WikiText-2 raw, ` = Title = ` headings).
    #[arg(long, default_value = "plain")]
    pub format: String,
    /// Use only the first N tokens of the text (0: all).
    #[arg(long, default_value_t = 0)]
    pub max_tokens: usize,
    /// Tokens per perplexity window.
    #[arg(long, default_value_t = 256)]
    pub window: usize,
    /// Multiple-choice JSONL: one {question, choices, answer} per line.
    #[arg(long)]
    pub mc: Option<PathBuf>,
    /// Fixed actions to evaluate besides the dense model (comma-separated, e.g. ffn:0.25,layers:0.125).
    #[arg(long, value_delimiter = ',')]
    pub actions: Vec<String>,
    /// A run folder, its checkpoints folder or a `ckpt-N` whose greedy policy is evaluated too.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Device: cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Kernel and torch threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Also write the raw figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One subject's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRow {
    pub subject: String,
    pub text: Option<TextResult>,
    pub mc: Option<McResult>,
}

/// Evaluates every subject; rows in order: dense, the fixed actions, the policy.
pub fn run(a: &EvalArgs) -> Result<Vec<EvalRow>> {
    if a.text.is_none() && a.mc.is_none() {
        return Err(Error::arg("--text/--mc", "nothing to evaluate: give --text and/or --mc"));
    }
    let cfg = RunConfig::from_file(&a.config)?;
    let fixed: Vec<Action> = a
        .actions
        .iter()
        .map(|s| Action::parse(s).map_err(|e| Error::arg("--actions", e.to_string())))
        .collect::<Result<_>>()?;
    let policy = match &a.policy {
        Some(p) => Some(load_policy(p, &cfg)?),
        None => None,
    };
    let cuda = crate::episodes::prepare(a.threads, &a.device)?;
    let (mut setup, _) = crate::episodes::open_setup(&cfg, &a.device)?;
    let tokens = match &a.text {
        None => None,
        Some(path) => {
            let text = match a.format.as_str() {
                "plain" => casrap_common::text::read_plain(path)?,
                "wikitext" => casrap_common::text::wikitext_as_text(path)?,
                other => {
                    return Err(Error::arg(
                        "--format",
                        format!("`{other}`: expected plain or wikitext"),
                    ))
                }
            };
            let mut t = setup.tokenizer.encode(&text)?;
            if a.max_tokens > 0 {
                t.truncate(a.max_tokens);
            }
            Some(t)
        }
    };
    let items = match &a.mc {
        Some(p) => Some(scoring::read_mc(p)?),
        None => None,
    };
    let mut telemetry = Telemetry::open(cuda);
    let mut subjects: Vec<Subject<'_>> = vec![Subject::Dense];
    subjects.extend(fixed.into_iter().map(Subject::Fixed));
    if let Some(net) = &policy {
        subjects.push(Subject::Policy { net, config: &cfg, telemetry: &mut telemetry });
    }
    let mut rows = Vec::new();
    for mut s in subjects {
        let text = match &tokens {
            Some(t) => Some(scoring::text(&mut setup, &mut s, t, a.window)?),
            None => None,
        };
        let mc = match &items {
            Some(i) => Some(scoring::multiple_choice(&mut setup, &mut s, i)?),
            None => None,
        };
        rows.push(EvalRow { subject: s.label(), text, mc });
    }
    Ok(rows)
}

/// The greedy policy (online Q-network) of the checkpoint `path` names (a run folder, its
/// checkpoints folder or a `ckpt-N`), checked against the widths `cfg` gives.
pub fn load_policy(path: &std::path::Path, cfg: &RunConfig) -> Result<casrap_common::qnet::QNet> {
    let store = |e: casrap_store::Error| Error::arg("--policy", e.to_string());
    let (_, ckpt) = casrap_store::checkpoint::locate(path).map_err(store)?;
    let (net, _) =
        casrap_store::checkpoint::read_policy(&ckpt, Some(&cfg.qnet_dims())).map_err(store)?;
    Ok(net)
}

/// The table of [`run`]'s rows.
pub fn table(rows: &[EvalRow]) -> String {
    let dense = rows.first().and_then(|r| r.text.as_ref()).map(|t| t.perplexity);
    let mut s = String::from("| subject | tokens | perplexity | vs dense | MC accuracy | actions used |\n|---|---|---|---|---|---|\n");
    for r in rows {
        let (tok, ppl, rel) = match (&r.text, dense) {
            (Some(t), Some(d)) => (
                t.tokens.to_string(),
                format!("{:.2}", t.perplexity),
                format!("{:+.1}%", (t.perplexity / d - 1.0) * 100.0),
            ),
            _ => ("-".into(), "-".into(), "-".into()),
        };
        let mc = r.mc.as_ref().map_or("-".into(), |m| {
            format!("{:.1}% ({}/{})", m.accuracy * 100.0, m.correct, m.items)
        });
        let mut used = std::collections::BTreeMap::new();
        for m in [r.text.as_ref().map(|t| &t.actions), r.mc.as_ref().map(|m| &m.actions)]
            .into_iter()
            .flatten()
        {
            for (k, v) in m {
                *used.entry(k.clone()).or_insert(0) += v;
            }
        }
        let used: Vec<String> = used.iter().map(|(k, v)| format!("{k} {v}")).collect();
        s += &format!("| {} | {tok} | {ppl} | {rel} | {mc} | {} |\n", r.subject, used.join(", "));
    }
    s
}
