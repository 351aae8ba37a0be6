//! The cloud dashboard (served by `cloud-sync` at `/`) in a real headless Chromium, against a
//! real cloud on a fresh Postgres database, a real enrolled gateway and a simulated button:
//! a region admin sees a press appear without reloading, acknowledges it from the banner, sees
//! "requested" until the gateway applies it (the button hears it), then sees it acknowledged;
//! a viewer of the school sees the alert and no button to act on it. Live redraws keep the
//! school page's filters, keyboard focus and a note being typed; a page whose data comes late
//! does not replace the page the person moved to. And two-factor sign-in:
//! a person sets it up on the Two-factor page with a code computed here from the key the page
//! shows, and from then on the sign-in form asks for a code.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::button::FwDevice;
use common::cloud::TestCloud;
use firmware_protocol::{AckState, PressPattern};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const SCHOOL: &str = common::SCHOOL;
/// A behavioural bound for anything crossing gateway, cloud and browser (a sync each second
/// when idle; the machines are small and busy).
const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse battery staple";

/// Fills in the sign-in form and submits it with a real click.
async fn sign_in(browser: &mut Browser, email: &str) {
    browser
        .wait_for("!document.getElementById('login').hidden")
        .await;
    browser
        .eval(&format!(
            "document.getElementById('email').value = {}; \
             document.getElementById('password').value = {};",
            json!(email),
            json!(PASSWORD)
        ))
        .await;
    browser.click("#login-submit").await;
}

/// Waits up to [`WAIT`] for `expr`, panicking with the page's errors and the cloud's log.
async fn wait(browser: &mut Browser, cloud: &TestCloud, expr: &str) -> serde_json::Value {
    match browser.wait_for_within(expr, WAIT).await {
        Ok(value) => value,
        Err(e) => panic!(
            "{e}\npage errors: {:?}\ncloud log:\n{}",
            browser.errors().await,
            cloud.log()
        ),
    }
}

const FIRST_ALERT: &str = "document.querySelector('#banner-list li.banner-alert')";

#[sqlx::test(migrations = false)]
async fn a_region_admin_sees_a_press_live_acknowledges_it_and_the_gateway_confirms(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let gw = cloud.enrolled_gateway(SCHOOL);
    let bundle = gw.add("btn-1", "button", "B-214");
    let agent = gw.run_agent("").await;
    let mut button = FwDevice::connect(agent.mqtt, &bundle, "btn-1", 1).await;
    button.heartbeat(3_900).await;
    let region_admin = cloud.create_user(
        "rae@north.example.org",
        PASSWORD,
        "region_admin",
        &["--region", "north"],
    );
    cloud.create_user(
        "val@lincoln.example.org",
        PASSWORD,
        "viewer",
        &["--school", SCHOOL],
    );
    // The gateway has synced: its school's tile will say it is online.
    let synced: Vec<(String,)> = cloud
        .wait_for(
            "SELECT gateway_id FROM gateways WHERE last_sync_at IS NOT NULL",
            WAIT,
            |rows: &[(String,)]| !rows.is_empty(),
        )
        .await;
    assert_eq!(synced.len(), 1, "{}", agent.log());

    let mut browser = Browser::start().await;
    browser.goto(&format!("{}/", cloud.url())).await;
    sign_in(&mut browser, "rae@north.example.org").await;

    // The overview: the school's tile, online, no alert; the stream is live.
    let tile = format!("document.querySelector('.tile[data-school-id=\"{SCHOOL}\"]')");
    wait(
        &mut browser,
        &cloud,
        &format!("{tile} && hallwatch.connection() === 'live'"),
    )
    .await;
    let shown = browser
        .eval(&format!(
            "(() => {{ const t = {tile}; return {{ \
                name: t.querySelector('h2').textContent, \
                text: t.textContent, \
                banner: document.getElementById('banner').hidden, \
                audit: !document.getElementById('nav-audit').hidden }}; }})()"
        ))
        .await;
    assert_eq!(shown["name"], SCHOOL, "{shown}");
    assert!(
        shown["text"].as_str().unwrap().contains("Gatewayonline"),
        "{shown}"
    );
    assert_eq!(shown["banner"], true, "no alert yet: {shown}");
    assert_eq!(
        shown["audit"], true,
        "a region admin sees the audit page: {shown}"
    );
    // Set now and read at the end: a reload would lose it.
    browser.eval("window.sameDocument = true").await;

    // A press: the banner shows it without a reload, and the tile counts it.
    button.press(PressPattern::Single, 1).await;
    assert_eq!(
        button.press_ack(WAIT).await.unwrap().state,
        AckState::Received
    );
    wait(
        &mut browser,
        &cloud,
        &format!("{FIRST_ALERT} && {FIRST_ALERT}.dataset.state === 'triggered'"),
    )
    .await;
    let alert = browser
        .eval(&format!(
            "(() => {{ const li = {FIRST_ALERT}; return {{ \
                text: li.textContent, \
                live: li.closest('[aria-live]') !== null, \
                beeps: hallwatch.beeps(), \
                ack: li.querySelector('button[data-action=acknowledge]')?.textContent }}; }})()"
        ))
        .await;
    let text = alert["text"].as_str().unwrap();
    assert!(
        text.contains("PANIC") && text.contains(SCHOOL) && text.contains("Room B-214"),
        "{alert}"
    );
    assert_eq!(alert["live"], true, "{alert}");
    assert_eq!(alert["ack"], "Acknowledge", "{alert}");
    assert!(alert["beeps"].as_u64().unwrap() >= 1, "{alert}");
    wait(
        &mut browser,
        &cloud,
        &format!(
            "{tile}.classList.contains('alarm') && {tile}.textContent.includes('Open alerts1')"
        ),
    )
    .await;

    // Acknowledge from the banner: "requested" until the school confirms. The gateway may
    // confirm within a sync, faster than a poll, so an observer records what the banner showed.
    browser
        .eval(
            "window.sawRequested = false; \
             new MutationObserver(() => { \
               const li = document.querySelector('#banner-list li.banner-alert'); \
               if (li && li.dataset.requested === 'acknowledge' \
                   && li.textContent.includes('acknowledge requested')) window.sawRequested = true; \
             }).observe(document.getElementById('banner-list'), \
               { subtree: true, childList: true, attributes: true, characterData: true });",
        )
        .await;
    browser
        .click("#banner-list button[data-action=acknowledge]")
        .await;
    wait(&mut browser, &cloud, "window.sawRequested").await;

    // The gateway applies it: the button's LED hears it...
    let ack = button
        .press_ack(WAIT)
        .await
        .expect("the acknowledge reached the button");
    assert_eq!(ack.state, AckState::Acknowledged);
    // ...and the banner shows the school's confirmation: acknowledged, nothing requested, and
    // only Resolve left to do.
    wait(
        &mut browser,
        &cloud,
        &format!(
            "{FIRST_ALERT}.dataset.state === 'acknowledged' && {FIRST_ALERT}.dataset.requested === ''"
        ),
    )
    .await;
    let after = browser
        .eval(&format!(
            "(() => {{ const li = {FIRST_ALERT}; return {{ \
                ack: li.querySelector('button[data-action=acknowledge]') !== null, \
                resolve: li.querySelector('button[data-action=resolve]')?.disabled, \
                same: window.sameDocument === true }}; }})()"
        ))
        .await;
    assert_eq!(
        after,
        json!({ "ack": false, "resolve": false, "same": true }),
        "{after}"
    );
    let commands: Vec<(String, Option<String>, String)> = cloud
        .rows("SELECT kind, outcome, requested_by FROM gateway_commands")
        .await;
    assert_eq!(
        commands,
        [(
            "acknowledge".to_owned(),
            Some("applied".to_owned()),
            format!("user:{region_admin}")
        )]
    );
    assert_eq!(browser.errors().await, Vec::<String>::new());

    // A viewer of the school, on a phone: the alert, and nothing to act with.
    browser.click("#sign-out").await;
    browser.viewport(360, 740).await;
    sign_in(&mut browser, "val@lincoln.example.org").await;
    wait(
        &mut browser,
        &cloud,
        &format!("{FIRST_ALERT} && hallwatch.connection() === 'live'"),
    )
    .await;
    let viewer = browser
        .eval(&format!(
            "(() => {{ const li = {FIRST_ALERT}; return {{ \
                state: li.dataset.state, \
                buttons: document.querySelectorAll('#banner-list button').length, \
                audit: !document.getElementById('nav-audit').hidden, \
                tile: {tile} !== null, \
                overflow: document.documentElement.scrollWidth - window.innerWidth }}; }})()"
        ))
        .await;
    assert_eq!(
        viewer,
        json!({ "state": "acknowledged", "buttons": 0, "audit": false, "tile": true, "overflow": 0 }),
        "{viewer}"
    );
    assert_eq!(browser.errors().await, Vec::<String>::new());
    drop(browser);
    cloud.stop().await;
}

/// Waits until the element `selector` named has been drawn anew (the old one was marked).
fn redrawn(selector: &str) -> String {
    format!(
        "(document.querySelector({0}) && !document.querySelector({0}).hallwatchOld)",
        json!(selector)
    )
}

/// Marks the element `selector` names, so [`redrawn`] can tell its replacement.
fn mark(selector: &str) -> String {
    format!(
        "document.querySelector({}).hallwatchOld = true",
        json!(selector)
    )
}

#[sqlx::test(migrations = false)]
async fn live_redraws_keep_filters_focus_and_unsent_notes(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let gw = cloud.enrolled_gateway(SCHOOL);
    let first = gw.add("btn-1", "button", "B-214");
    let second = gw.add("btn-2", "button", "B-215");
    let agent = gw.run_agent("").await;
    let mut one = FwDevice::connect(agent.mqtt, &first, "btn-1", 1).await;
    let mut two = FwDevice::connect(agent.mqtt, &second, "btn-2", 1).await;
    cloud.create_user(
        "rae@north.example.org",
        PASSWORD,
        "region_admin",
        &["--region", "north"],
    );
    let mut browser = Browser::start().await;
    browser.goto(&format!("{}/", cloud.url())).await;
    sign_in(&mut browser, "rae@north.example.org").await;
    wait(&mut browser, &cloud, "hallwatch.connection() === 'live'").await;

    one.press(PressPattern::Single, 1).await;
    assert!(one.press_ack(WAIT).await.is_some(), "{}", agent.log());
    wait(&mut browser, &cloud, FIRST_ALERT).await;
    let alert = browser
        .eval("hallwatch.openAlerts()[0].alert_id")
        .await
        .as_str()
        .unwrap()
        .to_owned();

    // On the alert's page, a note half typed and the cursor in it; the button is pressed
    // again, the page shows the second press, and the note and the focus are still there.
    browser
        .eval(&format!("location.hash = '#/alert/{alert}'"))
        .await;
    wait(&mut browser, &cloud, "document.getElementById('note-body')").await;
    browser
        .eval(
            "const note = document.getElementById('note-body'); \
             note.focus(); note.value = 'Principal on the way'; note.setSelectionRange(9, 9);",
        )
        .await;
    browser.eval(&mark("#view h1")).await;
    one.press(PressPattern::Single, 2).await;
    wait(
        &mut browser,
        &cloud,
        &format!(
            "{} && document.getElementById('view').textContent.includes('Presses2')",
            redrawn("#view h1")
        ),
    )
    .await;
    let note = browser
        .eval(
            "(() => { const n = document.getElementById('note-body'); return { \
                value: n.value, focused: document.activeElement === n, at: n.selectionStart }; })()",
        )
        .await;
    assert_eq!(
        note,
        json!({ "value": "Principal on the way", "focused": true, "at": 9 }),
        "{note}"
    );

    // Acknowledged from the page: the request names who asked by address, not by an id.
    browser.click("#view button[data-action=acknowledge]").await;
    wait(
        &mut browser,
        &cloud,
        "document.getElementById('view').textContent.includes('acknowledge by rae@north.example.org')",
    )
    .await;

    // The school's page filtered to triggered alerts: a new alert redraws it, the filter holds
    // and only triggered alerts are listed.
    browser
        .eval(&format!(
            "location.hash = '#/school/{SCHOOL}?state=triggered'"
        ))
        .await;
    wait(
        &mut browser,
        &cloud,
        "document.querySelector('#view select[name=state]')?.value === 'triggered'",
    )
    .await;
    browser.eval(&mark("#view h1")).await;
    two.press(PressPattern::Single, 1).await;
    let rows = wait(
        &mut browser,
        &cloud,
        &format!(
            "{} && [...document.querySelectorAll('#view tr[data-alert-id] .pill')].map((p) => p.textContent)",
            redrawn("#view h1")
        ),
    )
    .await;
    assert!(
        rows.as_array().unwrap().iter().all(|s| s == "triggered"),
        "{rows}"
    );
    let filter = browser
        .eval("document.querySelector('#view select[name=state]').value")
        .await;
    assert_eq!(filter, "triggered");
    // Changing the other filter keeps the first, in the address (so reload and back keep it).
    browser
        .eval(
            "const kind = document.querySelector('#view select[name=kind]'); \
             kind.value = 'panic'; kind.dispatchEvent(new Event('change'));",
        )
        .await;
    wait(
        &mut browser,
        &cloud,
        "location.hash.includes('state=triggered') && location.hash.includes('kind=panic') \
         && document.querySelector('#view select[name=kind]')?.value === 'panic'",
    )
    .await;

    // Keyboard focus on a banner button survives the banner being drawn anew.
    let second_alert = wait(
        &mut browser,
        &cloud,
        &format!("hallwatch.openAlerts().find((a) => a.alert_id !== '{alert}')?.alert_id"),
    )
    .await;
    let button = format!(
        "#banner-list button[data-action=resolve][data-alert-id=\"{}\"]",
        second_alert.as_str().unwrap()
    );
    browser
        .eval(&format!(
            "document.querySelector({}).focus()",
            json!(button)
        ))
        .await;
    browser.eval(&mark(&button)).await;
    two.press(PressPattern::Single, 2).await;
    wait(&mut browser, &cloud, &redrawn(&button)).await;
    let focused = browser
        .eval(&format!(
            "document.activeElement === document.querySelector({})",
            json!(button)
        ))
        .await;
    assert_eq!(focused, true);
    assert_eq!(browser.errors().await, Vec::<String>::new());
    drop(browser);
    cloud.stop().await;
}

/// The RFC 6238 code (SHA-1, 6 digits) of `secret` (base32, as the page shows it) for time
/// step `step`: what an authenticator app computes.
fn totp(secret: &str, step: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut key = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in secret.bytes().filter(|c| *c != b' ') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base32") as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            key.push((acc >> bits) as u8);
        }
    }
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &key),
        &step.to_be_bytes(),
    );
    let mac = mac.as_ref();
    let at = usize::from(mac[19] & 0x0f);
    let word = u32::from_be_bytes([mac[at] & 0x7f, mac[at + 1], mac[at + 2], mac[at + 3]]);
    format!("{:06}", word % 1_000_000)
}

fn step_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
        / 30
}

/// A cloud with one superadmin, Ann, signed in on the dashboard and shown its first page.
async fn ann_signed_in(opts: &PgConnectOptions) -> (TestCloud, Browser) {
    let cloud = TestCloud::start(opts).await;
    cloud.create_user("ann@example.org", PASSWORD, "superadmin", &[]);
    let mut browser = Browser::start().await;
    browser.goto(&format!("{}/", cloud.url())).await;
    sign_in(&mut browser, "ann@example.org").await;
    wait(
        &mut browser,
        &cloud,
        "!document.getElementById('view').hidden && !document.getElementById('nav').hidden",
    )
    .await;
    (cloud, browser)
}

/// Opens the Two-factor page and starts the setup: the page then shows the key.
async fn start_two_factor_setup(browser: &mut Browser, cloud: &TestCloud) {
    browser.click("#nav-account").await;
    wait(browser, cloud, "document.getElementById('totp-start')").await;
    browser.click("#totp-start").await;
    wait(browser, cloud, "document.getElementById('totp-secret')").await;
}

#[sqlx::test(migrations = false)]
async fn a_person_sets_up_two_factor_sign_in_and_then_signs_in_with_a_code(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let (cloud, mut browser) = ann_signed_in(&opts).await;

    // The Two-factor page: off; set it up; the key in groups and the otpauth link as text.
    start_two_factor_setup(&mut browser, &cloud).await;
    let shown = browser
        .eval(
            "({ secret: document.getElementById('totp-secret').dataset.secret, \
                grouped: document.getElementById('totp-secret').textContent, \
                uri: document.getElementById('totp-uri').textContent, \
                focused: document.activeElement.id })",
        )
        .await;
    let secret = shown["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32, "{shown}");
    assert_eq!(
        shown["grouped"].as_str().unwrap().split(' ').count(),
        8,
        "{shown}"
    );
    assert!(
        shown["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Hallwatch:ann%40example.org?secret="),
        "{shown}"
    );
    assert_eq!(shown["focused"], "totp-confirm-code", "{shown}");

    // The app's code turns it on.
    let confirmed_at = step_now();
    browser
        .eval(&format!(
            "document.getElementById('totp-confirm-code').value = {}",
            json!(totp(&secret, confirmed_at))
        ))
        .await;
    browser.click("#totp-confirm button[type=submit]").await;
    wait(
        &mut browser,
        &cloud,
        "document.getElementById('totp-status')?.textContent.startsWith('On:') \
         && document.getElementById('totp-disable') !== null",
    )
    .await;

    // Signing in again: the password alone brings up the code field, ready for the keypad.
    browser.click("#sign-out").await;
    sign_in(&mut browser, "ann@example.org").await;
    wait(
        &mut browser,
        &cloud,
        "!document.getElementById('totp-field').hidden",
    )
    .await;
    let field = browser
        .eval(
            "(() => { const c = document.getElementById('totp-code'); return { \
                inputmode: c.inputMode, autocomplete: c.autocomplete, \
                focused: document.activeElement === c, \
                message: document.getElementById('login-error').textContent }; })()",
        )
        .await;
    assert_eq!(field["inputmode"], "numeric", "{field}");
    assert_eq!(field["autocomplete"], "one-time-code", "{field}");
    assert_eq!(field["focused"], true, "{field}");
    assert!(
        field["message"].as_str().unwrap().contains("6-digit code"),
        "{field}"
    );

    // A wrong code is said to be wrong; the next code signs in (a later step than the one
    // that confirmed: a code is good once).
    browser
        .eval("document.getElementById('totp-code').value = '000000'")
        .await;
    browser.click("#login-submit").await;
    wait(
        &mut browser,
        &cloud,
        "document.getElementById('login-error').textContent.includes('wrong or was used')",
    )
    .await;
    browser
        .eval(&format!(
            "document.getElementById('totp-code').value = {}",
            json!(totp(&secret, confirmed_at + 1))
        ))
        .await;
    browser.click("#login-submit").await;
    wait(
        &mut browser,
        &cloud,
        "document.getElementById('login').hidden && !document.getElementById('view').hidden \
         && document.getElementById('totp-field').hidden",
    )
    .await;

    let logins: Vec<(String,)> = cloud
        .rows("SELECT outcome FROM audit_log WHERE action = 'login' ORDER BY audit_id")
        .await;
    let logins: Vec<&str> = logins.iter().map(|(o,)| o.as_str()).collect();
    assert_eq!(logins, ["ok", "totp_required", "wrong_totp", "ok"]);
    // The refused sign-ins are the only errors: the browser logs each 401 it was answered.
    let errors: Vec<String> = browser
        .errors()
        .await
        .into_iter()
        .filter(|e| !e.contains("status of 401"))
        .collect();
    assert_eq!(errors, Vec::<String>::new());
    drop(browser);
    cloud.stop().await;
}

/// Draws of the page overlap (a page waits for its data while the person goes elsewhere); a
/// draw that finishes after a later one started must not replace the newer page. Here the
/// audit page's data is held back in the page's own `fetch` until the person has moved on to
/// the Two-factor page and started its setup; when the audit data arrives, the setup stays.
#[sqlx::test(migrations = false)]
async fn a_page_whose_data_comes_late_does_not_replace_the_page_moved_to(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let (cloud, mut browser) = ann_signed_in(&opts).await;
    // Requests for the audit log wait until the test lets them go.
    browser
        .eval(
            "window.heldAudit = []; const realFetch = window.fetch; \
             window.fetch = (url, init) => String(url).includes('/api/v1/audit') \
               ? new Promise((go) => window.heldAudit.push(() => go(realFetch(url, init)))) \
               : realFetch(url, init); \
             window.releaseAudit = () => { for (const go of window.heldAudit.splice(0)) go(); };",
        )
        .await;
    browser.eval("location.hash = '#/audit'").await;
    wait(&mut browser, &cloud, "window.heldAudit.length === 1").await;
    start_two_factor_setup(&mut browser, &cloud).await;

    browser.eval("window.releaseAudit()").await;
    // The audit page's answer arrives; for two seconds after, the page stays the setup (the
    // late draw would land within milliseconds of its answer).
    wait(
        &mut browser,
        &cloud,
        "performance.getEntriesByType('resource').some((r) => r.name.includes('/api/v1/audit'))",
    )
    .await;
    let check = "({ page: document.getElementById('view').dataset.page, hash: location.hash, \
                   secret: document.getElementById('totp-secret') !== null, \
                   audit: document.querySelector('#view table') !== null })";
    for _ in 0..20 {
        assert_eq!(
            browser.eval(check).await,
            json!({ "page": "account", "hash": "#/account", "secret": true, "audit": false })
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
