//! The runtime adaptations a policy chooses between. In config each is a list entry
//! `{kind, intensity}` (`kv_window` takes `sinks` and `window` instead, `lookup` takes `draft` and
//! optionally `ngram`, and `sparsity` may add `draft` to verify lookup drafts on the sparse
//! model); on the command line `heads:0.1`, `ffn:0.25`, `layers:0.125`, `kv_window:4+64`,
//! `sparsity:0.25`, `lookup:4` (or `lookup:4/2` for n-grams up to 2),
//! `sparsity:0.25+lookup:4`, `none`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

fn invalid(reason: impl Into<String>) -> Error {
    Error::Invalid { what: "action".into(), reason: reason.into() }
}

/// What to prune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    None,
    Heads,
    Ffn,
    Layers,
    KvWindow,
    /// Activation sparsity: block inputs below per-matrix thresholds are skipped in decode.
    Sparsity,
    /// Prompt-lookup speculation: n-gram drafts verified in one pass (lossless).
    Lookup,
}

/// One entry of an action list, as written in config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    pub kind: ActionKind,
    /// Fraction removed, in (0, 1): of query heads (`heads`), FFN channels (`ffn`), layers (`layers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intensity: Option<f64>,
    /// `kv_window`: first positions always attended to (attention sinks); default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sinks: Option<usize>,
    /// `kv_window`: most recent positions attended to, the current one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// `lookup` (and `sparsity` combined with lookup): tokens drafted per verification pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<usize>,
    /// `lookup`: longest n-gram matched when drafting (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ngram: Option<usize>,
}

/// A checked action.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    None,
    Heads {
        intensity: f64,
    },
    Ffn {
        intensity: f64,
    },
    Layers {
        intensity: f64,
    },
    KvWindow {
        sinks: usize,
        window: usize,
    },
    /// `level`: the target share of block-matrix inputs skipped, in [0, [`MAX_SPARSITY`]].
    Sparsity {
        level: f64,
    },
    /// Lossless prompt lookup: `draft` tokens per pass, n-grams up to `ngram`.
    Lookup {
        draft: usize,
        ngram: usize,
    },
    /// Lookup verified on the sparse model (lossy, like sparsity alone).
    SparseLookup {
        level: f64,
        draft: usize,
        ngram: usize,
    },
}

/// How a sparsity level is shared among each block's matrices (qkv, o, gate_up, down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Allocation {
    /// Every matrix skips the same share of its inputs.
    #[default]
    Uniform,
    /// TEAL's greedy per-block search: each block skips the level's share of its weight bytes,
    /// shared among its matrices so as to keep the block's output error lowest.
    Greedy,
}

impl Allocation {
    pub fn name(self) -> &'static str {
        match self {
            Allocation::Uniform => "uniform",
            Allocation::Greedy => "greedy",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "uniform" => Ok(Allocation::Uniform),
            "greedy" => Ok(Allocation::Greedy),
            other => {
                Err(invalid(format!("unknown sparsity allocation `{other}` (uniform or greedy)")))
            }
        }
    }
}

pub const DEFAULT_SINKS: usize = 4;
/// Highest activation sparsity an action may ask for.
pub const MAX_SPARSITY: f64 = 0.9;
/// Most tokens a lookup action drafts per pass (a verification pass takes the draft plus one).
pub const MAX_DRAFT: usize = 15;
/// The n-gram length lookup matches up to unless an action says otherwise.
pub const DEFAULT_NGRAM: usize = 3;
/// Longest n-gram an action may match.
pub const MAX_NGRAM: usize = 8;

fn sparsity_level(v: Option<f64>) -> Result<f64> {
    let v =
        v.ok_or_else(|| invalid("`sparsity` needs an intensity (the share of inputs skipped)"))?;
    if !(v.is_finite() && (0.0..=MAX_SPARSITY).contains(&v)) {
        return Err(invalid(format!("`sparsity` intensity {v} is outside [0, {MAX_SPARSITY}]")));
    }
    Ok(v)
}

fn lookup_params(draft: Option<usize>, ngram: Option<usize>) -> Result<(usize, usize)> {
    let draft = draft.ok_or_else(|| invalid("`lookup` needs a draft length"))?;
    if !(1..=MAX_DRAFT).contains(&draft) {
        return Err(invalid(format!(
            "`lookup` draft length {draft} is outside 1..={MAX_DRAFT} (the verifier takes {} positions)",
            MAX_DRAFT + 1
        )));
    }
    let ngram = ngram.unwrap_or(DEFAULT_NGRAM);
    if !(1..=MAX_NGRAM).contains(&ngram) {
        return Err(invalid(format!("`lookup` ngram {ngram} is outside 1..={MAX_NGRAM}")));
    }
    Ok((draft, ngram))
}

fn intensity(kind: &str, v: Option<f64>) -> Result<f64> {
    let v = v.ok_or_else(|| invalid(format!("`{kind}` needs an intensity")))?;
    if !(v.is_finite() && v > 0.0 && v < 1.0) {
        return Err(invalid(format!("`{kind}` intensity {v} is outside (0, 1)")));
    }
    Ok(v)
}

impl ActionSpec {
    pub fn check(&self) -> Result<Action> {
        let extra =
            |what: &str| invalid(format!("`{:?}` takes no `{what}`", self.kind).to_lowercase());
        if !matches!(self.kind, ActionKind::Lookup | ActionKind::Sparsity)
            && (self.draft.is_some() || self.ngram.is_some())
        {
            return Err(extra("draft/ngram"));
        }
        match self.kind {
            ActionKind::None => {
                if self.intensity.is_some() {
                    return Err(extra("intensity"));
                }
                Ok(Action::None)
            }
            ActionKind::Sparsity | ActionKind::Lookup => {
                if self.sinks.is_some() || self.window.is_some() {
                    return Err(extra("sinks/window"));
                }
                if self.kind == ActionKind::Lookup {
                    if self.intensity.is_some() {
                        return Err(extra("intensity"));
                    }
                    let (draft, ngram) = lookup_params(self.draft, self.ngram)?;
                    return Ok(Action::Lookup { draft, ngram });
                }
                let level = sparsity_level(self.intensity)?;
                if self.draft.is_none() && self.ngram.is_none() {
                    return Ok(Action::Sparsity { level });
                }
                let (draft, ngram) = lookup_params(self.draft, self.ngram)?;
                Ok(Action::SparseLookup { level, draft, ngram })
            }
            ActionKind::Heads | ActionKind::Ffn | ActionKind::Layers => {
                if self.sinks.is_some() || self.window.is_some() {
                    return Err(extra("sinks/window"));
                }
                let name = serde_json::to_value(self.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                let i = intensity(&name, self.intensity)?;
                Ok(match self.kind {
                    ActionKind::Heads => Action::Heads { intensity: i },
                    ActionKind::Ffn => Action::Ffn { intensity: i },
                    _ => Action::Layers { intensity: i },
                })
            }
            ActionKind::KvWindow => {
                if self.intensity.is_some() {
                    return Err(extra("intensity"));
                }
                let window = self.window.ok_or_else(|| invalid("`kv_window` needs a window"))?;
                if window == 0 {
                    return Err(invalid("`kv_window` window must be at least 1"));
                }
                Ok(Action::KvWindow { sinks: self.sinks.unwrap_or(DEFAULT_SINKS), window })
            }
        }
    }
}

impl Action {
    /// Parses `none`, `heads:0.1`, `ffn:0.25`, `layers:0.125`, `kv_window:64`, `kv_window:4+64`,
    /// `sparsity:0.25`, `lookup:4`, `lookup:4/2` or `sparsity:0.25+lookup:4`.
    pub fn parse(s: &str) -> Result<Action> {
        let s = s.trim();
        let bad = |why: &str| invalid(format!("`{s}`: {why}"));
        let lookup = |arg: &str| -> Result<(Option<usize>, Option<usize>)> {
            let (d, n) = match arg.split_once('/') {
                Some((d, n)) => (d, Some(n)),
                None => (arg, None),
            };
            let int =
                |a: &str| a.parse::<usize>().map_err(|_| bad("draft and ngram are whole numbers"));
            Ok((Some(int(d)?), n.map(int).transpose()?))
        };
        if let Some(rest) = s.strip_prefix("sparsity:") {
            let (level, draft) = match rest.split_once("+lookup:") {
                Some((l, d)) => (l, Some(d)),
                None => (rest, None),
            };
            let level = level.parse::<f64>().map_err(|_| bad("the sparsity is not a number"))?;
            let (draft, ngram) = draft.map(lookup).transpose()?.unwrap_or((None, None));
            let spec = ActionSpec {
                kind: ActionKind::Sparsity,
                intensity: Some(level),
                sinks: None,
                window: None,
                draft,
                ngram,
            };
            return spec.check();
        }
        if let Some(rest) = s.strip_prefix("lookup:") {
            let (draft, ngram) = lookup(rest)?;
            let spec = ActionSpec {
                kind: ActionKind::Lookup,
                intensity: None,
                sinks: None,
                window: None,
                draft,
                ngram,
            };
            return spec.check();
        }
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        let number = |a: &str| a.parse::<f64>().map_err(|_| bad("the intensity is not a number"));
        let spec = match kind {
            "none" if arg.is_empty() => {
                ActionSpec {
                    kind: ActionKind::None,
                    intensity: None,
                    sinks: None,
                    window: None,
                    draft: None,
                    ngram: None,
                }
            }
            "heads" | "ffn" | "layers" => {
                let kind = match kind {
                    "heads" => ActionKind::Heads,
                    "ffn" => ActionKind::Ffn,
                    _ => ActionKind::Layers,
                };
                ActionSpec {
                    kind,
                    intensity: Some(number(arg)?),
                    sinks: None,
                    window: None,
                    draft: None,
                    ngram: None,
                }
            }
            "kv_window" => {
                let (sinks, window) = match arg.split_once('+') {
                    Some((a, b)) => (Some(a), b),
                    None => (None, arg),
                };
                let int = |a: &str| {
                    a.parse::<usize>().map_err(|_| bad("sinks and window are whole numbers"))
                };
                ActionSpec {
                    kind: ActionKind::KvWindow,
                    intensity: None,
                    sinks: sinks.map(int).transpose()?,
                    window: Some(int(window)?),
                    draft: None,
                    ngram: None,
                }
            }
            _ => {
                return Err(bad(
                    "unknown action; expected none, heads:F, ffn:F, layers:F, kv_window:[S+]W, sparsity:S, lookup:G[/N] or sparsity:S+lookup:G[/N]",
                ))
            }
        };
        spec.check()
    }

    /// A comma-separated list of [`Action::parse`] entries.
    pub fn parse_list(s: &str) -> Result<Vec<Action>> {
        s.split(',').filter(|p| !p.trim().is_empty()).map(Action::parse).collect()
    }

    /// Short stable name, also the profile's name: `none`, `heads:0.10`, `kv_window:4+64`.
    pub fn label(&self) -> String {
        match self {
            Action::None => "none".into(),
            Action::Heads { intensity } => {
                format!("heads:{intensity:.3}").trim_end_matches('0').to_string()
            }
            Action::Ffn { intensity } => {
                format!("ffn:{intensity:.3}").trim_end_matches('0').to_string()
            }
            Action::Layers { intensity } => {
                format!("layers:{intensity:.3}").trim_end_matches('0').to_string()
            }
            Action::KvWindow { sinks, window } => format!("kv_window:{sinks}+{window}"),
            Action::Sparsity { level } => sparsity_label(*level),
            Action::Lookup { draft, ngram } => lookup_label(*draft, *ngram),
            Action::SparseLookup { level, draft, ngram } => {
                format!("{}+{}", sparsity_label(*level), lookup_label(*draft, *ngram))
            }
        }
    }

    /// The sparsity this action decodes with (0 for none of it).
    pub fn sparsity(&self) -> Option<f64> {
        match *self {
            Action::Sparsity { level } | Action::SparseLookup { level, .. } => Some(level),
            _ => None,
        }
    }

    /// `(draft, ngram)` when this action decodes by prompt lookup.
    pub fn lookup(&self) -> Option<(usize, usize)> {
        match *self {
            Action::Lookup { draft, ngram } | Action::SparseLookup { draft, ngram, .. } => {
                Some((draft, ngram))
            }
            _ => None,
        }
    }
}

fn sparsity_label(level: f64) -> String {
    let s = format!("sparsity:{level:.3}");
    let s = s.trim_end_matches('0');
    s.strip_suffix('.').map_or_else(|| s.to_string(), |s| format!("{s}.0"))
}

fn lookup_label(draft: usize, ngram: usize) -> String {
    if ngram == DEFAULT_NGRAM {
        format!("lookup:{draft}")
    } else {
        format!("lookup:{draft}/{ngram}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_label() {
        assert_eq!(Action::parse("heads:0.10").unwrap(), Action::Heads { intensity: 0.1 });
        assert_eq!(Action::parse("heads:0.10").unwrap().label(), "heads:0.1");
        assert_eq!(
            Action::parse("kv_window:64").unwrap(),
            Action::KvWindow { sinks: 4, window: 64 }
        );
        assert_eq!(Action::parse("kv_window:0+8").unwrap().label(), "kv_window:0+8");
        assert_eq!(Action::parse_list("none, ffn:0.25").unwrap().len(), 2);
        assert_eq!(Action::parse("sparsity:0.25").unwrap(), Action::Sparsity { level: 0.25 });
        assert_eq!(Action::parse("sparsity:0").unwrap().label(), "sparsity:0.0");
        assert_eq!(Action::parse("lookup:4").unwrap(), Action::Lookup { draft: 4, ngram: 3 });
        assert_eq!(Action::parse("lookup:8/2").unwrap().label(), "lookup:8/2");
        let combo = Action::parse("sparsity:0.30+lookup:4").unwrap();
        assert_eq!(combo, Action::SparseLookup { level: 0.3, draft: 4, ngram: 3 });
        assert_eq!(combo.label(), "sparsity:0.3+lookup:4");
        assert_eq!((combo.sparsity(), combo.lookup()), (Some(0.3), Some((4, 3))));
        for a in ["sparsity:0.25", "lookup:4", "lookup:6/2", "sparsity:0.4+lookup:8/1"] {
            let parsed = Action::parse(a).unwrap();
            assert_eq!(Action::parse(&parsed.label()).unwrap(), parsed, "{a} round-trips");
        }
        for bad in [
            "heads:1.0",
            "heads:0",
            "heads:-0.1",
            "heads:nan",
            "heads",
            "ffn:x",
            "prune:0.1",
            "kv_window:0",
            "none:0.1",
            "sparsity:0.95",
            "sparsity:-0.1",
            "sparsity:nan",
            "lookup:0",
            "lookup:16",
            "lookup:4/0",
            "lookup:4/9",
            "lookup:x",
            "sparsity:0.2+lookup:0",
        ] {
            let e = Action::parse(bad).unwrap_err().to_string();
            assert!(e.contains("action"), "{bad}: {e}");
        }
    }

    #[test]
    fn config_entries() {
        let spec: ActionSpec =
            serde_json::from_str(r#"{"kind":"layers","intensity":0.125}"#).unwrap();
        assert_eq!(spec.check().unwrap(), Action::Layers { intensity: 0.125 });
        assert!(serde_json::from_str::<ActionSpec>(
            r#"{"kind":"layers","intensity":0.1,"extra":1}"#
        )
        .is_err());
        assert!(serde_json::from_str::<ActionSpec>(r#"{"kind":"prune"}"#).is_err());
        let spec: ActionSpec =
            serde_json::from_str(r#"{"kind":"kv_window","intensity":0.5}"#).unwrap();
        assert!(spec.check().is_err());
        let spec: ActionSpec =
            serde_json::from_str(r#"{"kind":"sparsity","intensity":0.25,"draft":4}"#).unwrap();
        assert_eq!(spec.check().unwrap(), Action::SparseLookup { level: 0.25, draft: 4, ngram: 3 });
        let spec: ActionSpec = serde_json::from_str(r#"{"kind":"lookup","draft":16}"#).unwrap();
        assert!(spec.check().unwrap_err().to_string().contains("draft length 16"));
        let spec: ActionSpec =
            serde_json::from_str(r#"{"kind":"ffn","intensity":0.2,"draft":4}"#).unwrap();
        assert!(spec.check().is_err());
    }
}
