//! Where and how both services log: to stderr, readable lines at a terminal, one JSON object
//! per line otherwise (under systemd, into the journal, for machines to read), with the fields
//! of the span the event happened in — a request's or connection's `id` — so one request's
//! lines can be followed.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the process's subscriber with `filter`. Call once, first thing in `main`.
pub fn init(filter: EnvFilter) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    }
}
