//! The import-circle check: the top-level modules of a crate, as a graph of which one names
//! which (`use crate::…`, `crate::…` paths in code and in macro arguments, `super::…` that climbs
//! out of a module), must have no cycle. `cargo xtask test` runs it on `edge-agent/src` right
//! after clippy, so a circle fails the build instead of growing back unseen.
//!
//! The crate's modules are the `mod` items of its `lib.rs`; files that belong to the binary
//! (`main.rs` and its own modules) are not part of the library's graph. Sources are parsed with
//! `syn`, so comments, doc links and strings never count as imports.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use syn::visit::Visit;

/// Fails, naming every circle and the files behind each of its edges, when the top-level
/// modules of the library rooted at `crate_src/lib.rs` import each other in a cycle.
pub(crate) fn check_module_cycles(crate_src: &Path) -> Result<()> {
    let graph = module_graph(crate_src)?;
    let circles = circles(&graph);
    if circles.is_empty() {
        println!(
            "xtask: no import circle among the {} top-level modules of {}",
            graph.modules.len(),
            crate_src.display()
        );
        return Ok(());
    }
    let mut report = String::new();
    for circle in &circles {
        let _ = writeln!(
            report,
            "import circle among {} modules: {}",
            circle.len(),
            circle.iter().cloned().collect::<Vec<_>>().join(", ")
        );
        for (from, to) in graph.edges.keys() {
            if circle.contains(from) && circle.contains(to) {
                let files = &graph.edges[&(from.clone(), to.clone())];
                let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                let _ = writeln!(report, "  {from} -> {to}  ({})", files.join(", "));
            }
        }
    }
    bail!("{}:\n{report}", crate_src.display())
}

/// Which top-level module names which, with the files that do it.
#[derive(Debug, Default)]
struct Graph {
    modules: BTreeSet<String>,
    /// (from, to) -> the files of `from` that name `to`, relative to the crate's `src`.
    edges: BTreeMap<(String, String), BTreeSet<PathBuf>>,
}

fn module_graph(crate_src: &Path) -> Result<Graph> {
    let lib = crate_src.join("lib.rs");
    let root = parse(&lib)?;
    let mut graph = Graph::default();
    for item in &root.items {
        if let syn::Item::Mod(m) = item {
            graph.modules.insert(m.ident.to_string());
        }
    }
    for module in graph.modules.clone() {
        for file in module_files(crate_src, &module)? {
            let relative = file.strip_prefix(crate_src).unwrap_or(&file).to_path_buf();
            let mut path = vec![module.clone()];
            // A file below the module's directory is a submodule: `engine/alerts.rs` is
            // `engine::alerts`, `engine/mod.rs` is `engine` itself.
            if let Ok(inner) = file.strip_prefix(crate_src.join(&module)) {
                for part in inner.with_extension("").components() {
                    let part = part.as_os_str().to_string_lossy().into_owned();
                    if part != "mod" {
                        path.push(part);
                    }
                }
            }
            let mut visitor = Names {
                path,
                modules: &graph.modules,
                found: BTreeSet::new(),
            };
            visitor.visit_file(&parse(&file)?);
            for target in visitor.found {
                if target != module {
                    graph
                        .edges
                        .entry((module.clone(), target))
                        .or_default()
                        .insert(relative.clone());
                }
            }
        }
    }
    Ok(graph)
}

fn parse(file: &Path) -> Result<syn::File> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    syn::parse_file(&text).with_context(|| format!("cannot parse {}", file.display()))
}

/// The files of top-level module `module`: `module.rs` and everything under `module/`.
fn module_files(crate_src: &Path, module: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let single = crate_src.join(format!("{module}.rs"));
    if single.is_file() {
        files.push(single);
    }
    let mut dirs = vec![crate_src.join(module)];
    while let Some(dir) = dirs.pop() {
        if !dir.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Collects the top-level modules a file names.
struct Names<'a> {
    /// The module path of the code being visited, from the crate root (without `crate`).
    path: Vec<String>,
    modules: &'a BTreeSet<String>,
    found: BTreeSet<String>,
}

impl Names<'_> {
    /// Records the top-level module that a path starting with `first, second` names, if any.
    fn segments(&mut self, first: &str, rest: &[String]) {
        let target = match first {
            "crate" => rest.first().cloned(),
            "super" => {
                let supers = 1 + rest.iter().take_while(|s| *s == "super").count();
                if supers < self.path.len() {
                    // Still inside the current top-level module.
                    None
                } else {
                    rest.get(supers - 1).cloned()
                }
            }
            _ => None,
        };
        if let Some(target) = target
            && self.modules.contains(&target)
        {
            self.found.insert(target);
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.use_leaf(prefix, n.ident.to_string()),
            syn::UseTree::Rename(r) => self.use_leaf(prefix, r.ident.to_string()),
            syn::UseTree::Glob(_) => self.use_leaf(prefix, String::new()),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }

    fn use_leaf(&mut self, prefix: &[String], last: String) {
        let mut all: Vec<String> = prefix.to_vec();
        if !last.is_empty() && last != "self" {
            all.push(last);
        }
        if let Some((first, rest)) = all.split_first() {
            self.segments(first, rest);
        }
    }
}

impl<'ast> Visit<'ast> for Names<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.path.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.path.pop();
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let names: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if let Some((first, rest)) = names.split_first() {
            self.segments(first, rest);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // Macro arguments are tokens, not syntax: `crate :: name` and `super :: name` in them
        // (format arguments, tracing fields) are found by scanning the tokens.
        let mut tokens = Vec::new();
        flatten(m.tokens.clone(), &mut tokens);
        for window in tokens.windows(4) {
            if let [first, colon1, colon2, name] = window
                && colon1 == ":"
                && colon2 == ":"
                && (first == "crate" || first == "super")
            {
                self.segments(first, std::slice::from_ref(name));
            }
        }
        syn::visit::visit_macro(self, m);
    }
}

fn flatten(stream: proc_macro2::TokenStream, out: &mut Vec<String>) {
    for token in stream {
        match token {
            proc_macro2::TokenTree::Group(g) => flatten(g.stream(), out),
            other => out.push(other.to_string()),
        }
    }
}

/// The strongly connected components of more than one module (Tarjan's algorithm).
fn circles(graph: &Graph) -> Vec<BTreeSet<String>> {
    struct Tarjan<'a> {
        next: BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        counter: usize,
        found: Vec<BTreeSet<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.counter);
            self.low.insert(v, self.counter);
            self.counter += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.next.get(v).cloned().unwrap_or_default() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = BTreeSet::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.insert(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in graph.edges.keys() {
        next.entry(from.as_str()).or_default().push(to.as_str());
    }
    let mut tarjan = Tarjan {
        next,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        counter: 0,
        found: Vec::new(),
    };
    for module in &graph.modules {
        if !tarjan.index.contains_key(module.as_str()) {
            tarjan.visit(module);
        }
    }
    tarjan.found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crate in a temporary directory from (path, text) pairs.
    fn crate_of(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn error_of(files: &[(&str, &str)]) -> Option<String> {
        let dir = crate_of(files);
        check_module_cycles(dir.path())
            .err()
            .map(|e| format!("{e:#}"))
    }

    const LIB: &str = "mod a;\nmod b;\nmod c;\n";

    #[test]
    fn a_chain_of_imports_passes() {
        let files = [
            ("lib.rs", LIB),
            ("a.rs", "use crate::b::Thing;\n"),
            ("b/mod.rs", "mod inner;\nuse crate::c;\n"),
            ("b/inner.rs", "use super::super::c::X;\nuse super::Y;\n"),
            (
                "c.rs",
                "//! Names [`crate::a`] in a doc link only.\nfn f() { let _ = \"crate::a\"; }\n",
            ),
        ];
        assert_eq!(error_of(&files), None);
    }

    #[test]
    fn every_kind_of_mention_closes_a_circle() {
        // Each way of naming `a` from `c` closes the circle a -> b -> c -> a.
        for naming in [
            "use crate::a::Thing;",
            "use crate::{b, a::{self, Other}};",
            "fn f() -> crate::a::Thing { make() }",
            "fn f() { tracing::info!(x = %crate::a::name()); }",
            "mod inner { use super::super::a::Thing; }",
            "pub use crate::a as renamed;",
        ] {
            let files = [
                ("lib.rs", LIB),
                ("a.rs", "use crate::b;\n"),
                ("b.rs", "use crate::c::X;\n"),
                ("c.rs", naming),
            ];
            let error = error_of(&files).unwrap_or_else(|| panic!("no circle found: {naming}"));
            assert!(
                error.contains("import circle among 3 modules: a, b, c"),
                "{naming}: {error}"
            );
            assert!(error.contains("c -> a  (c.rs)"), "{naming}: {error}");
        }
    }

    #[test]
    fn a_submodules_super_stays_inside_its_module() {
        let files = [
            ("lib.rs", LIB),
            ("a/mod.rs", "mod x;\nuse crate::b;\n"),
            // `super` from a::x is `a`, not the crate root: no edge to b's caller.
            ("a/x.rs", "use super::b;\n"),
            ("b.rs", "mod tests { use super::*; }\n"),
            ("c.rs", ""),
        ];
        assert_eq!(error_of(&files), None);
    }

    #[test]
    fn two_separate_circles_are_both_named() {
        let files = [
            ("lib.rs", "mod a;\nmod b;\nmod c;\nmod d;\n"),
            ("a.rs", "use crate::b;"),
            ("b.rs", "use crate::a;"),
            ("c.rs", "use crate::d;"),
            ("d.rs", "use crate::c;"),
        ];
        let error = error_of(&files).unwrap();
        assert!(error.contains("among 2 modules: a, b"), "{error}");
        assert!(error.contains("among 2 modules: c, d"), "{error}");
    }

    #[test]
    fn the_binarys_files_are_not_the_librarys() {
        let files = [
            ("lib.rs", "mod a;\nmod b;\n"),
            ("a.rs", "use crate::b;"),
            ("b.rs", ""),
            ("main.rs", "mod cli;\nuse edge::a;"),
            ("cli.rs", "use crate::b; use crate::a;"),
        ];
        assert_eq!(error_of(&files), None);
    }
}
