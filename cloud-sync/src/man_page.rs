//! The man page of `cloud-sync`, rendered from its clap definitions by clap_mangen and kept in
//! `packaging/cloud/cloud-sync.1`, which `cargo xtask package` installs (compressed) as
//! `/usr/share/man/man1/cloud-sync.1.gz`. This test fails when the file is not what the
//! definitions render; `HALLWATCH_UPDATE_MAN_PAGES=1` makes it write the file instead.

use clap::CommandFactory;

#[test]
fn the_packaged_man_page_is_what_the_command_line_renders() {
    let mut rendered = Vec::new();
    clap_mangen::Man::new(<crate::Cli>::command())
        .render(&mut rendered)
        .expect("render the man page");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/cloud/cloud-sync.1"
    );
    if std::env::var_os("HALLWATCH_UPDATE_MAN_PAGES").is_some() {
        std::fs::write(path, &rendered).expect("write the man page");
    }
    let kept = std::fs::read(path).unwrap_or_default();
    assert!(
        kept == rendered,
        "{path} is not what the command line renders: rerun this test with \
         HALLWATCH_UPDATE_MAN_PAGES=1 and commit the file"
    );
}
