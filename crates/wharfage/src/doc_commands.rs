//! The commands the README and docs/ show must work as written: every `wharfage ...` in a
//! shell block parses with this CLI (the real clap definition: subcommands and flags exist,
//! values are accepted), and no continuation line carries a comment after its backslash
//! (pasted, the comment ends the command and the next line runs alone). The commands that
//! run (serve with no config, stage, pulls with skopeo and podman) run in the engine tests.

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::Cli;

/// The repository's root (this crate is `crates/wharfage`).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// README.md and every docs/*.md.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![repo().join("README.md")];
    let mut more: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    more.sort();
    docs.extend(more);
    docs
}

/// The shell blocks (```sh, bash, shell, console) of a markdown text: (first line number, lines).
fn shell_blocks(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, Vec<String>)> = None;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut current, fence) {
            (None, Some(lang)) if ["sh", "bash", "shell", "console"].contains(&lang.trim()) => current = Some((i + 2, Vec::new())),
            (None, Some(_)) => current = Some((0, Vec::new())), // another language: skipped
            (Some(_), Some(_)) => {
                if let Some((start, lines)) = current.take().filter(|(start, _)| *start > 0) {
                    blocks.push((start, lines));
                }
            }
            (Some((_, lines)), None) => lines.push(line.to_string()),
            (None, None) => {}
        }
    }
    blocks
}

/// A backslash that continues a line, followed by a comment: `cmd \  # why`.
fn comment_after_continuation(line: &str) -> bool {
    line.split_once('\\').is_some_and(|(_, rest)| rest.trim_start().starts_with('#') && rest.starts_with(char::is_whitespace))
}

/// Words of a command, with single and double quotes as the shell reads them.
fn words(command: &str) -> Vec<String> {
    let (mut out, mut word, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in command.chars() {
        match (quote, c) {
            (None, '\'' | '"') => (quote, any) = (Some(c), true),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut word));
                }
                any = false;
            }
            (_, c) => (word.push(c), any = true).1,
        }
    }
    if any {
        out.push(word);
    }
    out
}

/// The `wharfage` invocations of a block's lines (continuations joined, comments and
/// `[optional]` brackets and redirections dropped, pipes, `&&` and `&` split): (line number, arguments).
fn invocations(start: usize, lines: &[String]) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut joined = String::new();
    let mut first = start;
    for (i, line) in lines.iter().enumerate() {
        if joined.is_empty() {
            first = start + i;
        }
        let line = line.trim_start_matches("$ ");
        match line.trim_end().strip_suffix('\\') {
            Some(head) => joined.push_str(head),
            None => {
                joined.push_str(line);
                let command = std::mem::take(&mut joined);
                let command = command.split(" #").next().unwrap_or_default().replace(['[', ']'], "");
                // `&&`, `&` (background), pipes and `;` separate commands.
                for part in command.split(['|', ';', '&']) {
                    let mut w = Vec::new();
                    let mut all = words(part).into_iter();
                    while let Some(x) = all.next() {
                        match x.as_str() {
                            // A redirection and its target are the shell's, not arguments.
                            ">" | ">>" | "<" | "2>" => drop(all.next()),
                            _ if x.starts_with(['>', '<']) || x.starts_with("2>") => {}
                            _ => w.push(x),
                        }
                    }
                    let w: Vec<String> = w.into_iter().skip_while(|x| x.contains('=') || x == "sudo").collect();
                    if w.first().is_some_and(|x| x == "wharfage" || x.ends_with("/wharfage")) {
                        out.push((first, w));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_wharfage_command_in_the_docs_parses_and_no_continuation_has_a_comment() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let name = doc.strip_prefix(repo()).unwrap_or(&doc).display().to_string();
        for (start, lines) in shell_blocks(&text) {
            for (i, line) in lines.iter().enumerate() {
                if comment_after_continuation(line) {
                    problems.push(format!("{name}:{}: a comment after a continuation backslash: {line}", start + i));
                }
            }
            for (line, args) in invocations(start, &lines) {
                checked += 1;
                if let Err(e) = Cli::try_parse_from(&args) {
                    let first = e.to_string().lines().next().unwrap_or_default().to_string();
                    problems.push(format!("{name}:{line}: `{}` does not parse: {first}", args.join(" ")));
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} wharfage commands found in README.md and docs/");
    assert!(problems.is_empty(), "commands in the docs that fail as written:\n{}", problems.join("\n"));
}

/// The deploy files' commands in comments (`kubectl create secret ...`) paste as well.
#[test]
fn deploy_comments_have_no_comment_after_a_continuation() {
    let mut problems = Vec::new();
    for file in ["deploy/kubernetes/wharfage.yaml"] {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        for (i, line) in text.lines().enumerate() {
            if let Some(code) = line.trim_start().strip_prefix('#') {
                if comment_after_continuation(code) {
                    problems.push(format!("{file}:{}: {line}", i + 1));
                }
            }
        }
    }
    assert!(problems.is_empty(), "a comment after a continuation backslash breaks the command on paste:\n{}", problems.join("\n"));
}

#[test]
fn the_checks_themselves_catch_what_they_look_for() {
    assert!(comment_after_continuation("  --from-file=htpasswd=./htpasswd \\   # make it first"));
    assert!(!comment_after_continuation("  --from-file=htpasswd=./htpasswd \\"));
    let block = ["echo \"$P\" | wharfage stage r.example/a:v1 --app a \\", "    --password-stdin   # comment"].map(String::from);
    let found = invocations(7, &block);
    assert_eq!(found, vec![(7, ["wharfage", "stage", "r.example/a:v1", "--app", "a", "--password-stdin"].map(String::from).to_vec())]);
    assert!(Cli::try_parse_from(["wharfage", "gc", "--no-such-flag"]).is_err(), "a flag that does not exist is refused");
}
