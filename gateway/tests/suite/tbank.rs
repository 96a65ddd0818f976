//! T-Bank Acquiring through its emulator (tests/emulators/tbank.rs): a
//! seller connects terminals (secrets sealed, never shown), a checkout pays
//! through `Init`, the hosted page and signed notifications (duplicated and
//! reordered), refunds go through `Cancel`, forged or foreign notifications
//! change nothing, and a terminal that refuses to serve hands the payment
//! to the next one: one order, one charge.

use crate::common;
use crate::emulators;

use common::{checkout_session, pay_session as pay, session_state_until as state_until, submit_card, Env, TestApp};
use emulators::tbank::{Emulator, Mode, GOOD_CARD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn app(env: &Env, emu: &Emulator) -> TestApp {
    TestApp::start(env, &[("HAUL_TBANK_URL", &emu.api())]).await
}

async fn connect(app: &TestApp, terminal: &str, password: &str, priority: i64) -> Value {
    let (st, v) = app
        .seller(
            Method::POST,
            "/v1/acquirers",
            Some(json!({ "acquirer": "tbank", "account": terminal, "secret": password,
                         "settings": { "taxation": "usn_income" }, "priority": priority })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v
}

async fn sellers_connect_terminals_whose_secrets_never_come_back(env: Env) {
    let emu = Emulator::start().await;
    let app = app(&env, &emu).await;
    emu.terminal("TerminalA", "password-of-a", Mode::Normal);
    let a = connect(&app, "TerminalA", "password-of-a", 1).await;
    assert_eq!(emu.calls("CheckOrder", "TerminalA"), 1, "the bank proved the password");
    assert!(!a.to_string().contains("password-of-a"), "{a}");
    assert_eq!((a["enabled"].as_bool(), a["priority"].as_i64()), (Some(true), Some(1)));
    let (_, list) = app.seller(Method::GET, "/v1/acquirers", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("password-of-a"));
    // Sealed at rest.
    let stored: String = sqlx::query_scalar("SELECT secret FROM acquirer_accounts WHERE account = 'TerminalA'")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert!(!stored.contains("password-of-a"));
    // Bad input is refused with the field named.
    for (body, field) in [
        (
            json!({ "acquirer": "nobank", "account": "X", "secret": "s" }),
            "acquirer",
        ),
        (json!({ "acquirer": "tbank", "account": "", "secret": "s" }), "account"),
        (
            json!({ "acquirer": "tbank", "account": "X", "secret": "with space" }),
            "secret",
        ),
        (
            json!({ "acquirer": "tbank", "account": "X", "secret": "s", "settings": { "taxation": "vat" } }),
            "settings.taxation",
        ),
        (
            json!({ "acquirer": "tbank", "account": "X", "secret": "s", "settings": { "colour": "red" } }),
            "settings.colour",
        ),
        (
            json!({ "acquirer": "tbank", "account": "X", "secret": "s", "priority": 0 }),
            "priority",
        ),
    ] {
        let (st, v) = app.seller(Method::POST, "/v1/acquirers", Some(body)).await;
        assert_eq!(
            (st, v["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{v}"
        );
    }
    // A terminal is claimed only with its password, and a failed claim
    // says nothing about whether someone else connected it: a stranger
    // guessing at a competitor's terminal hears what a typo hears.
    let stranger = app.other_seller_key().await;
    emu.terminal("Unclaimed", "unclaimed-password", Mode::Normal);
    let claim = |key: String, terminal: &'static str, password: &'static str| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/v1/acquirers",
                Some(&key),
                Some(json!({ "acquirer": "tbank", "account": terminal, "secret": password })),
            )
            .await
        }
    };
    let (st, squatted) = claim(stranger.clone(), "TerminalA", "guess").await;
    assert_eq!(
        (
            st,
            squatted["error"]["code"].as_str(),
            squatted["error"]["field"].as_str()
        ),
        (StatusCode::BAD_REQUEST, Some("invalid_field"), Some("secret")),
        "{squatted}"
    );
    let (_, typo) = claim(stranger.clone(), "Unclaimed", "guess").await;
    assert_eq!(typo, squatted, "a failed claim reveals nothing about other sellers");
    let (_, own_typo) = claim(app.key.clone(), "TerminalA", "guess").await;
    assert_eq!(own_typo, squatted);
    // Only someone who holds the password learns the terminal is taken.
    let (st, v) = claim(stranger, "TerminalA", "password-of-a").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("account_taken"))
    );
    // A new password is proved like the first.
    let id = a["id"].as_str().unwrap();
    let (st, v) = app
        .seller(
            Method::PATCH,
            &format!("/v1/acquirers/{id}"),
            Some(json!({ "secret": "not-the-new-password" })),
        )
        .await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("secret")),
        "{v}"
    );
    emu.terminal("TerminalA", "new-password", Mode::Normal);
    let (st, v) = app
        .seller(
            Method::PATCH,
            &format!("/v1/acquirers/{id}"),
            Some(json!({ "enabled": false, "priority": 5, "secret": "new-password" })),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!((v["enabled"].as_bool(), v["priority"].as_i64()), (Some(false), Some(5)));
    assert!(!v.to_string().contains("new-password"));
    let (st, _) = app.seller(Method::DELETE, &format!("/v1/acquirers/{id}"), None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = app.seller(Method::GET, &format!("/v1/acquirers/{id}"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // A bank that cannot be reached proves nothing: try again later.
    let offline = TestApp::start(&Env::embedded().await, &[("HAUL_TBANK_URL", "http://127.0.0.1:9")]).await;
    let (st, v) = offline
        .seller(
            Method::POST,
            "/v1/acquirers",
            Some(json!({ "acquirer": "tbank", "account": "TerminalB", "secret": "pw" })),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("acquirer_unavailable")),
        "{v}"
    );
    let (_, list) = offline.seller(Method::GET, "/v1/acquirers", None).await;
    assert_eq!(list["data"], json!([]));
}

async fn a_checkout_pays_through_tbank_and_refunds_through_cancel(env: Env) {
    let emu = Emulator::start().await;
    emu.terminal("ShopTerminal", "terminal-password", Mode::Normal);
    emu.bank.lock().unwrap().chaos = true;
    let app = app(&env, &emu).await;
    connect(&app, "ShopTerminal", "terminal-password", 1).await;
    let cs = checkout_session(&app, 259_000, "RUB").await;
    let (_, status) = app
        .call(Method::GET, &format!("/v1/checkout/sessions/{cs}/status"), None, None)
        .await;
    assert_eq!(status["acquirers"], json!(["tbank", "sandbox"]));
    // The buyer's page speaks Russian: so does the bank's form.
    let (st, attempt) = app
        .call(
            Method::POST,
            &format!("/v1/checkout/sessions/{cs}/attempts"),
            None,
            Some(json!({ "acquirer": "tbank", "locale": "ru" })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{attempt}");
    let redirect = common::text(&attempt, "redirect_url");
    assert!(redirect.starts_with(&emu.base), "{redirect}");
    // The bank received a signed Init with the 54-FZ receipt and the
    // buyer's language.
    let (payment_id, p) = emu.payments_of("ShopTerminal").pop().unwrap();
    assert_eq!(
        (p.amount, p.order_id.as_str()),
        (259_000, attempt["id"].as_str().unwrap())
    );
    assert_eq!(p.receipt.as_ref().unwrap()["Items"][0]["Tax"], "vat20");
    assert_eq!(p.language.as_deref(), Some("ru"));
    assert_eq!(submit_card(&app, &redirect, GOOD_CARD).await.0, StatusCode::OK);
    let paid = state_until(&app, &cs, "succeeded").await;
    // Four notifications arrived (two statuses, each twice, the first round
    // reversed); each took effect once.
    assert_eq!(emu.bank.lock().unwrap().delivered.len(), 4);
    let order = paid["order_id"].as_str().unwrap();
    let (_, o) = app.seller(Method::GET, &format!("/v1/orders/{order}"), None).await;
    assert_eq!(o["attempts"][0]["state"], "succeeded", "{o}");

    // Forged (another password), foreign (unknown terminal) and replayed
    // notifications are refused or change nothing.
    let mut forged = emu.notification(&payment_id, "REJECTED");
    forged["Token"] = json!("0".repeat(64));
    let post = |body: Value| {
        app.http
            .post(format!("{}/v1/callbacks/tbank", app.base))
            .json(&body)
            .send()
    };
    let r = post(forged).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_ne!(r.text().await.unwrap(), "OK");
    let mut foreign = emu.notification(&payment_id, "CONFIRMED");
    foreign["TerminalKey"] = json!("SomeoneElse");
    assert_eq!(post(foreign).await.unwrap().status(), StatusCode::BAD_REQUEST);
    let r = post(emu.notification(&payment_id, "CONFIRMED")).await.unwrap();
    assert_eq!((r.status(), r.text().await.unwrap().as_str()), (StatusCode::OK, "OK"));
    let junk = app
        .http
        .post(format!("{}/v1/callbacks/tbank", app.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(junk.status(), StatusCode::BAD_REQUEST);
    state_until(&app, &cs, "succeeded").await;

    // A partial refund goes through Cancel with the amount.
    let (st, r) = app
        .seller(
            Method::POST,
            &format!("/v1/orders/{order}/refunds"),
            Some(json!({ "amount_minor": 100_000 })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let p = emu.bank.lock().unwrap().payments[&payment_id].clone();
    assert_eq!((p.refunded, p.status.as_str()), (100_000, "PARTIAL_REFUNDED"));
    state_until(&app, &cs, "partially_refunded").await;
    // More than is left: refused before the bank is asked.
    let (st, _) = app
        .seller(
            Method::POST,
            &format!("/v1/orders/{order}/refunds"),
            Some(json!({ "amount_minor": 200_000 })),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(emu.calls("Cancel", "ShopTerminal"), 1);
}

async fn a_declined_card_fails_the_payment_without_trying_another_bank(env: Env) {
    let emu = Emulator::start().await;
    emu.terminal("First", "first-password", Mode::Normal);
    emu.terminal("Second", "second-password", Mode::Normal);
    let app = app(&env, &emu).await;
    connect(&app, "First", "first-password", 1).await;
    connect(&app, "Second", "second-password", 2).await;
    let cs = checkout_session(&app, 10_000, "RUB").await;
    let (_, attempt) = pay(&app, &cs, "tbank").await;
    let redirect = common::text(&attempt, "redirect_url");
    assert_eq!(
        submit_card(&app, &redirect, "5000 0000 0000 0009").await.0,
        StatusCode::OK
    );
    state_until(&app, &cs, "failed").await;
    assert_eq!(emu.calls("Init", "Second"), 0);
}

async fn a_refusing_terminal_hands_the_payment_to_the_next_one(env: Env) {
    let emu = Emulator::start().await;
    emu.terminal(
        "Blocked",
        "blocked-password",
        Mode::Refuse("1006".into(), "Терминал заблокирован".into()),
    );
    emu.terminal("Working", "working-password", Mode::Normal);
    let app = app(&env, &emu).await;
    connect(&app, "Blocked", "blocked-password", 1).await;
    connect(&app, "Working", "working-password", 2).await;
    let cs = checkout_session(&app, 50_000, "RUB").await;
    let (st, attempt) = pay(&app, &cs, "tbank").await;
    assert_eq!(st, StatusCode::CREATED, "{attempt}");
    assert_eq!(emu.calls("Init", "Blocked"), 1);
    let (payment_id, _) = emu.payments_of("Working").pop().unwrap();
    assert!(emu.payments_of("Blocked").is_empty());
    let redirect = common::text(&attempt, "redirect_url");
    assert_eq!(submit_card(&app, &redirect, GOOD_CARD).await.0, StatusCode::OK);
    let paid = state_until(&app, &cs, "succeeded").await;
    // One order, two attempts: the refused one given up, the other paid; one charge.
    let order = paid["order_id"].as_str().unwrap();
    let (_, o) = app.seller(Method::GET, &format!("/v1/orders/{order}"), None).await;
    let mut states: Vec<&str> = o["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["state"].as_str().unwrap())
        .collect();
    states.sort();
    assert_eq!(states, ["cancelled", "succeeded"], "{o}");
    let confirmed: Vec<_> = emu
        .bank
        .lock()
        .unwrap()
        .payments
        .values()
        .filter(|p| p.status == "CONFIRMED")
        .map(|p| p.order_id.clone())
        .collect();
    assert_eq!(confirmed.len(), 1);
    assert_eq!(emu.bank.lock().unwrap().payments[&payment_id].status, "CONFIRMED");

    // A bank that keeps refusing is taken out of rotation: after three
    // refusals it is not asked again for a while.
    for _ in 0..3 {
        let cs = checkout_session(&app, 50_000, "RUB").await;
        let (st, _) = pay(&app, &cs, "tbank").await;
        assert_eq!(st, StatusCode::CREATED);
    }
    assert_eq!(emu.calls("Init", "Blocked"), 3);
    // Everything is out: a clear 502, and nothing charged.
    emu.set_mode("Working", Mode::Down);
    let cs = checkout_session(&app, 50_000, "RUB").await;
    let (st, v) = pay(&app, &cs, "tbank").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("acquirers_unavailable")),
        "{v}"
    );
    assert_eq!(emu.calls("Init", "Blocked"), 3, "an open breaker is not asked");
    assert!(app
        .metrics()
        .await
        .contains("haul_acquirer_accounts_out_of_rotation 1\n"));
    let (_, s) = app
        .seller(Method::GET, &format!("/v1/checkout/sessions/{cs}"), None)
        .await;
    assert_eq!(s["state"], "created", "the order stays open: {s}");
}

/// No clear answer from a bank: no second attempt anywhere until
/// reconciliation has asked the bank and learned it took nothing.
async fn an_unclear_answer_waits_for_reconciliation_before_another_attempt(env: Env) {
    let emu = Emulator::start().await;
    emu.terminal("Unclear", "unclear-password", Mode::Garbled);
    emu.terminal("Backup", "backup-password", Mode::Normal);
    let app = app(&env, &emu).await;
    connect(&app, "Unclear", "unclear-password", 1).await;
    connect(&app, "Backup", "backup-password", 2).await;
    let cs = checkout_session(&app, 30_000, "RUB").await;
    let (st, v) = pay(&app, &cs, "tbank").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("acquirer_no_answer")),
        "{v}"
    );
    let (st, v) = pay(&app, &cs, "tbank").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("payment_in_progress")),
        "{v}"
    );
    assert_eq!(
        emu.calls("Init", "Backup"),
        0,
        "no second attempt while the first is unknown"
    );
    // Reconciliation asks the bank (CheckOrder): it has no such payment.
    app.clock.advance(31_000);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while emu.calls("CheckOrder", "Unclear") == 0 {
        assert!(tokio::time::Instant::now() < deadline, "reconciliation never asked");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (st, v) = pay(&app, &cs, "tbank").await;
        if st == StatusCode::CREATED {
            // The unclear bank still answers nonsense: this time a clear
            // outage would move on, but nonsense stops again.
            panic!("unexpected success at the unclear bank: {v}");
        }
        if v["error"]["code"] == "acquirer_no_answer" {
            break;
        }
        assert_eq!(v["error"]["code"], "payment_in_progress", "{v}");
        assert!(tokio::time::Instant::now() < deadline, "never given up: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Once the bank answers clearly that it will not serve, the next one takes it.
    emu.set_mode("Unclear", Mode::Refuse("1006".into(), "blocked".into()));
    app.clock.advance(31_000);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (st, v) = pay(&app, &cs, "tbank").await;
        if st == StatusCode::CREATED {
            assert!(v["redirect_url"].as_str().unwrap().starts_with(&emu.base));
            break;
        }
        assert_eq!(v["error"]["code"], "payment_in_progress", "{v}");
        assert!(tokio::time::Instant::now() < deadline, "never given up: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(emu.payments_of("Backup").len(), 1);
    assert!(emu.payments_of("Unclear").is_empty());
    app.metrics_until("haul_reconciliation_total{outcome=\"given_up\"}")
        .await;
}

/// The bank does not answer within the time limit: the payment's fate is
/// unknown, so no other attempt starts (not even at the next bank) until
/// reconciliation learns from the bank that nothing was made.
async fn a_timeout_waits_for_reconciliation_before_another_attempt(env: Env) {
    let emu = Emulator::start().await;
    emu.terminal("Slow", "slow-password", Mode::Hang(std::time::Duration::from_secs(1)));
    emu.terminal("Spare", "spare-password", Mode::Normal);
    let app = TestApp::start(
        &env,
        &[("HAUL_TBANK_URL", &emu.api()), ("HAUL_ACQUIRER_TIMEOUT_MS", "300")],
    )
    .await;
    connect(&app, "Slow", "slow-password", 1).await;
    connect(&app, "Spare", "spare-password", 2).await;
    let cs = checkout_session(&app, 25_000, "RUB").await;
    let (st, v) = pay(&app, &cs, "tbank").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("acquirer_no_answer")),
        "{v}"
    );
    let (st, v) = pay(&app, &cs, "tbank").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("payment_in_progress")),
        "{v}"
    );
    assert_eq!(
        emu.calls("Init", "Spare"),
        0,
        "no second attempt while the first is unknown"
    );
    // Reconciliation: CheckOrder at the slow terminal finds nothing, the
    // attempt is given up, and the next payment may go on (the slow
    // terminal now refuses, so the spare one takes it).
    emu.set_mode("Slow", Mode::Refuse("1006".into(), "blocked".into()));
    app.clock.advance(31_000);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (st, v) = pay(&app, &cs, "tbank").await;
        if st == StatusCode::CREATED {
            assert_eq!(emu.payments_of("Spare").len(), 1, "{v}");
            break;
        }
        assert_eq!(v["error"]["code"], "payment_in_progress", "{v}");
        assert!(tokio::time::Instant::now() < deadline, "never given up: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(emu.calls("CheckOrder", "Slow") >= 1);
    assert!(emu.payments_of("Slow").is_empty());
}

/// A stream purchase has no buyer contact, and a terminal that fiscalizes
/// needs one for the receipt: the checkout asks for the buyer's email, which
/// goes into the receipt.
async fn a_stream_purchase_asks_for_the_email_its_receipt_needs(env: Env) {
    let emu = Emulator::start().await;
    emu.terminal("Live", "live-password", Mode::Normal);
    let app = app(&env, &emu).await;
    connect(&app, "Live", "live-password", 1).await;
    let (_, _, oid) = app.live_offer(common::offer_body(2, 1)).await;
    let token = &app.viewer_token("dana").await;
    let (st, r) = app.reserve(token, &oid, 1, "d1").await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let order = app.order_for_hold(token, &oid, r["hold"]["id"].as_str().unwrap()).await;
    let cs = common::text(&order, "checkout_session");
    let (_, status) = app
        .call(Method::GET, &format!("/v1/checkout/sessions/{cs}/status"), None, None)
        .await;
    assert_eq!(status["has_contact"], false, "{status}");
    let (st, v) = pay(&app, &cs, "tbank").await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("customer_email")),
        "{v}"
    );
    assert_eq!(emu.calls("Init", "Live"), 0);
    let path = format!("/v1/checkout/sessions/{cs}/attempts");
    let attempt = |email: &str| {
        app.call(
            Method::POST,
            &path,
            None,
            Some(json!({ "acquirer": "tbank", "customer_email": email })),
        )
    };
    let (st, v) = attempt("not-an-email").await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("customer_email"))
    );
    let (st, v) = attempt("dana@example.com").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (_, p) = emu.payments_of("Live").pop().unwrap();
    assert_eq!(p.receipt.unwrap()["Email"], "dana@example.com");
    let (_, status) = app
        .call(Method::GET, &format!("/v1/checkout/sessions/{cs}/status"), None, None)
        .await;
    assert_eq!(status["has_contact"], true, "{status}");
}

/// A notification that never came: reconciliation reads the bank's status
/// and the order is paid (the seller's webhook follows as usual).
async fn a_lost_notification_is_made_up_by_polling(env: Env) {
    let emu = Emulator::start().await;
    emu.terminal("Quiet", "quiet-password", Mode::Normal);
    let app = app(&env, &emu).await;
    connect(&app, "Quiet", "quiet-password", 1).await;
    let cs = checkout_session(&app, 20_000, "RUB").await;
    let (_, attempt) = pay(&app, &cs, "tbank").await;
    let (payment_id, _) = emu.payments_of("Quiet").pop().unwrap();
    // Paid at the bank, but its notifications go nowhere.
    emu.bank
        .lock()
        .unwrap()
        .payments
        .get_mut(&payment_id)
        .unwrap()
        .notification_url = "http://127.0.0.1:9/nowhere".into();
    let redirect = common::text(&attempt, "redirect_url");
    let _ = submit_card(&app, &redirect, GOOD_CARD).await;
    let (_, s) = app
        .seller(Method::GET, &format!("/v1/checkout/sessions/{cs}"), None)
        .await;
    assert_eq!(s["state"], "created", "{s}");
    app.clock.advance(31_000);
    state_until(&app, &cs, "succeeded").await;
    assert!(emu.calls("GetState", "Quiet") >= 1);
}

/// The same notification many times at once, then a contradicting one:
/// the payment takes effect exactly once and never moves back.
async fn concurrent_notifications_take_effect_once(env: Env) {
    let emu = Emulator::start().await;
    emu.terminal("Busy", "busy-password", Mode::Normal);
    let app = std::sync::Arc::new(app(&env, &emu).await);
    connect(&app, "Busy", "busy-password", 1).await;
    let cs = checkout_session(&app, 40_000, "RUB").await;
    let (st, _) = pay(&app, &cs, "tbank").await;
    assert_eq!(st, StatusCode::CREATED);
    let (payment_id, _) = emu.payments_of("Busy").pop().unwrap();
    let confirmed = emu.notification(&payment_id, "CONFIRMED");
    let calls = (0..8).map(|_| {
        let (app, body) = (app.clone(), confirmed.clone());
        async move {
            let r = app
                .http
                .post(format!("{}/v1/callbacks/tbank", app.base))
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        }
    });
    for (st, text) in futures_util::future::join_all(calls).await {
        assert_eq!((st, text.as_str()), (StatusCode::OK, "OK"));
    }
    let r = app
        .http
        .post(format!("{}/v1/callbacks/tbank", app.base))
        .json(&emu.notification(&payment_id, "REJECTED"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    state_until(&app, &cs, "succeeded").await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("haul_callbacks_total{outcome=\"applied\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("haul_callbacks_total{outcome=\"duplicate\"} 7\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("haul_callbacks_total{outcome=\"ignored\"} 1\n"),
        "{metrics}"
    );
}

/// The bank reports a payment of another amount than the attempt's: ours
/// stands, and the disagreement is logged, counted, and told to the seller
/// once (`payment.disagreement`), however often it is polled.
async fn a_disagreement_with_the_bank_is_reported_to_the_seller(env: Env) {
    let emu = Emulator::start().await;
    emu.terminal("Odd", "odd-password", Mode::Normal);
    let app = TestApp::start(
        &env,
        &[("HAUL_TBANK_URL", &emu.api()), ("HAUL_WEBHOOKS_ALLOW_PRIVATE", "true")],
    )
    .await;
    let (st, ep) = app
        .seller(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(json!({ "url": "http://127.0.0.1:9/hooks", "event_types": ["payment.disagreement"] })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{ep}");
    connect(&app, "Odd", "odd-password", 1).await;
    let cs = checkout_session(&app, 50_000, "RUB").await;
    let (st, _) = pay(&app, &cs, "tbank").await;
    assert_eq!(st, StatusCode::CREATED);
    let (payment_id, _) = emu.payments_of("Odd").pop().unwrap();
    {
        let mut bank = emu.bank.lock().unwrap();
        let p = bank.payments.get_mut(&payment_id).unwrap();
        p.amount = 5_000;
        p.status = "CONFIRMED".into();
    }
    let disagreements = |app: &TestApp| {
        let pool = app.state.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM webhook_messages WHERE event_type = 'payment.disagreement'",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    // Each poll is counted once it has acted (the webhook queued or not).
    for round in 1..=2 {
        app.clock.advance(120_000);
        app.metrics_until(&format!(
            "haul_reconciliation_total{{outcome=\"disagreement\"}} {round}\n"
        ))
        .await;
        assert_eq!(disagreements(&app).await, 1);
    }
    let (_, s) = app
        .seller(Method::GET, &format!("/v1/checkout/sessions/{cs}"), None)
        .await;
    assert_ne!(s["state"], "succeeded", "{s}");
}

on_both_backends!(
    a_stream_purchase_asks_for_the_email_its_receipt_needs,
    a_timeout_waits_for_reconciliation_before_another_attempt,
    a_disagreement_with_the_bank_is_reported_to_the_seller,
    concurrent_notifications_take_effect_once,
    an_unclear_answer_waits_for_reconciliation_before_another_attempt,
    a_lost_notification_is_made_up_by_polling,
    sellers_connect_terminals_whose_secrets_never_come_back,
    a_checkout_pays_through_tbank_and_refunds_through_cancel,
    a_declined_card_fails_the_payment_without_trying_another_bank,
    a_refusing_terminal_hands_the_payment_to_the_next_one,
    a_second_payment_of_a_paid_order_is_cancelled_at_the_bank,
);

/// Two tabs, two T-Bank attempts, both paid with a card: the order is paid
/// once and the second payment is given back in full through `Cancel`, at
/// the bank, marked a duplicate and never counted as the order's refund.
async fn a_second_payment_of_a_paid_order_is_cancelled_at_the_bank(env: Env) {
    let emu = Emulator::start().await;
    emu.terminal("TwoTabs", "two-tabs-password", Mode::Normal);
    let app = app(&env, &emu).await;
    connect(&app, "TwoTabs", "two-tabs-password", 1).await;
    let cs = checkout_session(&app, 70_000, "RUB").await;
    let (st, first) = pay(&app, &cs, "tbank").await;
    assert_eq!(st, StatusCode::CREATED, "{first}");
    let (st, second) = pay(&app, &cs, "tbank").await;
    assert_eq!(st, StatusCode::CREATED, "{second}");
    for attempt in [&first, &second] {
        let page = common::text(attempt, "redirect_url");
        assert_eq!(submit_card(&app, &page, GOOD_CARD).await.0, StatusCode::OK);
    }
    let paid = state_until(&app, &cs, "succeeded").await;
    let order = common::text(&paid, "order_id");
    let mut refunded = false;
    for _ in 0..100 {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM refunds WHERE order_id = $1 AND kind = 'duplicate'")
            .bind(&order)
            .fetch_one(&app.state.pool)
            .await
            .unwrap();
        if n == 1 {
            refunded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refunded, "the duplicate charge was refunded");
    let payments = emu.payments_of("TwoTabs");
    let statuses: Vec<&str> = payments.iter().map(|(_, p)| p.status.as_str()).collect();
    assert_eq!(payments.len(), 2);
    assert!(
        statuses.contains(&"CONFIRMED") && statuses.contains(&"REFUNDED"),
        "{statuses:?}"
    );
    assert_eq!(emu.calls("Cancel", "TwoTabs"), 1);
    let (_, o) = app.seller(Method::GET, &format!("/v1/orders/{order}"), None).await;
    assert_eq!(
        (o["state"].as_str(), o["refunded_minor"].as_i64()),
        (Some("succeeded"), Some(0)),
        "{o}"
    );
    let duplicates = o["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["duplicate"] == true)
        .count();
    assert_eq!(duplicates, 1, "{o}");
}
