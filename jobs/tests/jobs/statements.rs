//! Every SQL statement in the source, prepared against the migrated schema (issue 38): the
//! queries are built at run time (`sqlx::query`, not the compile-time `query!`, since builds
//! have no database), so a renamed column, a dropped function or a typo would otherwise fail
//! only when that statement first runs — for a rarely taken path, in production.
//!
//! The test reads the Rust source of the crates that talk to PostgreSQL (`api`, `jobs`,
//! `serving`), takes every string literal that is a whole statement (it starts with SELECT,
//! INSERT, UPDATE, DELETE or WITH), and asks PostgreSQL to parse and plan it (the extended
//! protocol's Parse and Describe, as `sqlx` does before running it). Statements completed at
//! run time (a `{placeholder}` in the text, or fragments joined by `concat!`) cannot be
//! prepared from their literal; the chart statements, the largest of those, are prepared whole
//! from `serving::GraphType`, and the rest are counted so a change in their number shows.
//! Temporary staging tables the statements read are created first, from the source's own
//! `CREATE TEMP TABLE` literals.

use std::path::{Path, PathBuf};

use sqlx::{Connection, Executor, SqlSafeStr};

use crate::support::Postgres;

/// A string literal of the source: where it starts, and its value with escapes resolved.
struct Literal {
    file: PathBuf,
    line: usize,
    text: String,
    /// Inside `macro_rules!` or `concat!`: a fragment, not a statement.
    fragment: bool,
    /// `NAME` when the literal is the value of `const NAME: &str`.
    constant: Option<String>,
}

/// The name of the `const NAME: &str =` that ends just before `at`, if any.
fn constant_before(bytes: &[char], at: usize) -> Option<String> {
    let before: String = bytes[at.saturating_sub(200)..at].iter().collect();
    let before = before.trim_end().strip_suffix('=')?.trim_end();
    let before = before.strip_suffix("&str")?.trim_end().strip_suffix(':')?;
    let name: String = before
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let rest = before[..before.len() - name.len()].trim_end();
    (!name.is_empty() && rest.ends_with("const")).then_some(name)
}

/// The string literals of one Rust file, outside comments.
fn literals(file: &Path, source: &str) -> Vec<Literal> {
    let bytes: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    // Depth of braces/parentheses at which a `macro_rules!` or `concat!` began, if inside one.
    let mut fragment_until: Option<usize> = None;
    let mut depth = 0_usize;
    let starts_with = |i: usize, word: &str| {
        word.chars()
            .enumerate()
            .all(|(k, c)| bytes.get(i + k) == Some(&c))
    };
    while i < bytes.len() {
        let c = bytes[i];
        if c == '\n' {
            line += 1;
        }
        if starts_with(i, "//") {
            while i < bytes.len() && bytes[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if starts_with(i, "/*") {
            while i < bytes.len() && !starts_with(i, "*/") {
                if bytes[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 2;
            continue;
        }
        if fragment_until.is_none() && (starts_with(i, "macro_rules!") || starts_with(i, "concat!"))
        {
            fragment_until = Some(depth);
        }
        match c {
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => {
                depth = depth.saturating_sub(1);
                if fragment_until == Some(depth) {
                    fragment_until = None;
                }
            }
            _ => {}
        }
        // A char literal ('"', '\'', 'x') or a lifetime ('a).
        if c == '\'' {
            if bytes.get(i + 1) == Some(&'\\') {
                i += 2;
                while i < bytes.len() && bytes[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if bytes.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
            continue;
        }
        let raw = c == 'r' && (bytes.get(i + 1) == Some(&'"') || bytes.get(i + 1) == Some(&'#'));
        let identifier_before = i > 0 && (bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
        if raw && !identifier_before {
            let mut hashes = 0;
            let mut j = i + 1;
            while bytes.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if bytes.get(j) == Some(&'"') {
                let closing: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let start = j + 1;
                let mut k = start;
                while k < bytes.len() && !starts_with(k, &closing) {
                    k += 1;
                }
                let text: String = bytes[start..k].iter().collect();
                out.push(Literal {
                    file: file.to_path_buf(),
                    line,
                    fragment: fragment_until.is_some(),
                    text: text.clone(),
                    constant: constant_before(&bytes, i),
                });
                line += text.matches('\n').count();
                i = k + closing.chars().count();
                continue;
            }
        }
        if c == '"' {
            let start_line = line;
            let mut text = String::new();
            let mut k = i + 1;
            while k < bytes.len() && bytes[k] != '"' {
                if bytes[k] == '\\' {
                    let next = bytes.get(k + 1).copied().unwrap_or('\\');
                    k += 2;
                    match next {
                        // A line continuation: the newline and the next line's indentation go.
                        '\n' => {
                            line += 1;
                            while k < bytes.len() && bytes[k].is_whitespace() {
                                if bytes[k] == '\n' {
                                    line += 1;
                                }
                                k += 1;
                            }
                        }
                        'n' => text.push('\n'),
                        't' => text.push('\t'),
                        'r' => text.push('\r'),
                        '0' => text.push('\0'),
                        'x' => {
                            let hex: String = bytes[k..k + 2].iter().collect();
                            text.push(char::from(u8::from_str_radix(&hex, 16).unwrap()));
                            k += 2;
                        }
                        'u' => {
                            let close = (k..bytes.len()).find(|&m| bytes[m] == '}').unwrap();
                            let hex: String = bytes[k + 1..close].iter().collect();
                            text.push(
                                char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap(),
                            );
                            k = close + 1;
                        }
                        other => text.push(other),
                    }
                } else {
                    if bytes[k] == '\n' {
                        line += 1;
                    }
                    text.push(bytes[k]);
                    k += 1;
                }
            }
            out.push(Literal {
                file: file.to_path_buf(),
                line: start_line,
                fragment: fragment_until.is_some(),
                text,
                constant: constant_before(&bytes, i),
            });
            i = k + 1;
            continue;
        }
        i += 1;
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A `format!` template with each `{NAME}` replaced by the file's `const NAME: &str` text and
/// `{{`/`}}` unescaped; `None` when a placeholder is a value only known at run time.
fn completed(text: &str, constants: &std::collections::HashMap<String, String>) -> Option<String> {
    if !text.contains('{') {
        return Some(text.to_string());
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        if let Some(after) = rest.strip_prefix("{{") {
            out.push('{');
            rest = after;
            continue;
        }
        let close = rest.find('}')?;
        out.push_str(constants.get(&rest[1..close])?);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out.replace("}}", "}"))
}

/// The statement's keyword: its first word in capitals, as the source writes SQL, followed by
/// more (so `"DELETE"`, a method name, and "Delete a NAV alert", a description, are not).
fn first_word(text: &str) -> &str {
    let text = text.trim_start();
    let word = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    let followed = text[word.len()..].trim().len() > 3;
    if followed && word.chars().all(|c| c.is_ascii_uppercase()) {
        word
    } else {
        ""
    }
}

#[test]
fn the_scanner_reads_literals_as_the_compiler_does() {
    let source = r##"
        // "SELECT commented out"
        const A: &str = "SELECT a, \
                         b FROM t WHERE c = 'x' AND d = \"e\"";
        let q = '"'; let l: &'static str = r#"WITH "quoted" AS (SELECT 1) SELECT * FROM quoted"#;
        macro_rules! part { () => { "WITH p AS (" } }
        const B: &str = concat!(part!(), "SELECT 1) SELECT * FROM p");
    "##;
    let found = literals(Path::new("x.rs"), source);
    let texts: Vec<(&str, usize, bool, Option<&str>)> = found
        .iter()
        .map(|l| (l.text.as_str(), l.line, l.fragment, l.constant.as_deref()))
        .collect();
    assert_eq!(
        texts,
        [
            (
                "SELECT a, b FROM t WHERE c = 'x' AND d = \"e\"",
                3,
                false,
                Some("A")
            ),
            (
                r#"WITH "quoted" AS (SELECT 1) SELECT * FROM quoted"#,
                5,
                false,
                None
            ),
            ("WITH p AS (", 6, true, None),
            ("SELECT 1) SELECT * FROM p", 7, true, None),
        ]
    );
    let constants = [("COLUMNS".to_string(), "a, b".to_string())].into();
    assert_eq!(
        completed("SELECT {COLUMNS}, '{{}}'::jsonb FROM t", &constants).as_deref(),
        Some("SELECT a, b, '{}'::jsonb FROM t")
    );
    assert_eq!(completed("SELECT {column} FROM t", &constants), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_statement_in_the_source_prepares_against_the_schema() {
    let pg = Postgres::start().await;
    let pool = pg.pool().await;
    serving::MIGRATOR.run(&pool).await.unwrap();

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for crate_dir in ["api/src", "jobs/src", "serving/src"] {
        rust_files(&root.join(crate_dir), &mut files);
    }
    // The demo's queries are the data team's, run by DataFusion on the warehouse.
    files.retain(|f| !f.ends_with("jobs/src/demo.rs"));
    files.sort();
    let mut statements = Vec::new();
    let mut staging = Vec::new();
    let mut completed_at_run_time = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).unwrap();
        let found = literals(file, &source);
        let constants: std::collections::HashMap<String, String> = found
            .iter()
            .filter_map(|l| Some((l.constant.clone()?, l.text.clone())))
            .collect();
        for mut literal in found {
            let word = first_word(&literal.text);
            let is_statement = ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"].contains(&word);
            let is_staging = word == "CREATE" && literal.text.contains("TEMP TABLE");
            if !(is_statement || is_staging) {
                continue;
            }
            let whole = (!literal.fragment)
                .then(|| completed(&literal.text, &constants))
                .flatten();
            let Some(whole) = whole else {
                completed_at_run_time.push(format!(
                    "{}:{}",
                    file.strip_prefix(&root).unwrap_or(file).display(),
                    literal.line
                ));
                continue;
            };
            literal.text = whole;
            if is_staging {
                staging.push(literal);
            } else {
                statements.push(literal);
            }
        }
    }
    // Whole statements the source builds from fragments.
    for graph in serving::GraphType::ALL {
        statements.push(Literal {
            file: PathBuf::from("serving::GraphType::statement"),
            line: 0,
            text: graph.statement().to_string(),
            fragment: false,
            constant: None,
        });
    }
    // A scan that found nothing would pass whatever the SQL said.
    assert!(
        statements.len() > 120,
        "only {} statements found: is the scanner reading the source?",
        statements.len()
    );

    let mut conn = pool.acquire().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    for stage in &staging {
        (&mut *tx)
            .execute(sqlx::AssertSqlSafe(stage.text.clone()))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{}:{}: {e}\n{}",
                    stage.file.display(),
                    stage.line,
                    stage.text
                )
            });
    }
    let mut failures = Vec::new();
    for statement in &statements {
        if let Err(e) = (&mut *tx)
            .prepare(sqlx::AssertSqlSafe(statement.text.clone()).into_sql_str())
            .await
        {
            failures.push(format!(
                "{}:{}: {e}\n    {}",
                statement
                    .file
                    .strip_prefix(&root)
                    .unwrap_or(&statement.file)
                    .display(),
                statement.line,
                statement.text
            ));
            // A failed Parse aborts the transaction: start another with the stages again.
            tx.rollback().await.unwrap();
            tx = conn.begin().await.unwrap();
            for stage in &staging {
                (&mut *tx)
                    .execute(sqlx::AssertSqlSafe(stage.text.clone()))
                    .await
                    .unwrap();
            }
        }
    }
    eprintln!(
        "prepared {} statements ({} staging tables first); not prepared, completed at run \
         time: {}",
        statements.len(),
        staging.len(),
        completed_at_run_time.join(", ")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
