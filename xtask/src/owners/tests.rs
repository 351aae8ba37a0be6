//! The owner check over fixture trees: what counts as naming a crate, what does not, and
//! what the error says.

use std::path::Path;

use super::*;

const FIXTURE_RULES: &[Rule] = &[
    Rule {
        krate: "agent",
        external: "rusqlite",
        owners: &["store"],
    },
    Rule {
        krate: "agent",
        external: "reqwest",
        owners: &["net::client", "status"],
    },
];

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn found(root: &Path) -> Vec<(String, usize, &'static str)> {
    violations(root, FIXTURE_RULES)
        .unwrap()
        .into_iter()
        .map(|v| (v.file.display().to_string(), v.line, v.external))
        .collect()
}

#[test]
fn owners_and_their_submodules_may_name_their_crate() {
    let root = tree(&[
        ("agent/src/lib.rs", "//! The crate.\nmod store;\nmod net;\n"),
        ("agent/src/store/mod.rs", "use rusqlite::Connection;\n"),
        (
            "agent/src/store/outbox.rs",
            "fn f() { let _ = rusqlite::params![]; }\n",
        ),
        ("agent/src/net/client.rs", "use reqwest::Client;\n"),
        (
            "agent/src/net/client/retry.rs",
            "fn f(_: reqwest::Error) {}\n",
        ),
        ("agent/src/status.rs", "use reqwest as http;\n"),
    ]);
    assert_eq!(found(root.path()), []);
    check(root.path(), FIXTURE_RULES).unwrap();
}

#[test]
fn every_way_of_naming_a_crate_outside_its_owner_is_found_with_its_line() {
    let root = tree(&[(
        "agent/src/engine/mod.rs",
        "//! The engine.\n\
         use rusqlite::Connection;\n\
         use std::{io, rusqlite as _};\n\
         fn f() -> ::rusqlite::Result<()> {\n\
         \x20   tracing::info!(\"{}\", rusqlite::version());\n\
         \x20   Ok(())\n\
         }\n\
         extern crate rusqlite;\n\
         use rusqlite;\n",
    )]);
    let lines: Vec<usize> = found(root.path()).iter().map(|f| f.1).collect();
    // Line 3 names a module of `std` spelt the same, not the crate: a path through `std`.
    assert_eq!(lines, [2, 4, 5, 8, 9]);
}

#[test]
fn comments_strings_and_our_own_modules_of_the_same_name_do_not_count() {
    let root = tree(&[(
        "agent/src/api.rs",
        "//! Unlike `rusqlite::Connection`, nothing here speaks SQL.\n\
         // rusqlite::params! would be wrong here.\n\
         /* reqwest::Client */\n\
         const FILTER: &str = \"info,rusqlite::trace=off\";\n\
         use crate::net::reqwest::Shim;\n\
         fn reqwest() {}\n\
         #[doc = \"reqwest::Url\"]\n\
         struct S { rusqlite: u8 }\n",
    )]);
    assert_eq!(found(root.path()), []);
}

#[test]
fn the_error_names_the_file_the_line_and_the_owners() {
    let root = tree(&[
        ("agent/src/lib.rs", "mod sync;\n"),
        (
            "agent/src/sync/report.rs",
            "//! The status client.\n\nuse reqwest::Client;\n",
        ),
    ]);
    let err = check(root.path(), FIXTURE_RULES).unwrap_err();
    assert!(err.to_string().contains("1 import(s) outside"), "{err:#}");
    let v = &violations(root.path(), FIXTURE_RULES).unwrap()[0];
    assert_eq!(
        v.to_string(),
        "agent/src/sync/report.rs:3: names `reqwest`, which only `net::client` and `status` \
         may import"
    );
}

#[test]
fn module_paths_follow_the_file_tree() {
    let src = Path::new("/w/agent/src");
    let path = |p: &str| module_path(src, &src.join(p));
    assert_eq!(path("lib.rs"), Vec::<String>::new());
    assert_eq!(path("store/mod.rs"), ["store"]);
    assert_eq!(path("store/outbox.rs"), ["store", "outbox"]);
    assert_eq!(path("cloud_http.rs"), ["cloud_http"]);
    assert!(owns("store", &path("store/outbox.rs")));
    assert!(!owns("store", &path("storefront.rs")));
    assert!(!owns("net::client", &path("net/mod.rs")));
}

#[test]
fn a_file_that_is_not_rust_tokens_is_an_error_naming_it() {
    let root = tree(&[("agent/src/broken.rs", "fn f() { \"unclosed }\n")]);
    let err = violations(root.path(), FIXTURE_RULES).unwrap_err();
    assert!(err.to_string().contains("broken.rs"), "{err:#}");
}
