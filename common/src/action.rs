//! The pruning actions a policy chooses between. In config each is a list entry
//! `{kind, intensity}` (`kv_window` takes `sinks` and `window` instead); on the command line
//! `heads:0.1`, `ffn:0.25`, `layers:0.125`, `kv_window:4+64`, `none`.

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
}

/// A checked action.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    None,
    Heads { intensity: f64 },
    Ffn { intensity: f64 },
    Layers { intensity: f64 },
    KvWindow { sinks: usize, window: usize },
}

pub const DEFAULT_SINKS: usize = 4;

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
        match self.kind {
            ActionKind::None => {
                if self.intensity.is_some() {
                    return Err(extra("intensity"));
                }
                Ok(Action::None)
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
    /// Parses `none`, `heads:0.1`, `ffn:0.25`, `layers:0.125`, `kv_window:64` or `kv_window:4+64`.
    pub fn parse(s: &str) -> Result<Action> {
        let s = s.trim();
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        let bad = |why: &str| invalid(format!("`{s}`: {why}"));
        let number = |a: &str| a.parse::<f64>().map_err(|_| bad("the intensity is not a number"));
        let spec = match kind {
            "none" if arg.is_empty() => {
                ActionSpec { kind: ActionKind::None, intensity: None, sinks: None, window: None }
            }
            "heads" | "ffn" | "layers" => {
                let kind = match kind {
                    "heads" => ActionKind::Heads,
                    "ffn" => ActionKind::Ffn,
                    _ => ActionKind::Layers,
                };
                ActionSpec { kind, intensity: Some(number(arg)?), sinks: None, window: None }
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
                }
            }
            _ => {
                return Err(bad(
                    "unknown action; expected none, heads:F, ffn:F, layers:F or kv_window:[S+]W",
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
        }
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
    }
}
