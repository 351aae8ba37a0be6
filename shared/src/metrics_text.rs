//! The two text formats a `/metrics` endpoint answers in, and the choice between them.
//!
//! Both services render their registry (prometheus-client) as OpenMetrics 1.0, which is what
//! a Prometheus server asks for. A client that asks for Prometheus' older text format
//! (`Accept: text/plain`, as `promtool check metrics` and other tools of that format expect)
//! gets the same samples in it: in OpenMetrics a counter family `x` has the sample `x_total`,
//! while the text format names the family `x_total` itself, so read by a text-format parser
//! the OpenMetrics rendition has counters without HELP or TYPE.

/// The media type of [`to_text_format`]'s output.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The media type of the OpenMetrics text both services render.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A rendered OpenMetrics text as a scraper with this `Accept` header asked for it: the
/// media type and the body.
pub fn negotiate(openmetrics: String, accept: Option<&str>) -> (&'static str, String) {
    if prefers_text_format(accept) {
        (TEXT_CONTENT_TYPE, to_text_format(&openmetrics))
    } else {
        (OPENMETRICS_CONTENT_TYPE, openmetrics)
    }
}

/// Whether a request with this `Accept` header is answered in the text format: when it
/// names `text/plain` with a higher quality than any OpenMetrics type. Anything else —
/// no header, `*/*`, OpenMetrics preferred — gets OpenMetrics.
pub fn prefers_text_format(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let mut text = None::<f32>;
    let mut openmetrics = None::<f32>;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let slot = match media.as_str() {
            "text/plain" => &mut text,
            "application/openmetrics-text" => &mut openmetrics,
            _ => continue,
        };
        *slot = Some(slot.map_or(quality, |q| q.max(quality)));
    }
    match (text, openmetrics) {
        (Some(text), Some(openmetrics)) => text > 0.0 && text > openmetrics,
        (Some(text), None) => text > 0.0,
        (None, _) => false,
    }
}

/// The samples of an OpenMetrics text in Prometheus' text format (0.0.4): counter families
/// take their samples' `_total` name, `unknown` becomes `untyped`, and the lines that format
/// has not (`# UNIT`, `# EOF`) are dropped. Exemplars and timestamps, which the services do
/// not write, are not translated.
pub fn to_text_format(openmetrics: &str) -> String {
    // A family's HELP comes before its TYPE, and only the TYPE tells whether the name takes
    // `_total`: each HELP waits for the line after it.
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush_help(&mut out, help.take(), None);
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "unknown" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            flush_help(&mut out, help.take(), Some(&name));
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        } else {
            flush_help(&mut out, help.take(), None);
            out.push_str(line);
            out.push('\n');
        }
    }
    flush_help(&mut out, help, None);
    out
}

/// Writes a pending HELP line, under `renamed` when its TYPE renamed the family.
fn flush_help(out: &mut String, help: Option<(&str, &str)>, renamed: Option<&str>) {
    if let Some((name, text)) = help {
        let name = match renamed {
            Some(renamed) if renamed.starts_with(name) => renamed,
            _ => name,
        };
        out.push_str(&format!("# HELP {name} {text}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_chosen_only_when_preferred_to_openmetrics() {
        for (accept, text) in [
            (None, false),
            (Some("*/*"), false),
            (Some("text/plain"), true),
            (Some("text/plain; version=0.0.4"), true),
            (Some("text/plain;q=0"), false),
            (Some("application/openmetrics-text; version=1.0.0"), false),
            // What a Prometheus server sends.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                     version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                false,
            ),
            (
                Some("application/openmetrics-text;q=0.2, text/plain;q=0.9"),
                true,
            ),
            (Some("TEXT/PLAIN"), true),
        ] {
            assert_eq!(prefers_text_format(accept), text, "{accept:?}");
        }
    }

    #[test]
    fn counters_take_their_total_name_and_openmetrics_only_lines_go() {
        let openmetrics = "\
# HELP app_requests Requests, by kind.
# TYPE app_requests counter
app_requests_total{kind=\"a\"} 1
# HELP app_latency_seconds Time taken.
# TYPE app_latency_seconds histogram
# UNIT app_latency_seconds seconds
app_latency_seconds_sum 0.5
app_latency_seconds_count 1
app_latency_seconds_bucket{le=\"+Inf\"} 1
# HELP app_open Open now.
# TYPE app_open gauge
app_open 3
# HELP app_mystery Unknown.
# TYPE app_mystery unknown
app_mystery 1
# EOF
";
        let text = "\
# HELP app_requests_total Requests, by kind.
# TYPE app_requests_total counter
app_requests_total{kind=\"a\"} 1
# HELP app_latency_seconds Time taken.
# TYPE app_latency_seconds histogram
app_latency_seconds_sum 0.5
app_latency_seconds_count 1
app_latency_seconds_bucket{le=\"+Inf\"} 1
# HELP app_open Open now.
# TYPE app_open gauge
app_open 3
# HELP app_mystery Unknown.
# TYPE app_mystery untyped
app_mystery 1
";
        assert_eq!(to_text_format(openmetrics), text);
    }
}
