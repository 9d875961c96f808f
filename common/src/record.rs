//! The records reports are made from, typed once for the side that writes them and the side that
//! reads them, so a renamed or retyped field is a compile error or a named parse error, never a
//! silent NaN in a report:
//! - [`EpisodeRecord`]: what an actor writes for each episode (in the transition's metrics), the
//!   learner stores verbatim beside the transition, `casrap export` writes to `episodes.jsonl`,
//!   and run reports, sweeps and checks read back;
//! - [`TrainingLine`]: the learner's `training.jsonl`, one line per published policy;
//! - [`PromptResult`]: test mode's `results.jsonl`, one line per held-out prompt.
//!
//! Versions: every record written since the first version has these fields, except `budget`
//! (added with request quality budgets; empty before: the seed's reward). JSON has no NaN, so
//! serde_json writes a non-finite number (a median of nothing, an infinite perplexity) as `null`;
//! such fields read back as NaN, as they were meant.

use serde::{Deserialize, Serialize};

use crate::json::nan_if_null;

use crate::state::Complexity;
use crate::telemetry::{Hardware, Snapshot};

/// The prompt an episode ran on (its row in the prompt file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptRef {
    pub category: String,
    pub context_dependency: String,
    pub id: u64,
    /// 1-based line in the prompt file.
    pub line: u64,
}

/// One side (dense or pruned) of an episode's measurement: medians over its timed runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// Weight and KV bytes read per decoded token.
    pub bytes_per_token: u64,
    #[serde(deserialize_with = "nan_if_null")]
    pub decode_s: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub decode_tokens_per_s: f64,
    /// Perplexity on the prompt and the dense model's continuation.
    #[serde(deserialize_with = "nan_if_null")]
    pub ppl: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub prefill_s: f64,
}

impl Side {
    /// Prefill and decode of one timed run, in milliseconds.
    pub fn total_ms(&self) -> f64 {
        (self.prefill_s + self.decode_s) * 1e3
    }
}

/// The untimed dense reference run that produced the continuation both sides are scored on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    #[serde(deserialize_with = "nan_if_null")]
    pub decode_s: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub prefill_s: f64,
}

/// Memory the pruned profile used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub profile_bytes: u64,
    pub profiles_cached_bytes: u64,
}

/// One episode, as `episodes.jsonl` holds it. Fields are in alphabetical order, the order the
/// records have always had on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeRecord {
    /// The action's label (`none`, `heads:0.1`, ...).
    pub action: String,
    /// Its index in the run's action list.
    pub action_index: usize,
    pub actor_id: String,
    /// Seconds to apply the pruning (median over the runs that applied it).
    #[serde(deserialize_with = "nan_if_null")]
    pub apply_s: f64,
    /// The request's quality budget class (empty in records from before budgets).
    #[serde(default)]
    pub budget: String,
    /// Bytes read per decoded token, dense over pruned: the memory-bound speedup ceiling.
    #[serde(deserialize_with = "nan_if_null")]
    pub ceiling: f64,
    pub complexity: Complexity,
    pub dense: Side,
    /// The exploration rate of the policy that chose the action.
    pub epsilon: f32,
    /// Whether the action was drawn at random (epsilon) rather than the policy's greedy choice.
    pub explored: bool,
    pub hardware: Hardware,
    /// [`Hardware::label`], the key of per-hardware reports.
    pub hardware_label: String,
    /// The harness's raw measurement (every timed run), kept as the actor wrote it.
    pub measurement: serde_json::Value,
    pub memory: Memory,
    pub policy_version: u64,
    /// Relative perplexity change, pruned over dense, minus 1.
    #[serde(deserialize_with = "nan_if_null")]
    pub ppl_change: f64,
    pub prompt: PromptRef,
    #[serde(deserialize_with = "nan_if_null")]
    pub prompt_perplexity: f64,
    pub prompt_tokens: usize,
    pub pruned: Side,
    /// The policy's Q-values for the state (absent before the first policy arrived).
    pub q_values: Option<Vec<f32>>,
    /// Whether the pruned profile was rebuilt rather than taken from the cache.
    pub rebuilt: bool,
    pub reference: Reference,
    /// Whether every restore checked in this episode gave the dense weights back bit for bit.
    pub restore_identical: bool,
    #[serde(deserialize_with = "nan_if_null")]
    pub restore_s: f64,
    pub restores_checked: u64,
    pub reward: f64,
    /// This actor's episode number (1, 2, ...).
    pub seq: u64,
    /// Decode speedup, pruned over dense (see `actors.timing`).
    #[serde(deserialize_with = "nan_if_null")]
    pub speedup: f64,
    /// The state vector the policy saw (`state::LAYOUT`).
    pub state: Vec<f32>,
    pub telemetry: Snapshot,
    #[serde(deserialize_with = "nan_if_null")]
    pub time_unix_s: f64,
    /// Share of positions where the pruned model's top-1 token is the dense model's.
    #[serde(deserialize_with = "nan_if_null")]
    pub top1_agreement: f64,
    /// Seconds to check a restore (median over the checks; NaN without one).
    #[serde(deserialize_with = "nan_if_null")]
    pub verify_s: f64,
}

/// One line of the learner's training log (`learner/training.jsonl`), written per published
/// policy version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingLine {
    /// The exploration rate published with this version.
    pub epsilon: f32,
    /// Transitions inserted into the replay store so far.
    pub inserted: u64,
    /// Mean loss of the updates since the previous line (none before the first update).
    pub loss: Option<f64>,
    /// Seconds since the trainer started.
    pub time_s: f64,
    /// Gradient updates so far.
    pub updates: u64,
    pub version: u64,
}

impl TrainingLine {
    /// The line as the log holds it (keys sorted).
    pub fn to_line(&self) -> serde_json::Result<String> {
        sorted_line(self)
    }
}

/// One line of JSON with the keys sorted at every level (through `serde_json::Value`, whose maps
/// are ordered), as every record has always been written.
fn sorted_line<T: Serialize>(record: &T) -> serde_json::Result<String> {
    serde_json::to_value(record).map(|v| v.to_string())
}

/// What one action did on one prompt in test mode (a row of `results.jsonl`'s `results`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionResult {
    pub action: String,
    pub reward: f64,
    pub speedup: f64,
    pub ceiling: f64,
    pub ppl_change: f64,
    pub top1_agreement: f64,
    pub dense_tokens_per_s: f64,
    pub pruned_tokens_per_s: f64,
}

/// One held-out prompt of test mode, a line of `results.jsonl`: its state, the policy's Q-values
/// and choice, the random baseline's draw, and every action's result (in the run's action order).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PromptResult {
    /// Position among the prompts of the whole test (shards are merged in this order).
    #[serde(default)]
    pub index: usize,
    pub prompt_id: u64,
    pub category: String,
    /// The prompt's budget class (empty in records written before budgets: the seed's reward).
    #[serde(default)]
    pub budget: String,
    pub prompt_tokens: usize,
    pub prompt_perplexity: f64,
    pub state: Vec<f32>,
    pub q_values: Vec<f32>,
    /// Index of the policy's greedy action.
    pub greedy: usize,
    /// Index drawn uniformly (the random baseline).
    pub random: usize,
    pub results: Vec<ActionResult>,
    pub hardware_label: String,
}

/// A parse error naming the field it is in (`dense.ppl: invalid type ...`), or the error alone
/// at the top level.
fn field_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> String {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if path == "." {
        inner.to_string()
    } else {
        format!("{path}: {inner}")
    }
}

impl EpisodeRecord {
    /// The record as one line of JSON, as the learner stores it and `episodes.jsonl` holds it:
    /// keys sorted at every level (a JSON map's order), as records have always been written.
    pub fn to_line(&self) -> serde_json::Result<String> {
        sorted_line(self)
    }

    /// A complete, plausible record for `actor_id`'s episode `seq`, its measurement padded with
    /// `pad_bytes` characters: what load generators and tests send where a real actor's record
    /// would go (the learner accepts only records that parse as this type).
    pub fn synthetic(actor_id: &str, seq: u64, pad_bytes: usize) -> Self {
        let side = Side {
            bytes_per_token: 1_000_000,
            decode_s: 0.01,
            decode_tokens_per_s: 1600.0,
            ppl: 120.0,
            prefill_s: 0.002,
        };
        EpisodeRecord {
            action: "heads:0.1".into(),
            action_index: 1,
            actor_id: actor_id.into(),
            apply_s: 0.001,
            budget: "strict".into(),
            ceiling: 1.1,
            complexity: Complexity {
                tokens: 12,
                perplexity: f64::INFINITY,
                tokens_norm: 0.012,
                perplexity_norm: 1.0,
                complexity: 0.4,
                repetition: Some(0.25),
            },
            dense: side.clone(),
            epsilon: 0.05,
            explored: false,
            hardware: Hardware {
                device_kind: "cpu".into(),
                device_name: "x".into(),
                memory_bytes: 1,
                cpu_model: "x".into(),
                cpu_cores: 2,
            },
            hardware_label: "cpu x (2 cores)".into(),
            measurement: if pad_bytes == 0 {
                serde_json::json!({"runs": []})
            } else {
                serde_json::json!({"runs": [], "pad": "x".repeat(pad_bytes)})
            },
            memory: Memory { profile_bytes: 5, profiles_cached_bytes: 10 },
            policy_version: 3,
            ppl_change: 0.02,
            prompt: PromptRef {
                category: "code".into(),
                context_dependency: "low".into(),
                id: 7,
                line: 9,
            },
            prompt_perplexity: 130.0,
            prompt_tokens: 12,
            pruned: Side { decode_tokens_per_s: 1800.0, ..side },
            q_values: Some(vec![0.1, 0.2]),
            rebuilt: false,
            reference: Reference { decode_s: 0.01, prefill_s: 0.002 },
            restore_identical: true,
            restore_s: 0.001,
            restores_checked: 1,
            reward: 0.07,
            seq,
            speedup: 1.12,
            state: vec![0.5; 4],
            telemetry: Snapshot {
                cpu_utilisation: 0.5,
                memory_available_bytes: 1,
                memory_total_bytes: 2,
                battery: 1.0,
                gpu: None,
            },
            time_unix_s: 1.7e9,
            top1_agreement: 0.9,
            verify_s: f64::NAN,
        }
    }

    /// Reads a record from JSON text (nesting bounded by serde_json's recursion limit); an error
    /// names the field, as [`EpisodeRecord::from_value`]'s do.
    pub fn from_json(text: &str) -> Result<Self, String> {
        // The fast path (every record an actor sends); only a record that fails is read again
        // with its field path tracked, to name the field.
        if let Ok(record) = serde_json::from_str::<Self>(text) {
            return Ok(record);
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let record: Self = serde_path_to_error::deserialize(&mut de).map_err(field_error)?;
        de.end().map_err(|e| e.to_string())?;
        Ok(record)
    }

    /// Reads a record from its JSON; an error names the field (`dense.ppl: invalid type ...`).
    pub fn from_value(value: &serde_json::Value) -> Result<Self, String> {
        serde_path_to_error::deserialize(value).map_err(field_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EpisodeRecord {
        EpisodeRecord::synthetic("actor-0", 4, 0)
    }

    #[test]
    fn non_finite_numbers_round_trip_as_nan_and_lines_keep_sorted_keys() {
        let r = sample();
        let line = r.to_line().expect("serialises");
        assert!(line.contains(r#""verify_s":null"#), "{line}");
        assert!(line.contains(r#""hardware":{"cpu_cores":2,"cpu_model""#), "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).expect("parses");
        let back = EpisodeRecord::from_value(&value).expect("reads back");
        assert!(back.verify_s.is_nan() && back.complexity.perplexity.is_nan());
        assert_eq!((back.speedup, back.pruned.decode_tokens_per_s), (r.speedup, 1800.0));
        assert_eq!(back.to_line().expect("serialises"), line);
    }

    #[test]
    fn records_from_before_budgets_read_with_an_empty_class_and_a_wrong_type_is_named() {
        let mut v = serde_json::to_value(sample()).expect("to value");
        v.as_object_mut().expect("object").remove("budget");
        let r: EpisodeRecord = serde_json::from_value(v.clone()).expect("reads");
        assert_eq!(r.budget, "");
        v["dense"]["ppl"] = serde_json::json!("high");
        let e = EpisodeRecord::from_value(&v).expect_err("wrong type");
        assert!(e.starts_with("dense.ppl: invalid type: string"), "{e}");
        v["dense"]["ppl"] = serde_json::json!(12.5);
        v.as_object_mut().expect("object").remove("reward");
        let e = EpisodeRecord::from_value(&v).expect_err("missing");
        assert!(e.contains("missing field `reward`"), "{e}");
    }
}
