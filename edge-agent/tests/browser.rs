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

// === The dashboard page (edge-agent/src/api/assets) ===
//
// Until the gateway serves it, the page is loaded from the source tree. There is no API behind
// a file:// URL, so these tests check what the page does on its own: it parses, boots, asks for
// the token, and reports honestly that it cannot reach the gateway.

/// The dashboard's index.html in the source tree, as a file:// URL.
fn dashboard_file() -> String {
    format!(
        "file://{}/src/api/assets/index.html",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[tokio::test]
async fn dashboard_boots_without_errors_and_asks_for_the_token() {
    let mut browser = Browser::start().await;
    browser.viewport(360, 740).await;

    browser.goto(&dashboard_file()).await;

    browser
        .wait_for("typeof window.hallwatch === 'object'")
        .await;
    assert_eq!(browser.errors().await, Vec::<String>::new());
    let page = browser
        .eval(
            r#"(() => {
                const input = document.getElementById('token');
                const label = document.querySelector('label[for="token"]');
                return {
                    signinShown: !document.getElementById('signin').hidden,
                    dashboardShown: !document.getElementById('dashboard').hidden,
                    inputType: input.type,
                    label: label && label.textContent.trim(),
                    submit: document.querySelector('#token-form button[type="submit"]').textContent,
                    connection: hallwatch.connection(),
                    alarm: hallwatch.alarmPlaying(),
                    alerts: hallwatch.alerts(),
                    live: document.querySelector('[aria-live="assertive"]') !== null,
                    overflow: document.documentElement.scrollWidth - window.innerWidth,
                };
            })()"#,
        )
        .await;
    assert_eq!(
        page,
        serde_json::json!({
            "signinShown": true, "dashboardShown": false, "inputType": "password",
            "label": "Operator token", "submit": "Sign in", "connection": "signed-out",
            "alarm": false, "alerts": [], "live": true, "overflow": 0,
        })
    );
}

#[tokio::test]
async fn dashboard_with_a_stored_token_says_it_cannot_reach_the_gateway() {
    let mut browser = Browser::start().await;

    browser
        .goto_with_local_storage(
            &dashboard_file(),
            &[("hallwatch.operatorToken", "test-token")],
        )
        .await;

    // No API behind file://: the page must not claim to be live.
    browser
        .wait_for("hallwatch.connection() === 'reconnecting'")
        .await;
    assert_eq!(
        browser
            .eval("document.getElementById('connection').textContent")
            .await,
        "Reconnecting…"
    );
    assert_eq!(
        browser
            .eval("['signin', 'dashboard'].map(id => document.getElementById(id).hidden)")
            .await,
        serde_json::json!([true, false])
    );
    browser
        .wait_for(
            "document.getElementById('problem').textContent.startsWith('Could not load alerts')",
        )
        .await;
    // Sound stays off until a gesture; the button that invites one is there and works.
    assert_eq!(browser.eval("hallwatch.soundEnabled()").await, false);
    browser.click("#enable-sound").await;
    browser.wait_for("hallwatch.soundEnabled()").await;
    browser
        .wait_for("document.getElementById('sound-off').hidden")
        .await;

    browser.click("#sign-out").await;

    browser
        .wait_for("!document.getElementById('signin').hidden")
        .await;
    assert_eq!(
        browser
            .eval("localStorage.getItem('hallwatch.operatorToken')")
            .await,
        serde_json::Value::Null
    );
    let errors = browser.errors().await;
    assert!(
        errors.iter().all(|e| e.contains("file:///api/v1/")),
        "{errors:?}"
    );
}

/// The issue's browser test: the front office's page, served by the real agent, shows a
/// simulated press; the operator clicks Acknowledge; the button's LED gets the news.
#[tokio::test]
async fn the_dashboard_shows_a_press_and_its_acknowledge_reaches_the_button() {
    use common::Gateway;
    use common::button::FwDevice;
    use firmware_protocol::{AckState, PressPattern};

    let gw = Gateway::init_local();
    let bundle = gw.add("btn-7", "button", "B-204");
    let agent = gw
        .run_agent("\n[[rooms]]\nid = \"B-204\"\nbuilding = \"B\"\nfloor = \"2\"\n")
        .await;
    let mut button = FwDevice::connect(agent.mqtt, &bundle, "btn-7", 3).await;

    let mut browser = Browser::start().await;
    browser
        .goto_with_local_storage(
            &agent.url("/"),
            &[("hallwatch.operatorToken", agent.token.as_str())],
        )
        .await;
    browser
        .wait_for("window.hallwatch.connection() === 'live'")
        .await;
    assert_eq!(
        browser
            .eval("document.querySelectorAll('li[data-alert-id]').length")
            .await,
        0
    );
    // This gateway is not enrolled: the header says it works on its own.
    browser
        .wait_for("!document.getElementById('cloud-link').hidden")
        .await;
    assert_eq!(
        browser
            .eval("document.getElementById('cloud-link').textContent")
            .await,
        "Not connected to a cloud (this gateway works on its own)"
    );

    button.press(PressPattern::LongHold, 1).await;
    let ack = button.press_ack(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ack.state, AckState::Received);

    browser
        .wait_for("document.querySelector('li[data-alert-id][data-state=\"triggered\"]') !== null")
        .await;
    let card = browser
        .eval("document.querySelector('li[data-alert-id]').textContent")
        .await;
    let card = card.as_str().unwrap();
    assert!(card.contains("B-204"), "the card names the room: {card}");
    assert!(
        card.to_lowercase().contains("lockdown"),
        "long hold = lockdown: {card}"
    );
    assert_eq!(
        browser.eval("window.hallwatch.alarmActive()").await,
        true,
        "a new alert sounds the alarm"
    );

    // The first press anywhere turns sound on, which hides the "Enable sound" banner; if that
    // moved the buttons, the press and release would land on different elements and the
    // click would be lost (it was, under load, before the banner was taken out of the flow).
    let top = "document.querySelector('li[data-alert-id] button[data-action=\"acknowledge\"]')\
               .getBoundingClientRect().top";
    let toggle =
        "(() => { const b = document.getElementById('sound-off'); b.hidden = !b.hidden; })()";
    let before = browser.eval(top).await;
    browser.eval(toggle).await;
    let after = browser.eval(top).await;
    browser.eval(toggle).await;
    assert_eq!(before, after, "the sound banner moved the alert's buttons");

    browser
        .click("li[data-alert-id] button[data-action=\"acknowledge\"]")
        .await;
    let ack = button
        .press_ack(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no PressAck after Acknowledge; agent log:\n{}", agent.log()));
    assert_eq!(
        (ack.press_boot, ack.press_seq, ack.state),
        (3, 1, AckState::Acknowledged)
    );
    browser
        .wait_for(
            "document.querySelector('li[data-alert-id][data-state=\"acknowledged\"]') !== null",
        )
        .await;
    assert_eq!(browser.eval("window.hallwatch.alarmActive()").await, false);
    assert_eq!(browser.errors().await, Vec::<String>::new());
}
