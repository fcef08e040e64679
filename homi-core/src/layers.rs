//! The layer rule of the core, checked: a module imports only from layers
//! below its own (or from itself). ARCHITECTURE.md explains the layers.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;

/// The top-level modules of `src/`, bottom layer first. A module may name
/// (`crate::…`) only modules of lower rank.
const LAYERS: &[&[&str]] = &[
    &["error"],
    &["config"],
    &["mem0_config"],
    &["model", "provider"],
    &["store"],
    &["budget"],
    &["memory"],
    &["jobs", "transfer"],
    &["chat", "auth"],
    &["open"],
    &["doctor"],
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The module behind a name the crate root re-exports (`crate::Config`).
fn reexported_from(name: &str) -> Option<&'static str> {
    match name {
        "Config" => Some("config"),
        "Error" | "ErrorKind" | "Result" => Some("error"),
        "Homi" => Some("open"),
        n if n.starts_with(char::is_uppercase) => Some("memory"),
        _ => None,
    }
}

/// The modules a line of code names through `crate::`, including the ones
/// of a `crate::{a, b::c}` group.
fn named(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // A trailing comma leaves an empty item.
                if !name.is_empty() {
                    out.push(name);
                }
            }
        } else {
            out.push(
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    out
}

/// Every module the code of `text` names, with its line (0-based); comment
/// lines are skipped and a `crate::{…}` group wrapped over several lines is
/// read whole.
fn paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, first)) = lines.next() {
        if first.trim_start().starts_with("//") {
            continue;
        }
        let mut line = first.to_owned();
        while let Some(i) = line.rfind("crate::{") {
            if line[i..].contains('}') {
                break;
            }
            match lines.next() {
                Some((_, more)) => line.push_str(more),
                None => break,
            }
        }
        out.extend(named(&line).into_iter().map(|t| (n, t)));
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    let mut seen = 0;
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap();
        let module = Path::new(first.as_os_str())
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // The crate root only declares and re-exports; this file names
        // modules in its table.
        if module == "lib" || module == "layers" {
            continue;
        }
        let own = rank(&module).unwrap_or_else(|| {
            panic!(
                "src/{} is in no layer: add `{module}` to LAYERS",
                relative.display()
            )
        });
        let text = std::fs::read_to_string(file).unwrap();
        for (n, target) in paths(&text) {
            seen += 1;
            let target = reexported_from(&target).unwrap_or(&target).to_owned();
            if target == module {
                continue;
            }
            match rank(&target) {
                Some(r) if r < own => {}
                _ => wrong.push(format!(
                    "src/{}:{}: `{module}` names `crate::{target}`",
                    relative.display(),
                    n + 1
                )),
            }
        }
    }
    assert!(seen > 100, "the check read only {seen} crate paths");
    assert!(
        wrong.is_empty(),
        "imports that go up or sideways a layer:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn a_group_import_names_each_module() {
    assert_eq!(
        named("use crate::{memory::Memory, store};"),
        ["memory", "store"]
    );
    assert_eq!(named("let x = crate::model::Scope::default();"), ["model"]);
    assert!(named("no paths here").is_empty());
    let wrapped =
        "use crate::{\n    chat::Chat,\n    model::Scope,\n};\n// crate::open\nuse crate::store;";
    let found: Vec<_> = paths(wrapped).into_iter().map(|(_, t)| t).collect();
    assert_eq!(found, ["chat", "model", "store"]);
}
