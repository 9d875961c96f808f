//! Every committed benchmark record under `bench/` re-renders byte for byte, and every README or docs/
//! table marked `<!-- record: PATH -->` ... `<!-- /record -->` is what its record renders to, so
//! neither the committed reports nor the README's tables can drift from their raw records.
//!
//! Renderers: a run or test folder (`report.txt`, `summary.json`) by `casrap report`; a fleet
//! record (`bench/fleet/*.json`) by its table; a prune-bench record by `prune-bench --report`;
//! a timing comparison (`bench/timing/*compare.txt`) by `prune-bench --compare` on its records;
//! a before/after comparison (`*.ab.txt`) by `scripts/bench_ab.py summary`;
//! a kernel record (`bench/engine/kernels/*.json`) by `bench-kernels --report`; an engine record
//! by `scripts/bench_engine.py --report` (stdlib only); any other file is its own text.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if e.file_type().unwrap().is_dir() {
            if name != "plots" {
                copy_dir(&e.path(), &to.join(&name));
            }
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// The text a record renders to (for a run folder, `report.txt` regenerated in a copy).
fn render(rel: &str) -> String {
    let path = root().join(rel);
    if path.is_dir() {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&path, tmp.path());
        casrap_deploy::report::write(tmp.path()).unwrap();
        return std::fs::read_to_string(tmp.path().join("report.txt")).unwrap();
    }
    if rel.starts_with("bench/fleet/") && rel.ends_with(".json") {
        return casrap_store::fleet::Record::load(&path).unwrap().table();
    }
    if rel.starts_with("bench/prune/") && rel.ends_with(".json") {
        use casrap_actor::prune::harness;
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let ms: Vec<harness::Measurement> =
            serde_json::from_value(v["measurements"].clone()).unwrap();
        let header = v["header"].as_str().unwrap();
        return format!("{header}\n{}", harness::table(&harness::summarize(&ms)));
    }
    if rel.starts_with("bench/timing/") && rel.ends_with("compare.txt") {
        return timing_comparison(&path);
    }
    if rel.ends_with(".ab.txt") {
        return python(rel, "scripts/bench_ab.py", "summary", &path);
    }
    if rel.starts_with("bench/engine/kernels/") && rel.ends_with(".json") {
        use casrap_actor::prune::kernel_bench;
        let r: kernel_bench::Record =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        return kernel_bench::table(&r);
    }
    if rel.starts_with("bench/real/allocation") && rel.ends_with(".json") {
        use casrap_actor::prune::allocation::Comparison;
        let c: Comparison = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        return c.table();
    }
    if rel.starts_with("bench/real/self-spec") && rel.ends_with(".json") {
        use casrap_actor::prune::self_spec::Record;
        let r: Record = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        return r.table();
    }
    if rel == "bench/engine/hf-harness-check.json" {
        return python(rel, "scripts/hf_harness_check.py", "--report", &path);
    }
    if rel.starts_with("bench/engine/") && rel.ends_with(".json") {
        return python(rel, "scripts/bench_engine.py", "--report", &path);
    }
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A timing comparison (`scripts/bench-timing`'s `compare.txt`) recomputed from the records its
/// first line names.
fn timing_comparison(path: &Path) -> String {
    use casrap_actor::prune::harness::{self, TimingRecord};
    let text = std::fs::read_to_string(path).unwrap();
    let first = text.lines().next().unwrap();
    // Records from before the lab tools had a binary of their own name `casrap-actor`.
    let args = ["# casrap-lab prune-bench --compare ", "# casrap-actor prune-bench --compare "]
        .iter()
        .find_map(|p| first.strip_prefix(p))
        .unwrap();
    let (list, reference) = match args.split_once(" --bias-reference ") {
        Some((l, r)) => (l, Some(r)),
        None => (args, None),
    };
    let load = |rel: &str| TimingRecord::load(&root().join(rel)).unwrap().1;
    let records: Vec<TimingRecord> = list.split_whitespace().map(load).collect();
    let reference = reference.map(load);
    format!("{first}\n{}", harness::compare(&records, reference.as_ref()).unwrap())
}

/// Committed timing comparisons re-render from their records.
#[test]
fn committed_timing_comparisons_are_their_records() {
    let mut checked = 0;
    for e in std::fs::read_dir(root().join("bench/timing")).unwrap() {
        let path = e.unwrap().path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().ends_with("compare.txt")) {
            let committed = std::fs::read_to_string(&path).unwrap();
            assert_eq!(committed, timing_comparison(&path), "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 1, "no timing comparison under bench/timing");
}

/// Committed run and test folders: `casrap report` on a copy writes the same `report.txt` and
/// `summary.json`, byte for byte.
#[test]
fn committed_run_and_test_reports_regenerate_byte_for_byte() {
    let mut checked = 0;
    for e in std::fs::read_dir(root().join("bench")).unwrap() {
        let dir = e.unwrap().path();
        if !dir.join("report.txt").is_file() {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&dir, tmp.path());
        casrap_deploy::report::write(tmp.path()).unwrap();
        for file in ["report.txt", "summary.json"] {
            let committed = std::fs::read_to_string(dir.join(file)).unwrap();
            let now = std::fs::read_to_string(tmp.path().join(file)).unwrap();
            assert!(
                committed == now,
                "{}/{file} differs from what its records render to; regenerate it with \
                 `casrap report {}`\n--- committed\n{committed}\n--- now\n{now}",
                dir.display(),
                dir.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} run folders under bench/");
}

/// Committed fleet tables (`bench/fleet/*.txt`) are their records' tables.
#[test]
fn committed_fleet_tables_are_their_records_tables() {
    let mut checked = 0;
    for e in std::fs::read_dir(root().join("bench/fleet")).unwrap() {
        let json = e.unwrap().path();
        if json.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let txt = std::fs::read_to_string(json.with_extension("txt")).unwrap();
        let r = casrap_store::fleet::Record::load(&json).unwrap();
        let expected = format!("{}record: {}\n", r.table(), r.args.record.unwrap().display());
        assert_eq!(txt, expected, "{} is not its record's table", json.display());
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} fleet records");
}

/// The marked tables of the README and of docs/, each against what its record renders to: the
/// block's non-blank lines (code fences aside) must be a contiguous run of the rendered text's
/// non-blank lines.
#[test]
fn marked_tables_are_reprinted_from_their_records() {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut checked = Vec::new();
    for file in &files {
        let name = file.strip_prefix(root()).unwrap_or(file).display().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        let mut lines = text.lines().enumerate();
        while let Some((n, line)) = lines.next() {
            let Some(rel) =
                line.trim().strip_prefix("<!-- record: ").and_then(|r| r.strip_suffix(" -->"))
            else {
                continue;
            };
            let block: Vec<&str> = lines
                .by_ref()
                .map(|(_, l)| l)
                .take_while(|l| l.trim() != "<!-- /record -->")
                // Blank lines and the code fence around a block are Markdown, not record.
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("```"))
                .collect();
            assert!(!block.is_empty(), "{name} line {}: an empty record block", n + 1);
            let rendered = render(rel);
            let rendered: Vec<&str> = rendered.lines().filter(|l| !l.trim().is_empty()).collect();
            let found = rendered.windows(block.len()).any(|w| w == block.as_slice());
            assert!(
                found,
                "{name} line {}: the block marked `{rel}` is not what the record renders to\n--- {name}\n{}\n--- {rel}\n{}",
                n + 1,
                block.join("\n"),
                rendered.join("\n")
            );
            checked.push(rel.to_string());
        }
    }
    assert!(checked.len() >= 30, "only {} marked blocks: {checked:?}", checked.len());
}

/// What the committed script `script` prints for the record `path` (`rel`, for messages).
fn python(rel: &str, script: &str, flag: &str, path: &Path) -> String {
    let out = std::process::Command::new("python3")
        .arg(root().join(script))
        .arg(flag)
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{rel}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
