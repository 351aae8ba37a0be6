//! Owner invariants, checked rather than written down: each outside system a crate talks to
//! (SQLite, Postgres, the MQTT broker, HTTP serving, HTTP clients, certificate making) has one
//! owner module, and no other module of the crate names that system's crate. `cargo xtask
//! test` runs [`check`] right after clippy; `cargo xtask owners` runs it alone.
//!
//! What counts as naming a crate: a path through it (`sqlx::query`, `use axum::Router`,
//! `::rcgen::Certificate`, inside macro calls too) or a `use`/`extern crate` of it, anywhere in
//! a file of the crate's `src/` (its `#[cfg(test)]` modules included). Comments and string
//! literals do not count: the files are read as Rust tokens (proc-macro2), not as text.
//!
//! A module is named by its path below `src/` (`src/store/outbox.rs` is `store::outbox`, a
//! `mod.rs` is its directory's module); an owner owns itself and every module below it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use proc_macro2::{TokenStream, TokenTree};

/// One owner invariant: in `krate`, only `owners` (and their submodules) name `external`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    /// The crate's directory below the workspace root.
    pub(crate) krate: &'static str,
    /// The outside crate, as code names it (`rusqlite`, `sqlx`).
    pub(crate) external: &'static str,
    /// The module paths that may name it (`store`, `sync::client`).
    pub(crate) owners: &'static [&'static str],
}

/// The workspace's owners (see ARCHITECTURE.md and each crate root's `# Invariants`).
pub(crate) const RULES: &[Rule] = &[
    Rule {
        krate: "edge-agent",
        external: "rusqlite",
        owners: &["store"],
    },
    Rule {
        krate: "edge-agent",
        external: "rumqttd",
        owners: &["broker"],
    },
    Rule {
        krate: "edge-agent",
        external: "axum",
        owners: &["api"],
    },
    // The agent's one HTTP client: the cloud's enroll and sync endpoints, and `edge-agent
    // status` asking the running agent.
    Rule {
        krate: "edge-agent",
        external: "reqwest",
        owners: &["cloud_http"],
    },
    Rule {
        krate: "edge-agent",
        external: "rcgen",
        owners: &["pki"],
    },
    Rule {
        krate: "cloud-sync",
        external: "sqlx",
        owners: &["db"],
    },
    Rule {
        krate: "cloud-sync",
        external: "axum",
        owners: &["api"],
    },
    Rule {
        krate: "cloud-sync",
        external: "rcgen",
        owners: &["pki"],
    },
    Rule {
        krate: "service-kit",
        external: "axum",
        owners: &["observe", "sse"],
    },
];

/// One module naming a crate it does not own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// The file, relative to the workspace root.
    pub(crate) file: PathBuf,
    /// Its 1-based line.
    pub(crate) line: usize,
    /// The crate named.
    pub(crate) external: &'static str,
    /// Who may name it.
    pub(crate) owners: &'static [&'static str],
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: names `{}`, which only {} may import",
            self.file.display(),
            self.line,
            self.external,
            self.owners
                .iter()
                .map(|o| format!("`{o}`"))
                .collect::<Vec<_>>()
                .join(" and ")
        )
    }
}

/// Checks every rule of `rules` over the workspace at `root`; fails listing each violation.
pub(crate) fn check(root: &Path, rules: &[Rule]) -> Result<()> {
    let violations = violations(root, rules)?;
    if violations.is_empty() {
        eprintln!("owners: every outside crate is named only by its owner");
        return Ok(());
    }
    for v in &violations {
        eprintln!("{v}");
    }
    bail!(
        "{} import(s) outside their owner module (see xtask/src/owners.rs)",
        violations.len()
    )
}

/// Every violation of `rules` in the workspace at `root`, in file and line order.
pub(crate) fn violations(root: &Path, rules: &[Rule]) -> Result<Vec<Violation>> {
    let mut found = Vec::new();
    let mut crates: Vec<&str> = rules.iter().map(|r| r.krate).collect();
    crates.dedup();
    for krate in crates {
        let src = root.join(krate).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files)?;
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let tokens = TokenStream::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{} is not Rust tokens: {e}", file.display()))?;
            let module = module_path(&src, &file);
            let relative = file.strip_prefix(root).unwrap_or(&file).to_path_buf();
            for rule in rules.iter().filter(|r| r.krate == krate) {
                if rule.owners.iter().any(|owner| owns(owner, &module)) {
                    continue;
                }
                for line in mentions(tokens.clone(), rule.external) {
                    found.push(Violation {
                        file: relative.clone(),
                        line,
                        external: rule.external,
                        owners: rule.owners,
                    });
                }
            }
        }
    }
    found.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(found)
}

/// Whether the module `owner` (`a::b`) is `module` or one of its ancestors.
fn owns(owner: &str, module: &[String]) -> bool {
    let owner: Vec<&str> = owner.split("::").collect();
    owner.len() <= module.len() && owner.iter().zip(module).all(|(o, m)| o == m)
}

/// The module path of `file` below `src`: `store/outbox.rs` → `[store, outbox]`,
/// `store/mod.rs` → `[store]`, `lib.rs` → `[]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.strip_suffix(".rs").unwrap_or(&last).to_owned();
        if !matches!(stem.as_str(), "mod" | "lib") {
            parts.push(stem);
        }
    }
    parts
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The lines where `tokens` name the crate `external`: `external::…` (with or without a
/// leading `::`), or `use external` / `extern crate external` (a rename, a glob).
fn mentions(tokens: TokenStream, external: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    walk(tokens, external, &mut lines);
    lines.sort_unstable();
    lines.dedup();
    lines
}

fn walk(tokens: TokenStream, external: &str, lines: &mut Vec<usize>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Group(group) => walk(group.stream(), external, lines),
            TokenTree::Ident(ident) if ident == external => {
                let path_follows = match (tokens.get(i + 1), tokens.get(i + 2)) {
                    (Some(a), Some(b)) => colons(a, b),
                    _ => false,
                };
                let path_before = i >= 2 && colons(&tokens[i - 2], &tokens[i - 1]);
                let imported = i >= 1
                    && matches!(&tokens[i - 1], TokenTree::Ident(k) if k == "use" || k == "crate");
                // `crate::x::sqlx::…` would be our own module of that name, not the crate.
                if (path_follows && !path_before) || imported || leading_colons(&tokens, i) {
                    lines.push(ident.span().start().line);
                }
            }
            _ => {}
        }
    }
}

/// `::external` at the start of a path (`use ::sqlx;`, `::sqlx::query`).
fn leading_colons(tokens: &[TokenTree], i: usize) -> bool {
    if i < 2 {
        return false;
    }
    let before_is_path = i >= 3 && matches!(&tokens[i - 3], TokenTree::Ident(k) if k != "use");
    colons(&tokens[i - 2], &tokens[i - 1]) && !before_is_path
}

/// Whether `a b` is the path separator `::`.
fn colons(a: &TokenTree, b: &TokenTree) -> bool {
    matches!((a, b), (TokenTree::Punct(a), TokenTree::Punct(b)) if a.as_char() == ':' && b.as_char() == ':')
}

#[cfg(test)]
mod tests;
