//! `casrap eval`: perplexity on a text (plain or WikiText raw) and zero-shot multiple-choice
//! accuracy, for the dense model, fixed actions and a checkpoint's policy, in one table.

use std::path::PathBuf;

use casrap_actor::evaluate::{self, McResult, Subject, TextResult};
use casrap_common::action::Action;
use casrap_common::config::RunConfig;
use casrap_common::telemetry::Telemetry;
use serde::Serialize;

use crate::error::{Error, Result};

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalArgs {
    pub config: PathBuf,
    pub text: Option<PathBuf>,
    /// `plain` or `wikitext`.
    pub format: String,
    pub max_tokens: usize,
    pub window: usize,
    pub mc: Option<PathBuf>,
    /// Fixed actions (labels such as `ffn:0.25`).
    pub actions: Vec<String>,
    /// A run folder, checkpoints folder or `ckpt-N` whose greedy policy is evaluated too.
    pub policy: Option<PathBuf>,
    pub device: String,
    pub threads: usize,
}

/// One subject's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRow {
    pub subject: String,
    pub text: Option<TextResult>,
    pub mc: Option<McResult>,
}

fn actor_err(e: casrap_actor::Error) -> Error {
    Error::process("eval", e.to_string())
}

/// Evaluates every subject; rows in order: dense, the fixed actions, the policy.
pub fn run(a: &EvalArgs) -> Result<Vec<EvalRow>> {
    if a.text.is_none() && a.mc.is_none() {
        return Err(Error::process("eval", "nothing to evaluate: give --text and/or --mc"));
    }
    let cfg = RunConfig::from_file(&a.config)?;
    let fixed: Vec<Action> = a
        .actions
        .iter()
        .map(|s| Action::parse(s).map_err(|e| Error::process("eval", format!("--actions: {e}"))))
        .collect::<Result<_>>()?;
    let policy = match &a.policy {
        Some(p) => Some(crate::testrun::load_policy(p, &cfg)?),
        None => None,
    };
    let cuda = casrap_actor::episodes::prepare(a.threads, &a.device).map_err(actor_err)?;
    let (mut setup, _) = casrap_actor::episodes::open_setup(&cfg, &a.device).map_err(actor_err)?;
    let tokens = match &a.text {
        None => None,
        Some(path) => {
            let text = match a.format.as_str() {
                "plain" => casrap_common::text::read_plain(path)?,
                "wikitext" => casrap_common::text::wikitext_as_text(path)?,
                other => {
                    return Err(Error::process(
                        "eval",
                        format!("--format `{other}`: expected plain or wikitext"),
                    ))
                }
            };
            let mut t = setup.tokenizer.encode(&text).map_err(actor_err)?;
            if a.max_tokens > 0 {
                t.truncate(a.max_tokens);
            }
            Some(t)
        }
    };
    let items = match &a.mc {
        Some(p) => Some(evaluate::read_mc(p).map_err(actor_err)?),
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
            Some(t) => Some(evaluate::text(&mut setup, &mut s, t, a.window).map_err(actor_err)?),
            None => None,
        };
        let mc = match &items {
            Some(i) => Some(evaluate::multiple_choice(&mut setup, &mut s, i).map_err(actor_err)?),
            None => None,
        };
        rows.push(EvalRow { subject: s.label(), text, mc });
    }
    Ok(rows)
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
