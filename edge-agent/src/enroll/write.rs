//! Storing a checked enrollment: every file is staged complete and synced next to its place
//! first, then renamed into place, `agent.toml` last, so the `[cloud]` section appears only
//! once the files it refers to are there. `agent.toml` keeps the installer's text; only its
//! `[cloud]` section is replaced or appended.

use std::path::{Path, PathBuf};

use super::{CLOUD_CA_FILE, EnrollError, GATEWAY_CERT_FILE, GATEWAY_KEY_FILE, io};
use crate::config::{CONFIG_FILE, CloudSettings, Config};
use crate::files;

/// What is written.
pub(super) struct Enrollment {
    pub(super) key_pem: String,
    pub(super) cert_pem: String,
    pub(super) ca_pem: String,
    pub(super) cloud: CloudSettings,
}

/// Writes the enrollment into `dir`; the files written, in order.
pub(super) fn write_enrollment(
    dir: &Path,
    enrollment: &Enrollment,
) -> Result<Vec<PathBuf>, EnrollError> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(io(&config_path))?;
    let text = with_cloud_section(&text, &enrollment.cloud)?;

    let files = [
        (GATEWAY_KEY_FILE, enrollment.key_pem.as_str(), 0o600),
        (GATEWAY_CERT_FILE, enrollment.cert_pem.as_str(), 0o666),
        (CLOUD_CA_FILE, enrollment.ca_pem.as_str(), 0o666),
        (CONFIG_FILE, text.as_str(), 0o666),
    ];
    let mut staged = Vec::with_capacity(files.len());
    for (name, content, mode) in files {
        let path = dir.join(name);
        staged.push(files::stage(&path, content.as_bytes(), mode).map_err(io(&path))?);
    }
    let mut written = Vec::with_capacity(staged.len());
    for file in staged {
        let path = file.path().to_owned();
        file.commit().map_err(io(&path))?;
        written.push(path);
    }
    files::sync_parent(&config_path).map_err(io(dir))?;
    Ok(written)
}

/// `text` (an `agent.toml`) with its `[cloud]` section, if any, replaced by `cloud`'s. The
/// result is parsed before it is returned: it must be a valid configuration whose `[cloud]`
/// is exactly `cloud`, or nothing is written.
fn with_cloud_section(text: &str, cloud: &CloudSettings) -> Result<String, EnrollError> {
    let mut kept = String::with_capacity(text.len() + 512);
    let mut in_cloud = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_cloud = is_cloud_header(trimmed);
        }
        if !in_cloud {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    let mut out = kept.trim_end().to_owned();
    out.push_str("\n\n");
    out.push_str(&cloud.to_toml());

    let unusable = |reason: String| EnrollError::BadAnswer {
        reason: format!("agent.toml with the new [cloud] section would not load: {reason}"),
    };
    let parsed = Config::parse(&out).map_err(|e| unusable(e.to_string()))?;
    if parsed.cloud.as_ref() != Some(cloud) {
        return Err(unusable(
            "its [cloud] section is not the one written (edit agent.toml by hand)".into(),
        ));
    }
    Ok(out)
}

/// `[cloud]`, possibly with spaces inside the brackets and a comment after it.
fn is_cloud_header(line: &str) -> bool {
    line.strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .is_some_and(|(name, after)| {
            name.trim() == "cloud" && !after.starts_with(']') && {
                let after = after.trim();
                after.is_empty() || after.starts_with('#')
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "# the installer's note\n[school]\nid = \"lincoln-high\"\nname = \"Lincoln\"\n\n[http]\nlisten = \"0.0.0.0:8080\"\n";

    fn cloud(gateway: &str) -> CloudSettings {
        CloudSettings {
            url: "https://cloud.example.org".parse().unwrap(),
            sync_url: "https://sync.example.org:8443".parse().unwrap(),
            gateway_id: gateway.parse().unwrap(),
        }
    }

    #[test]
    fn the_section_is_appended_and_then_replaced_keeping_the_rest() {
        let first = with_cloud_section(BASE, &cloud("gw-1")).unwrap();
        assert!(first.starts_with(BASE.trim_end()), "{first}");
        assert_eq!(Config::parse(&first).unwrap().cloud, Some(cloud("gw-1")));

        // A section after [cloud] survives the replacement.
        let edited = format!("{first}\n[[rooms]]\nid = \"A-1\"\n");
        let second = with_cloud_section(&edited, &cloud("gw-2")).unwrap();
        assert_eq!(second.matches("[cloud]").count(), 1, "{second}");
        let config = Config::parse(&second).unwrap();
        assert_eq!(config.cloud, Some(cloud("gw-2")));
        assert_eq!(config.rooms.len(), 1);
        assert!(second.starts_with(BASE.trim_end()));
    }

    #[test]
    fn headers_are_recognised_as_toml_writes_them() {
        assert!(is_cloud_header("[cloud]"));
        assert!(is_cloud_header("[ cloud ]  # written by enroll"));
        assert!(!is_cloud_header("[[cloud]]"));
        assert!(!is_cloud_header("[cloud.extra]"));
        assert!(!is_cloud_header("[clouds]"));
    }

    #[test]
    fn a_section_it_cannot_replace_refuses_instead_of_writing() {
        // An inline table it does not strip: the result would define `cloud` twice.
        let odd = format!(
            "cloud = {{ url = \"https://x.example.org\", sync_url = \"https://x.example.org\", \
             gateway_id = \"gw-0\" }}\n{BASE}"
        );
        assert!(Config::parse(&odd).unwrap().cloud.is_some());
        assert!(with_cloud_section(&odd, &cloud("gw-1")).is_err());
    }
}
