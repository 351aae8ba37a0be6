//! The dashboard pages in a real headless Chromium (Debian's `chromium`, which
//! `cargo xtask test` installs), driven by tests/common/browser.rs; and that harness's own
//! checks, so a broken harness fails here rather than as a puzzling dashboard failure.

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;

/// A `data:` URL holding `html` (only the characters a data URL cannot carry are escaped).
fn data_url(html: &str) -> String {
    let escaped = html
        .replace('%', "%25")
        .replace('#', "%23")
        .replace('\n', "%0A");
    format!("data:text/html;charset=utf-8,{escaped}")
}

#[tokio::test]
async fn harness_clicks_a_button_and_sees_the_page_change() {
    let mut browser = Browser::start().await;
    browser
        .goto(&data_url(
            r#"<!doctype html><title>t</title>
            <p id="out">before</p>
            <button id="go" onclick="document.getElementById('out').textContent = 'after'">
              Go
            </button>"#,
        ))
        .await;
    assert_eq!(
        browser
            .eval("document.getElementById('out').textContent")
            .await,
        "before"
    );

    browser.click("#go").await;

    browser
        .wait_for("document.getElementById('out').textContent === 'after'")
        .await;
    assert_eq!(browser.errors().await, Vec::<String>::new());
}

#[tokio::test]
async fn harness_wait_gives_up_on_a_condition_that_never_holds() {
    let mut browser = Browser::start().await;
    browser
        .goto(&data_url(
            "<!doctype html><title>t</title><p id=out>never</p>",
        ))
        .await;

    let started = Instant::now();
    let error = browser
        .wait_for_within(
            "document.getElementById('out').textContent === 'changed'",
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();

    let waited = started.elapsed();
    assert!(
        (Duration::from_secs(1)..Duration::from_secs(3)).contains(&waited),
        "waited {waited:?}"
    );
    assert!(
        error.contains("document.getElementById('out').textContent === 'changed'")
            && error.contains("last value false"),
        "{error}"
    );
}

#[tokio::test]
async fn harness_presets_local_storage_and_reports_page_errors() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.html");
    std::fs::write(
        &page,
        r#"<!doctype html><title>t</title>
        <script>
          document.title = "token " + localStorage.getItem("k");
          console.error("logged on purpose");
          null.boom;
        </script>"#,
    )
    .unwrap();
    let mut browser = Browser::start().await;

    browser
        .goto_with_local_storage(&format!("file://{}", page.display()), &[("k", "v\"1")])
        .await;

    assert_eq!(browser.eval("document.title").await, "token v\"1");
    let errors = browser.errors().await;
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("logged on purpose"), "{errors:?}");
    assert!(errors[1].contains("TypeError"), "{errors:?}");
}
