//! The prompt loader and split, and the evaluation-text readers, on committed fixtures and on the
//! project's own prompt set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use casrap_common::prompts::{BadRows, PromptSet};
use casrap_common::text;
use casrap_common::Error;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn repo_prompts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/prompts/prompts.csv")
}

#[test]
fn good_csv_loads_every_row_with_its_fields() {
    let set = PromptSet::load(&fixture("prompts_good.csv"), BadRows::Fail).unwrap();
    assert_eq!(set.prompts.len(), 10);
    assert!(set.skipped.is_empty());
    let p = &set.prompts[2];
    assert_eq!(p.prompt, r#"Explain what this does: "for i in range(3): print(i)""#);
    assert_eq!(
        (p.category.as_str(), p.subject.as_str(), p.context_dependency.as_str()),
        ("programming", "python", "high")
    );
    assert_eq!(p.line, 4);
    // A quoted field spanning two lines: the next row's line accounts for it.
    assert!(set.prompts[4].prompt.contains("broke, and\nthe room"));
    assert_eq!(set.prompts[5].line, 8);
}

#[test]
fn bad_rows_are_skipped_and_counted_or_fail_with_their_line() {
    let set = PromptSet::load(&fixture("prompts_bad.csv"), BadRows::Skip).unwrap();
    assert_eq!(set.prompts.iter().map(|p| p.line).collect::<Vec<_>>(), vec![2, 7]);
    let lines: Vec<u64> = set.skipped.iter().map(|s| s.line).collect();
    assert_eq!(lines, vec![3, 4, 5, 6]);
    assert!(set.skipped[0].reason.contains("2 fields"), "{:?}", set.skipped[0]);
    assert!(set.skipped[1].reason.contains("empty `prompt`"));
    assert!(set.skipped[2].reason.contains("empty `category`"));

    let err = PromptSet::load(&fixture("prompts_bad.csv"), BadRows::Fail).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Line { line: 3, .. }), "{msg}");
    assert!(msg.contains("prompts_bad.csv:3"), "{msg}");
}

#[test]
fn seed_format_csv_loads_as_it_is() {
    // Extra `id` column, BOM, CRLF, capitalised values.
    let set = PromptSet::load(&fixture("prompts_seed.csv"), BadRows::Fail).unwrap();
    assert_eq!(set.prompts.len(), 3);
    assert_eq!(set.prompts[0].prompt, r#"Translate "good morning" into Spanish."#);
    assert_eq!(set.prompts[0].category, "instruction");
    assert_eq!(set.prompts[1].context_dependency, "medium");
}

#[test]
fn missing_column_and_missing_file_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.csv");
    std::fs::write(&path, "text,category\nhello,knowledge\n").unwrap();
    let msg = PromptSet::load(&path, BadRows::Skip).unwrap_err().to_string();
    assert!(msg.contains("no `prompt` column") && msg.contains("p.csv"), "{msg}");
    let msg =
        PromptSet::load(&dir.path().join("absent.csv"), BadRows::Skip).unwrap_err().to_string();
    assert!(msg.contains("absent.csv"), "{msg}");
    std::fs::write(&path, "prompt,category\n,x\n").unwrap();
    let msg = PromptSet::load(&path, BadRows::Skip).unwrap_err().to_string();
    assert!(msg.contains("no usable prompt rows (1 skipped)"), "{msg}");
}

#[test]
fn split_is_deterministic_stratified_and_independent_of_row_order() {
    let set = PromptSet::load(&repo_prompts(), BadRows::Fail).unwrap();
    let a = set.split(0.2, 7);
    let b = set.split(0.2, 7);
    assert_eq!(a.test, b.test);
    assert_eq!(a.train.len() + a.test.len(), set.prompts.len());
    let all = PromptSet::counts(&set.prompts);
    let test = PromptSet::counts(&a.test);
    for (category, n) in &all {
        let k = test.get(category).copied().unwrap_or(0);
        assert_eq!(
            k,
            ((*n as f64) * 0.2).round() as usize,
            "category {category}: {k} of {n} in test"
        );
    }
    // Reversed rows give the same test set; another seed gives another one.
    let mut reversed = set.clone();
    reversed.prompts.reverse();
    let ids = |v: &[casrap_common::prompts::Prompt]| {
        v.iter().map(|p| p.id).collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(ids(&reversed.split(0.2, 7).test), ids(&a.test));
    assert_ne!(ids(&set.split(0.2, 8).test), ids(&a.test));
}

#[test]
fn project_prompt_set_meets_its_spec() {
    let set = PromptSet::load(&repo_prompts(), BadRows::Fail).unwrap();
    assert!(set.prompts.len() >= 1500, "{} prompts", set.prompts.len());
    let counts = PromptSet::counts(&set.prompts);
    for c in [
        "knowledge",
        "math",
        "programming",
        "creative",
        "instruction",
        "reading",
        "commonsense",
        "dialogue",
    ] {
        assert!(counts.get(c).copied().unwrap_or(0) >= 100, "category {c}: {counts:?}");
    }
    let words: Vec<usize> =
        set.prompts.iter().map(|p| p.prompt.split_whitespace().count()).collect();
    assert!(words.iter().any(|&w| w <= 10), "no short question");
    assert!(words.iter().any(|&w| w >= 120), "no paragraph-long prompt");
    let levels: BTreeMap<&str, usize> = set.prompts.iter().fold(BTreeMap::new(), |mut m, p| {
        *m.entry(p.context_dependency.as_str()).or_default() += 1;
        m
    });
    assert_eq!(levels.keys().copied().collect::<Vec<_>>(), vec!["high", "low", "medium"]);
    let unique: std::collections::HashSet<&str> =
        set.prompts.iter().map(|p| p.prompt.as_str()).collect();
    assert_eq!(unique.len(), set.prompts.len(), "duplicate prompts");
}

#[test]
fn wikitext_articles_and_sections() {
    let articles = text::read_wikitext(&fixture("wikitext_sample.raw")).unwrap();
    let titles: Vec<&str> = articles.iter().map(|a| a.title.as_str()).collect();
    assert_eq!(titles, vec!["Lighthouse of Brightwater", "Copper Valley Railway"]);
    assert!(articles[0].text.contains("= = History = ="));
    assert!(articles[0].text.contains("lamp was first lit"));
    assert!(!articles[0].text.contains("narrow gauge"));
    assert!(articles[1].text.ends_with("twelve carriages . "));
    assert!(articles[1].text.starts_with(" = Copper Valley Railway = \n The Copper"));
    let raw = text::wikitext_as_text(&fixture("wikitext_sample.raw")).unwrap();
    assert_eq!(raw, std::fs::read_to_string(fixture("wikitext_sample.raw")).unwrap());
}

#[test]
fn non_wikitext_and_bad_text_files_are_reported() {
    let err = text::read_wikitext(&fixture("not_wikitext.txt")).unwrap_err().to_string();
    assert!(err.contains("not_wikitext.txt:1") && err.contains("WikiText"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, b"line one\nline \xff two\n").unwrap();
    let err = text::read_plain(&bad).unwrap_err().to_string();
    assert!(err.contains("bad.txt:2") && err.contains("not UTF-8"), "{err}");
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "  \n").unwrap();
    assert!(text::read_plain(&empty).unwrap_err().to_string().contains("no text"));
}

#[test]
fn budget_classes_come_from_the_column_the_dependency_or_a_draw_and_a_gap_names_the_row() {
    use casrap_common::budget::{Assign, BudgetConfig, Class};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.csv");
    std::fs::write(
        &path,
        "prompt,category,context_dependency,budget\na,x,high,Strict\nb,x,low,lenient\nc,y,medium,loose\n",
    )
    .unwrap();
    let set = PromptSet::load(&path, BadRows::Fail).unwrap();
    assert_eq!(set.prompts[0].budget, "strict");
    let classes = vec![Class::seed("strict"), Class::seed("normal"), Class::seed("lenient")];
    let column =
        BudgetConfig { assign: Assign::Column, classes: classes.clone(), ..Default::default() };
    assert_eq!(column.class_of(&set.prompts[0], 0), Ok(0));
    assert_eq!(column.class_of(&set.prompts[1], 0), Ok(2));
    // An unknown class is named with its row's line.
    let (line, reason) = column.check_prompts(&set.prompts).unwrap_err();
    assert_eq!(line, 4);
    assert!(
        reason.contains("`loose` is not one of the classes (strict, normal, lenient)"),
        "{reason}"
    );
    // A mapping that does not cover `medium` fails on that row too.
    let dependency = BudgetConfig {
        assign: Assign::Dependency,
        classes: classes.clone(),
        from_dependency: [("high", "strict"), ("low", "lenient")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    };
    assert_eq!(dependency.class_of(&set.prompts[0], 9), Ok(0));
    let (line, reason) = dependency.check_prompts(&set.prompts).unwrap_err();
    assert_eq!(line, 4);
    assert!(reason.contains("context_dependency `medium` has no class"), "{reason}");
    // Random draws cover every class; a prompt's test class is fixed.
    let random = BudgetConfig { assign: Assign::Random, classes, ..Default::default() };
    let drawn: std::collections::BTreeSet<usize> =
        (0..30).map(|d| random.class_of(&set.prompts[0], d).unwrap()).collect();
    assert_eq!(drawn.len(), 3);
    assert_eq!(random.test_class(&set.prompts[2], 5), random.test_class(&set.prompts[2], 5));
    assert_eq!((random.feature(0), random.feature(1), random.feature(2)), (0.0, 0.5, 1.0));
}
