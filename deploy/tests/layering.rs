//! The orchestrator carries no libtorch: `casrap` reads replay stores, checkpoints and records in
//! plain Rust and starts actor processes for everything that holds a model (test mode, eval).

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn shared_libraries(bin: &std::path::Path) -> String {
    let out = Command::new("ldd").arg(bin).output().unwrap();
    assert!(
        out.status.success(),
        "ldd {}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("libc.so"), "ldd listed nothing for {}:\n{text}", bin.display());
    text
}

#[test]
fn casrap_links_no_libtorch_and_the_actor_does() {
    let casrap = shared_libraries(env!("CARGO_BIN_EXE_casrap").as_ref());
    assert!(!casrap.contains("libtorch") && !casrap.contains("libc10"), "{casrap}");
    // The same check on the actor, which must link it, shows that the check can see it.
    let actor = casrap_deploy::procs::locate("casrap-actor").unwrap();
    assert!(shared_libraries(&actor).contains("libtorch"), "casrap-actor without libtorch?");
}

/// The modules of the crate rooted at `root` (`lib.rs` or a binary's `main.rs`): module path ->
/// file, found through `mod name;` declarations as rustc finds them.
fn modules(root: &std::path::Path) -> std::collections::BTreeMap<String, std::path::PathBuf> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![(String::new(), root.to_path_buf())];
    while let Some((path, file)) = todo.pop() {
        let text = std::fs::read_to_string(&file).unwrap();
        let dir = match file.file_name().and_then(|n| n.to_str()) {
            Some("lib.rs" | "main.rs" | "mod.rs") => file.parent().unwrap().to_path_buf(),
            _ => file.with_extension(""),
        };
        for line in code_lines(&text) {
            let decl =
                line.trim_start().trim_start_matches("pub(crate) ").trim_start_matches("pub ");
            let Some(name) = decl.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) else {
                continue;
            };
            let child = if path.is_empty() { name.to_string() } else { format!("{path}::{name}") };
            let flat = dir.join(format!("{name}.rs"));
            let nested = dir.join(name).join("mod.rs");
            let f = if flat.is_file() { flat } else { nested };
            assert!(f.is_file(), "{}: mod {name} has no file", file.display());
            todo.push((child, f));
        }
        out.insert(path, file);
    }
    out
}

/// A file's lines up to its unit tests, without comments.
fn code_lines(text: &str) -> Vec<&str> {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect()
}

/// The paths a file names through `crate::`, `super::`, `self::` or one of its own child modules,
/// as absolute module paths (`crate::{a, b::c}` gives both).
fn named_paths(module: &str, text: &str, children: &[String]) -> Vec<String> {
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    let join = |base: &str, rest: &str| {
        if base.is_empty() {
            rest.to_string()
        } else {
            format!("{base}::{rest}")
        }
    };
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    for line in code_lines(text) {
        let mut rest = line;
        while let Some(i) = rest.find(|c: char| c.is_ascii_lowercase()) {
            let before = rest[..i].chars().last();
            let tail = &rest[i..];
            let word_len = tail.find(|c: char| !ident(c)).unwrap_or(tail.len());
            let word = &tail[..word_len];
            let after = &tail[word_len..];
            rest = &tail[word_len..];
            if before.is_some_and(|c| ident(c) || c == ':') || !after.starts_with("::") {
                continue;
            }
            let base = match word {
                "crate" => String::new(),
                "super" => parent.to_string(),
                "self" => module.to_string(),
                w if children.iter().any(|c| c == w) => join(module, w),
                _ => continue,
            };
            let path = &after[2..];
            if let Some(group) = path.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                out.extend(inner.split(',').map(|p| join(&base, p.trim())));
            } else {
                let end = path.find(|c: char| !(ident(c) || c == ':')).unwrap_or(path.len());
                out.push(join(&base, path[..end].trim_end_matches(':')));
            }
        }
    }
    out
}

/// Module edges of one crate: a file names an item of another (its longest module prefix). The
/// crate root only declares and re-exports, so it is left out.
fn edges(root: &std::path::Path) -> Vec<(String, String)> {
    let mods = modules(root);
    let mut out = std::collections::BTreeSet::new();
    for (module, file) in &mods {
        if module.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let children: Vec<String> = mods
            .keys()
            .filter_map(|m| m.strip_prefix(&format!("{module}::")))
            .filter(|c| !c.contains("::"))
            .map(str::to_string)
            .collect();
        for path in named_paths(module, &text, &children) {
            let target = mods
                .keys()
                .filter(|m| !m.is_empty())
                .filter(|m| path == **m || path.starts_with(&format!("{m}::")))
                .max_by_key(|m| m.len());
            if let Some(t) = target.filter(|t| *t != module) {
                out.insert((module.clone(), t.clone()));
            }
        }
    }
    out.into_iter().collect()
}

#[test]
fn no_file_imports_one_that_imports_it_back() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut roots = Vec::new();
    for krate in ["proto", "common", "actor/engine", "actor", "learner/store", "learner", "deploy"]
    {
        let src = root.join(krate).join("src");
        roots
            .extend(["lib.rs", "main.rs"].map(|f| src.join(f)).into_iter().filter(|p| p.is_file()));
        if let Ok(bins) = std::fs::read_dir(src.join("bin")) {
            for b in bins.flatten() {
                let p = b.path();
                roots.push(if p.is_dir() { p.join("main.rs") } else { p });
            }
        }
    }
    let mut circles = Vec::new();
    let mut seen = 0;
    for r in &roots {
        let e = edges(r);
        seen += e.len();
        // Every cycle shows up as a pair of modules that reach each other.
        let reach = |from: &str, to: &str| {
            let mut stack = vec![from.to_string()];
            let mut visited = std::collections::BTreeSet::new();
            while let Some(m) = stack.pop() {
                if m == to {
                    return true;
                }
                if visited.insert(m.clone()) {
                    stack.extend(e.iter().filter(|(a, _)| *a == m).map(|(_, b)| b.clone()));
                }
            }
            false
        };
        for (a, b) in &e {
            if reach(b, a) {
                circles.push(format!("{}: {a} -> {b} -> ... -> {a}", r.display()));
            }
        }
    }
    assert!(seen > 100, "only {seen} module edges found: the scan is broken");
    assert!(circles.is_empty(), "modules that reach each other:\n{}", circles.join("\n"));
}
