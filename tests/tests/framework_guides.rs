//! The framework guides quote the examples and tests: each Rust block in
//! `docs/guides/*.md` names the file it comes from
//! (`<!-- file: examples/src/bin/axum-gateway.rs -->` on the line above),
//! and must appear in that file line for line, so the guides cannot drift
//! from code that is compiled and run.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_owned()
}

/// Each Rust block of `text`: the file it names and its lines.
fn quoted_blocks(guide: &str, text: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().peekable();
    let mut source: Option<String> = None;
    while let Some(line) = lines.next() {
        if let Some(path) = line
            .trim()
            .strip_prefix("<!-- file:")
            .and_then(|rest| rest.strip_suffix("-->"))
        {
            source = Some(path.trim().to_owned());
            continue;
        }
        if line.trim_start().starts_with("```rust") {
            let file = source
                .take()
                .unwrap_or_else(|| panic!("{guide}: a Rust block without `<!-- file: … -->`"));
            let mut block = Vec::new();
            for line in lines.by_ref() {
                if line.trim_start().starts_with("```") {
                    break;
                }
                block.push(line.to_owned());
            }
            blocks.push((file, block));
            continue;
        }
        if !line.trim().is_empty() {
            source = None;
        }
    }
    blocks
}

fn contains_lines(haystack: &[&str], needle: &[String]) -> bool {
    !needle.is_empty()
        && haystack.windows(needle.len()).any(|w| {
            w.iter()
                .zip(needle)
                .all(|(a, b)| a.trim_end() == b.trim_end())
        })
}

#[test]
fn guide_code_is_quoted_from_compiled_files() {
    let dir = root().join("docs/guides");
    let mut checked = 0;
    for guide in ["axum.md", "hyper.md", "tonic.md"] {
        let text = std::fs::read_to_string(dir.join(guide)).unwrap();
        let blocks = quoted_blocks(guide, &text);
        assert!(!blocks.is_empty(), "{guide} quotes no code");
        for (file, block) in blocks {
            let source = std::fs::read_to_string(root().join(&file))
                .unwrap_or_else(|e| panic!("{guide}: {file}: {e}"));
            let source: Vec<&str> = source.lines().collect();
            assert!(
                contains_lines(&source, &block),
                "{guide}: this block is not in {file}:\n{}",
                block.join("\n")
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked}");
}

#[test]
fn a_changed_block_is_caught() {
    let guide = "<!-- file: x.rs -->\n```rust\nfn a() {}\n```\n";
    let blocks = quoted_blocks("test", guide);
    assert_eq!(
        blocks,
        vec![("x.rs".to_owned(), vec!["fn a() {}".to_owned()])]
    );
    let source = ["fn b() {}", "fn a() {}"];
    assert!(contains_lines(&source, &blocks[0].1));
    assert!(!contains_lines(&["fn a() { }"], &blocks[0].1));
}
