//! The prompt dataset: a CSV with the CASRAP seed's columns `prompt, category, subject,
//! context_dependency` (any order, extra columns ignored; `subject` and `context_dependency` may be
//! absent) and an optional `budget` (a request quality budget class, see [`crate::budget`]), and a
//! deterministic train/test split stratified by category.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What to do with a row that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRows {
    /// Skip it, count it and log its line and reason.
    Skip,
    /// Fail with its line and reason.
    Fail,
}

/// One prompt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Prompt {
    /// Stable id: a hash of the prompt text (the same prompt keeps its id when rows move).
    pub id: u64,
    /// 1-based line of the row's start in its file.
    pub line: u64,
    pub prompt: String,
    pub category: String,
    pub subject: String,
    pub context_dependency: String,
    /// The `budget` column (lowercase; empty when the file has none).
    #[serde(default)]
    pub budget: String,
}

/// A skipped row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: u64,
    pub reason: String,
}

/// The prompts of one file.
#[derive(Debug, Clone)]
pub struct PromptSet {
    pub path: PathBuf,
    pub prompts: Vec<Prompt>,
    pub skipped: Vec<Skipped>,
}

/// 64-bit FNV-1a followed by a splitmix64 finaliser: stable across platforms and releases.
pub fn stable_hash(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

struct Columns {
    prompt: usize,
    category: usize,
    subject: Option<usize>,
    context_dependency: Option<usize>,
    budget: Option<usize>,
    count: usize,
}

fn columns(path: &Path, header: &csv::StringRecord) -> Result<Columns> {
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().trim_start_matches('\u{feff}').eq_ignore_ascii_case(name))
    };
    let need = |name: &str| {
        find(name).ok_or_else(|| Error::File {
            path: path.into(),
            reason: format!(
                "no `{name}` column (header: {})",
                header.iter().collect::<Vec<_>>().join(",")
            ),
        })
    };
    Ok(Columns {
        prompt: need("prompt")?,
        category: need("category")?,
        subject: find("subject"),
        context_dependency: find("context_dependency"),
        budget: find("budget"),
        count: header.len(),
    })
}

impl PromptSet {
    /// Loads a prompt CSV. Bad rows (wrong field count, empty prompt or category, not UTF-8) are
    /// skipped and logged or fail the load, per `bad`. A file with no usable row is an error.
    pub fn load(path: &Path, bad: BadRows) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut reader =
            csv::ReaderBuilder::new().flexible(true).from_reader(std::io::BufReader::new(file));
        let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
        let cols = columns(path, &header)?;
        let mut prompts = Vec::new();
        let mut skipped = Vec::new();
        let mut record = csv::ByteRecord::new();
        loop {
            let line = reader.position().line() + 1;
            match reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    // The reader cannot resynchronise after an I/O or structural error.
                    return Err(csv_error(path, e));
                }
            }
            let line = record.position().map_or(line, |p| p.line());
            match parse_row(&record, &cols) {
                Ok(mut p) => {
                    p.line = line;
                    prompts.push(p);
                }
                Err(reason) => match bad {
                    BadRows::Fail => return Err(Error::Line { path: path.into(), line, reason }),
                    BadRows::Skip => {
                        tracing::warn!(file = %path.display(), line, %reason, "skipping prompt row");
                        skipped.push(Skipped { line, reason });
                    }
                },
            }
        }
        if prompts.is_empty() {
            return Err(Error::File {
                path: path.into(),
                reason: format!("no usable prompt rows ({} skipped)", skipped.len()),
            });
        }
        if !skipped.is_empty() {
            tracing::warn!(file = %path.display(), skipped = skipped.len(), loaded = prompts.len(), "prompt rows skipped");
        }
        Ok(Self { path: path.into(), prompts, skipped })
    }

    /// Prompt count per category, sorted by category.
    pub fn counts(prompts: &[Prompt]) -> BTreeMap<&str, usize> {
        let mut m = BTreeMap::new();
        for p in prompts {
            *m.entry(p.category.as_str()).or_default() += 1;
        }
        m
    }

    /// A train/test split stratified by category: in each category, `round(n * test_fraction)`
    /// prompts go to test, chosen by a hash of `seed` and the prompt text, so the split depends
    /// neither on row order nor on other rows. Both halves keep file order.
    pub fn split(&self, test_fraction: f64, seed: u64) -> Split {
        let mut by_category: BTreeMap<&str, Vec<&Prompt>> = BTreeMap::new();
        for p in &self.prompts {
            by_category.entry(p.category.as_str()).or_default().push(p);
        }
        let mut test_lines = std::collections::HashSet::new();
        for group in by_category.values_mut() {
            group.sort_by_key(|p| (stable_hash(seed, p.prompt.as_bytes()), p.line));
            let k = ((group.len() as f64) * test_fraction.clamp(0.0, 1.0)).round() as usize;
            test_lines.extend(group.iter().take(k).map(|p| p.line));
        }
        let (test, train) =
            self.prompts.iter().cloned().partition(|p| test_lines.contains(&p.line));
        Split { train, test }
    }
}

/// The two halves of a split.
#[derive(Debug, Clone)]
pub struct Split {
    pub train: Vec<Prompt>,
    pub test: Vec<Prompt>,
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    match e.position() {
        Some(p) => Error::Line { path: path.into(), line: p.line(), reason: e.to_string() },
        None => Error::File { path: path.into(), reason: e.to_string() },
    }
}

fn parse_row(record: &csv::ByteRecord, cols: &Columns) -> std::result::Result<Prompt, String> {
    if record.len() != cols.count {
        return Err(format!("{} fields, the header has {}", record.len(), cols.count));
    }
    let field = |i: usize, name: &str| -> std::result::Result<String, String> {
        let raw = record.get(i).unwrap_or_default();
        std::str::from_utf8(raw)
            .map(|s| s.trim().to_string())
            .map_err(|_| format!("`{name}` is not UTF-8"))
    };
    let prompt = field(cols.prompt, "prompt")?;
    let category = field(cols.category, "category")?.to_lowercase();
    if prompt.is_empty() {
        return Err("empty `prompt`".into());
    }
    if category.is_empty() {
        return Err("empty `category`".into());
    }
    let subject = match cols.subject {
        Some(i) => field(i, "subject")?,
        None => String::new(),
    };
    let context_dependency = match cols.context_dependency {
        Some(i) => field(i, "context_dependency")?.to_lowercase(),
        None => String::new(),
    };
    let budget = match cols.budget {
        Some(i) => field(i, "budget")?.to_lowercase(),
        None => String::new(),
    };
    Ok(Prompt {
        id: stable_hash(0, prompt.as_bytes()),
        line: 0,
        prompt,
        category,
        subject,
        context_dependency,
        budget,
    })
}
