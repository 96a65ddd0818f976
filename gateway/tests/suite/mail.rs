//! Buyers told by email: paid (with the receipt link), shipped (with the
//! tracking), refunded — through a real SMTP server (aiosmtpd, from PyPI)
//! that the test starts, in the seller's own template when it set one; a
//! signed opt-out link that stops them; and, without SMTP, the messages
//! written to the data directory.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{Env, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A real SMTP server writing each message it takes to `dir`.
async fn smtp_sink(dir: &Path) -> (tokio::process::Child, u16) {
    let port = common::free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/smtp_sink.py");
    let mut child = tokio::process::Command::new(common::python())
        .arg(script)
        .arg(dir)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the SMTP server starts")
        .unwrap();
    assert_eq!(
        ready.as_deref(),
        Some("ready"),
        "aiosmtpd is installed by ./scripts/test"
    );
    (child, port)
}

/// The `n`th message in `dir` (1-based, sorted by name), waiting up to 15 s.
async fn message(dir: &Path, n: usize) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        files.sort();
        if files.len() >= n {
            return decode(&std::fs::read_to_string(&files[n - 1]).unwrap());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} emails came",
            files.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The one message in `dir` not in `seen` (which it joins), waiting up to
/// 15 s; file names are random, so order comes from what was there before.
async fn new_message(dir: &Path, seen: &mut Vec<PathBuf>) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let fresh: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "eml") && !seen.contains(p))
            .collect();
        assert!(fresh.len() <= 1, "more than one new email: {fresh:?}");
        if let Some(p) = fresh.into_iter().next() {
            let text = std::fs::read_to_string(&p).unwrap();
            seen.push(p);
            return text;
        }
        assert!(tokio::time::Instant::now() < deadline, "no new email came");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        })
        .unwrap_or(0)
}

/// A message as a person reads it: quoted-printable lines joined and
/// decoded (the body of a long line is sent that way).
fn decode(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn link(text: &str, prefix: &str) -> String {
    let start = text.find(prefix).unwrap_or_else(|| panic!("no {prefix} in {text}"));
    text[start..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

/// A paid checkout order of a buyer who gave their email; (order, session).
async fn paid_order(app: &TestApp) -> (String, String) {
    let session = common::checkout_session(app, 149_000, "RUB").await;
    let (st, attempt) = common::pay_session(app, &session, "sandbox").await;
    assert_eq!(st, StatusCode::CREATED, "{attempt}");
    common::pay_on_sandbox_page(app, attempt["redirect_url"].as_str().unwrap()).await;
    let v = common::session_state_until(app, &session, "succeeded").await;
    (common::text(&v, "order_id"), session)
}

async fn buyers_are_told_by_email_through_a_real_smtp_server(env: Env) {
    let dir = std::env::temp_dir().join(format!("haul-smtp-{}", streams::ids::random_token(8)));
    let (_sink, port) = smtp_sink(&dir).await;
    let url = format!("smtp://127.0.0.1:{port}");
    let app = TestApp::start(
        &env,
        &[
            ("HAUL_SMTP_URL", &url),
            ("HAUL_MAIL_FROM", "Tea Shop <orders@tea.example>"),
        ],
    )
    .await;
    let (order, session) = paid_order(&app).await;
    let paid = message(&dir, 1).await;
    assert!(paid.contains("To: buyer@example.com"), "{paid}");
    assert!(
        paid.contains("From: \"Tea Shop\" <orders@tea.example>")
            || paid.contains("From: Tea Shop <orders@tea.example>"),
        "{paid}"
    );
    assert!(paid.contains("your order is paid"), "{paid}");
    assert!(paid.contains("Paid: ₽1,490.00"), "{paid}");
    assert!(
        paid.contains(&format!("{}/checkout/{session}", app.base)),
        "the receipt link: {paid}"
    );

    // The seller's own template, checked.
    let (st, v) = app
        .seller(
            Method::PUT,
            "/v1/mail-templates/shipped",
            Some(json!({ "subject": "On its way, {{name}}", "body": "x" })),
        )
        .await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("subject")),
        "{v}"
    );
    let (st, v) = app
        .seller(
            Method::PUT,
            "/v1/mail-templates/shipped",
            Some(json!({ "subject": "Your tea is on its way", "body": "Track it: {{carrier}} {{tracking_number}}\nStop: {{opt_out_url}}\n" })),
        )
        .await;
    assert_eq!((st, v["custom"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
    let (st, _) = app
        .seller(
            Method::PUT,
            "/v1/mail-templates/teleported",
            Some(json!({ "subject": "a", "body": "b" })),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app
        .seller(
            Method::POST,
            &format!("/v1/orders/{order}/fulfilment"),
            Some(json!({ "state": "shipped", "carrier": "CDEK", "tracking_number": "1099887766" })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let shipped = message(&dir, 2).await;
    assert!(shipped.contains("Subject: Your tea is on its way"), "{shipped}");
    assert!(shipped.contains("Track it: CDEK 1099887766"), "{shipped}");

    // The opt-out link: a page that asks, a form that does it, a forged
    // signature refused.
    let opt_out = link(&paid, &format!("{}/mail/opt-out?", app.base));
    let page = app.http.get(&opt_out).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Stop emails"));
    let query: Vec<(String, String)> = form_urlencoded::parse(opt_out.split_once('?').unwrap().1.as_bytes())
        .into_owned()
        .collect();
    let mut forged = query.clone();
    forged.iter_mut().find(|(k, _)| k == "email").unwrap().1 = "someone@else.example".into();
    let r = app
        .http
        .post(format!("{}/mail/opt-out", app.base))
        .form(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .http
        .post(format!("{}/mail/opt-out", app.base))
        .form(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Opted out: the refund is not emailed.
    let (st, _) = app
        .seller(
            Method::POST,
            &format!("/v1/orders/{order}/refunds"),
            Some(json!({ "amount_minor": 1000 })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    // An email is queued in the same transaction as its change: none was
    // for the refund (the record below says so), so none can come.
    assert_eq!(count(&dir), 2, "nothing more after opting out");
    let (_, d) = app.seller(Method::GET, &format!("/v1/orders/{order}"), None).await;
    let mut emails: Vec<(String, String)> = d["buyer_emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // (The test's clock stands still: both were made in the same ms.)
    emails.sort();
    assert_eq!(
        emails,
        [
            ("paid".to_owned(), "sent".to_owned()),
            ("shipped".to_owned(), "sent".to_owned())
        ],
        "{d}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without SMTP, a newcomer's embedded setup writes what buyers would get
/// to the data directory; a refund is told too.
async fn without_smtp_the_emails_are_written_to_the_data_directory(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (order, _) = paid_order(&app).await;
    let dir = Path::new(&env.data_dir).join("mail");
    let paid = message(&dir, 1).await;
    assert!(
        paid.contains("your order is paid") && paid.contains("To: buyer@example.com"),
        "{paid}"
    );
    app.seller(
        Method::POST,
        &format!("/v1/orders/{order}/refunds"),
        Some(json!({ "amount_minor": 49_000 })),
    )
    .await;
    let refunded = message(&dir, 2).await;
    assert!(refunded.contains("has refunded ₽490.00 of your order"), "{refunded}");
}

/// A message's subject and body as a person reads them, whatever transfer
/// encoding the mailer chose (quoted-printable or base64 for the body, an
/// RFC 2047 encoded-word for a subject that is not ASCII).
fn readable(raw: &str) -> (String, String) {
    use base64::Engine;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let head = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_default()
    };
    let b64 = |s: &str| {
        let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(clean).unwrap()).unwrap()
    };
    // White space between two encoded words is not text; any other is.
    let mut subject = String::new();
    let mut encoded_before = false;
    for word in header("Subject:").split_whitespace() {
        let lower = word.to_ascii_lowercase();
        let encoded = (lower.starts_with("=?utf-8?b?") || lower.starts_with("=?utf-8?q?")) && word.ends_with("?=");
        let joined = encoded && encoded_before;
        if !subject.is_empty() && !joined {
            subject.push(' ');
        }
        match lower.get(..10).unwrap_or("") {
            "=?utf-8?b?" if encoded => subject.push_str(&b64(&word[10..word.len() - 2])),
            "=?utf-8?q?" if encoded => subject.push_str(&decode(&word[10..word.len() - 2].replace('_', " "))),
            _ => subject.push_str(word),
        }
        encoded_before = encoded;
    }
    let body = match header("Content-Transfer-Encoding:").to_ascii_lowercase().as_str() {
        "base64" => b64(body),
        "quoted-printable" => decode(body),
        _ => body.to_owned(),
    };
    (subject, body)
}

/// The buyer's emails speak the language they paid in (the checkout
/// page's), else the seller's default; amounts as that language writes
/// them; the opt-out page follows the email's language.
async fn emails_speak_the_buyers_language(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let dir = Path::new(&env.data_dir).join("mail");
    let pay = async |locale: Option<&str>| {
        let session = common::checkout_session(&app, 149_000, "RUB").await;
        let mut body = json!({ "acquirer": "sandbox" });
        if let Some(l) = locale {
            body["locale"] = json!(l);
        }
        let (st, attempt) = app
            .call(
                Method::POST,
                &format!("/v1/checkout/sessions/{session}/attempts"),
                None,
                Some(body),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{attempt}");
        common::pay_on_sandbox_page(&app, attempt["redirect_url"].as_str().unwrap()).await;
        common::session_state_until(&app, &session, "succeeded").await;
        session
    };
    // A language Haul does not speak is refused by name.
    let session = common::checkout_session(&app, 1_000, "RUB").await;
    let (st, v) = app
        .call(
            Method::POST,
            &format!("/v1/checkout/sessions/{session}/attempts"),
            None,
            Some(json!({ "acquirer": "sandbox", "locale": "de" })),
        )
        .await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("locale")),
        "{v}"
    );

    let session = pay(Some("ru")).await;
    let mut seen = Vec::new();
    let (subject, body) = readable(&new_message(&dir, &mut seen).await);
    assert!(subject.ends_with(": заказ оплачен"), "{subject}");
    assert!(body.contains("Оплачено: 1\u{a0}490,00\u{a0}₽"), "{body}");
    assert!(
        body.contains(&format!("/checkout/{session}?lang=ru")),
        "the receipt in Russian: {body}"
    );
    let opt_out = link(&body, &format!("{}/mail/opt-out?", app.base));
    assert!(opt_out.ends_with("&lang=ru"), "{opt_out}");
    let page = app.http.get(&opt_out).send().await.unwrap();
    assert_eq!(page.headers()["content-language"], "ru");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<html lang=\"ru\">") && html.contains("Отписаться"),
        "{html}"
    );

    // Paid in English while the seller's default is Russian: English.
    let (st, v) = app
        .seller(Method::PATCH, "/v1/settings", Some(json!({ "locale": "ru" })))
        .await;
    assert_eq!((st, v["locale"].as_str()), (StatusCode::OK, Some("ru")), "{v}");
    let (st, v) = app
        .seller(Method::PATCH, "/v1/settings", Some(json!({ "locale": "fr" })))
        .await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("locale")),
        "{v}"
    );
    pay(Some("en")).await;
    let (subject, body) = readable(&new_message(&dir, &mut seen).await);
    assert!(subject.ends_with(": your order is paid"), "{subject}");
    assert!(body.contains("Paid: ₽1,490.00"), "{body}");
    // No language recorded (a backend started the payment): the seller's.
    pay(None).await;
    let (subject, _) = readable(&new_message(&dir, &mut seen).await);
    assert!(subject.ends_with(": заказ оплачен"), "{subject}");
    // The seller sees its defaults in its own language.
    let (_, t) = app.seller(Method::GET, "/v1/mail-templates", None).await;
    assert_eq!(t["data"][0]["locale"], "ru", "{t}");
    assert!(
        t["data"][0]["subject"].as_str().unwrap().contains("заказ оплачен"),
        "{t}"
    );
}

crate::on_both_backends!(buyers_are_told_by_email_through_a_real_smtp_server);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_speak_the_buyers_language_on_the_embedded_backend() {
    emails_speak_the_buyers_language(Env::embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_emails_are_written_on_the_embedded_backend() {
    without_smtp_the_emails_are_written_to_the_data_directory(Env::embedded().await).await;
}
