//! The console's accounts over real HTTP, as a browser uses them (cookies,
//! forms with their CSRF tokens, redirects): an account's first owner from
//! the link `haul seller create` prints, invitations by email with a role,
//! each role's reach over the seller API as a matrix, CSRF refusals,
//! sign-in lockout after five wrong passwords, email links, sign-out.

use crate::common;

use std::path::Path;

use common::{Env, TestApp};
use gateway::http::openapi::{Auth, OPERATIONS};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// One browser: its cookies, never following redirects.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

/// A page or call's answer: status, where it redirects, the body.
struct Answer {
    status: StatusCode,
    location: String,
    body: String,
}

impl Answer {
    /// The first hidden `csrf` field of a page.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field in {}", self.body));
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.header("cookie", self.cookie_header())
        };
        let resp = req.send().await.unwrap();
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = pair.split_once('=').unwrap();
            assert!(attrs.contains("HttpOnly") && attrs.contains("SameSite=Lax"), "{v}");
            self.cookies.retain(|(name, _)| name != k);
            if !attrs.contains("Max-Age=0") {
                self.cookies.push((k.to_owned(), val.to_owned()));
            }
        }
        Answer {
            status: resp.status(),
            location: resp
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            body: resp.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    /// A seller API call with the session cookie (and, if given, the CSRF
    /// header).
    async fn api(&mut self, method: Method, path: &str, csrf: Option<&str>, body: Option<Value>) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    /// Opens a one-time link and sends its form with `fields`.
    async fn accept(&mut self, link: &str, fields: &[(&str, &str)]) -> Answer {
        let path = link.strip_prefix(&self.base).unwrap_or(link).to_owned();
        let page = self.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let csrf = page.csrf();
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.post(&path, &form).await
    }

    /// The console's CSRF token for this browser's session.
    async fn session_csrf(&mut self) -> String {
        let home = self.get("/console").await;
        assert_eq!(home.status, StatusCode::OK, "{}", home.body);
        home.csrf()
    }
}

/// The link in the newest console email to `to` under the data directory.
fn mailed_link(data_dir: &str, to: &str) -> String {
    mailed(data_dir, to).unwrap_or_else(|| panic!("no email to {to}"))
}

/// The same, if one came.
fn mailed(data_dir: &str, to: &str) -> Option<String> {
    let dir = Path::new(data_dir).join("mail");
    let mut found: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("console-"))
        .map(|e| {
            (
                e.metadata().unwrap().modified().unwrap(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .filter(|(_, text)| text.contains(&format!("To: {to}")))
        .collect();
    found.sort_by_key(|(at, _)| *at);
    let text = found.pop()?.1;
    let text = text.replace("=\r\n", "").replace("=3D", "=");
    let at = text.find("/console/link/lnk_").expect("a link in the email");
    let start = text[..at].rfind("http").unwrap();
    text[start..]
        .split(|c: char| c.is_whitespace())
        .next()
        .map(str::to_owned)
}

/// A new browser signed in with a password.
async fn signed_in(app: &TestApp, email: &str, password: &str) -> Browser {
    let mut b = Browser::new(&app.base);
    let page = b.get("/console/signin").await;
    let a = b
        .post(
            "/console/signin",
            &[("csrf", &page.csrf()), ("email", email), ("password", password)],
        )
        .await;
    assert_eq!(
        (a.status, a.location.as_str()),
        (StatusCode::SEE_OTHER, "/console"),
        "{}",
        a.body
    );
    b
}

/// An owner signed in through the account's first-owner link.
async fn owner(app: &TestApp, email: &str) -> Browser {
    let link = gateway::http::console::owner_link(&app.state.people, &app.base, &app.seller, app.state.payments.now())
        .await
        .unwrap();
    let mut b = Browser::new(&app.base);
    let done = b
        .accept(
            &link,
            &[
                ("email", email),
                ("name", "Olga Owner"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(
        (done.status, done.location.as_str()),
        (StatusCode::SEE_OTHER, "/console"),
        "{}",
        done.body
    );
    b
}

/// A member invited by `owner` with `role`, signed in from the emailed link.
async fn invited(app: &TestApp, env: &Env, owner: &mut Browser, email: &str, role: &str) -> Browser {
    let team = owner.get("/console/team").await;
    assert_eq!(team.status, StatusCode::OK, "{}", team.body);
    let sent = owner
        .post(
            "/console/team/invite",
            &[("csrf", &team.csrf()), ("email", email), ("role", role)],
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert!(sent.body.contains(email), "{}", sent.body);
    let link = mailed_link(&env.data_dir, email);
    let mut b = Browser::new(&app.base);
    let done = b
        .accept(&link, &[("name", role), ("password", "a long enough password")])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    b
}

/// A path with its `{…}` parts filled with ids that exist nowhere.
fn concrete(path: &str) -> String {
    path.replace("{id}", "x_1")
        .replace("{hold}", "hld_1")
        .replace("{kind}", "paid")
        .replace("{message}", "msg_1")
}

/// Each role reaches its areas and no other, over the seller API with the
/// console's cookie: a hand-written table of representative actions, then
/// every documented seller operation for every role (none answers
/// `forbidden_role` to an allowed role, each refusal is `forbidden_role`).
async fn each_role_reaches_only_its_areas(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let mut o = owner(&app, "olga@shop.example").await;
    let home = o.get("/console").await;
    assert!(
        home.body.contains("Test shop") && home.body.contains("data-test=\"test-banner\""),
        "{}",
        home.body
    );
    let mut m = invited(&app, &env, &mut o, "max@shop.example", "manager").await;
    let mut h = invited(&app, &env, &mut o, "hana@shop.example", "host").await;
    let mut d = invited(&app, &env, &mut o, "dima@shop.example", "moderator").await;
    let team = o.get("/console/team").await;
    for who in [
        "olga@shop.example",
        "max@shop.example",
        "hana@shop.example",
        "dima@shop.example",
    ] {
        assert!(
            team.body.contains(&format!("data-member=\"{who}\"")),
            "{who}: {}",
            team.body
        );
    }

    // (method, path, owner, manager, host, moderator)
    let table: &[(Method, &str, [bool; 4])] = &[
        (Method::GET, "/v1/streams", [true, true, true, true]),
        (Method::POST, "/v1/streams", [true, true, true, false]),
        (Method::POST, "/v1/lots/{id}/offers", [true, true, true, false]),
        (Method::PATCH, "/v1/offers/{id}", [true, true, true, false]),
        (Method::POST, "/v1/streams/{id}/messages", [true, true, true, false]),
        (Method::GET, "/v1/orders", [true, true, false, false]),
        (Method::POST, "/v1/orders/{id}/refunds", [true, true, false, false]),
        (Method::POST, "/v1/orders/{id}/fulfilment", [true, true, false, false]),
        (Method::POST, "/v1/webhook-endpoints", [true, true, false, false]),
        (Method::PUT, "/v1/mail-templates/{kind}", [true, true, false, false]),
        (Method::GET, "/v1/settings", [true, true, false, false]),
        (Method::PATCH, "/v1/settings", [true, false, false, false]),
        (Method::POST, "/v1/api-keys", [true, false, false, false]),
        (Method::GET, "/v1/acquirers", [true, false, false, false]),
        (Method::POST, "/v1/acquirers", [true, false, false, false]),
        (Method::PUT, "/v1/integrations/retailcrm", [true, false, false, false]),
        (Method::POST, "/v1/widget-secret", [true, false, false, false]),
        (Method::POST, "/v1/viewer-tokens", [true, false, false, false]),
    ];
    let mut people = [
        (&mut o, "owner"),
        (&mut m, "manager"),
        (&mut h, "host"),
        (&mut d, "moderator"),
    ];
    let mut csrfs = Vec::new();
    for (b, _) in people.iter_mut() {
        csrfs.push(b.session_csrf().await);
    }
    for (method, path, allowed) in table {
        for (i, (b, role)) in people.iter_mut().enumerate() {
            let a = b
                .api(method.clone(), &concrete(path), Some(&csrfs[i]), Some(json!({})))
                .await;
            let refused = a.status == StatusCode::FORBIDDEN && a.json()["error"]["code"] == "forbidden_role";
            assert_eq!(!refused, allowed[i], "{role} {method} {path}: {} {}", a.status, a.body);
        }
    }
    // Every documented seller operation is under a rule, and the server
    // enforces it the same for every role.
    let mut checked = 0;
    for op in OPERATIONS.iter().filter(|op| matches!(op.auth, Auth::Seller)) {
        assert!(gateway::people::area_of(op.path).is_some(), "{} has no area", op.path);
        let method: Method = op.method.to_uppercase().parse().unwrap();
        for (i, (b, role)) in people.iter_mut().enumerate() {
            let a = b
                .api(method.clone(), &concrete(op.path), Some(&csrfs[i]), Some(json!({})))
                .await;
            let refused = a.status == StatusCode::FORBIDDEN && a.json()["error"]["code"] == "forbidden_role";
            let role = gateway::people::Role::parse(role).unwrap();
            let area = gateway::people::area_of(op.path).unwrap();
            let write = !matches!(method, Method::GET | Method::HEAD);
            assert_eq!(
                !refused,
                role.allows(area, write),
                "{role:?} {} {}: {}",
                op.method,
                op.path,
                a.body
            );
            checked += 1;
        }
    }
    assert!(checked > 250, "{checked}");

    // Each person chooses the console's language.
    let csrf = h.session_csrf().await;
    let a = h.post("/console/language", &[("csrf", &csrf), ("locale", "ru")]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let home = h.get("/console").await;
    assert!(
        home.body.contains("<html lang=\"ru\">") && home.body.contains("Ваша роль: ведущий"),
        "{}",
        home.body
    );
    let a = h.post("/console/language", &[("csrf", &csrf), ("locale", "de")]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        o.get("/console").await.body.contains("<html lang=\"en\">"),
        "others keep theirs"
    );

    // A host's stream is the shop's: the owner's API key sees it.
    let made = h
        .api(
            Method::POST,
            "/v1/streams",
            Some(&csrfs[2]),
            Some(json!({ "title": "Hana's sale" })),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.json()["livemode"], false);
    let (_, list) = app.seller(Method::GET, "/v1/streams", None).await;
    assert_eq!(list["data"][0]["title"], "Hana's sale", "{list}");

    // Without its CSRF token, a cookie changes nothing.
    let a = h
        .api(Method::POST, "/v1/streams", None, Some(json!({ "title": "x" })))
        .await;
    assert_eq!(
        (a.status, a.json()["error"]["code"].clone()),
        (StatusCode::FORBIDDEN, json!("csrf_failed"))
    );
    let a = h
        .api(
            Method::POST,
            "/v1/streams",
            Some("forged"),
            Some(json!({ "title": "x" })),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = o
        .post("/console/team/invite", &[("email", "eve@x.example"), ("role", "owner")])
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    // Only owners manage the team.
    let a = m.get("/console/team").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // The last owner stays an owner.
    let olga = app.state.people.by_email("olga@shop.example").await.unwrap().unwrap();
    let team = o.get("/console/team").await;
    let a = o
        .post(
            &format!("/console/team/{}/role", olga.id),
            &[("csrf", &team.csrf()), ("role", "host")],
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    // A member removed is out at once.
    let dima = app.state.people.by_email("dima@shop.example").await.unwrap().unwrap();
    let a = o
        .post(&format!("/console/team/{}/remove", dima.id), &[("csrf", &team.csrf())])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let a = d.api(Method::GET, "/v1/streams", None, None).await;
    assert_eq!(
        (a.status, a.json()["error"]["code"].clone()),
        (StatusCode::FORBIDDEN, json!("no_account"))
    );
    // With no shop left, the sign-in page is theirs again (not a loop back).
    assert_eq!(d.get("/console/signin").await.status, StatusCode::OK);

    // Signed out everywhere: every browser of that person is out.
    let mut o2 = signed_in(&app, "olga@shop.example", "correct horse battery").await;
    let csrf = o2.session_csrf().await;
    let a = o2.post("/console/signout/everywhere", &[("csrf", &csrf)]).await;
    assert_eq!(a.location, "/console/signin");
    for b in [&mut o, &mut o2] {
        let a = b.get("/console").await;
        assert_eq!(
            (a.status, a.location.as_str()),
            (StatusCode::SEE_OTHER, "/console/signin")
        );
    }
    // The manager's own session is untouched.
    assert_eq!(m.get("/console").await.status, StatusCode::OK);
}

crate::on_both_backends!(each_role_reaches_only_its_areas, the_console_works_in_a_real_browser);

/// Five wrong passwords in a row lock the email for a quarter of an hour
/// (even the right one is refused meanwhile); an unknown email gets the
/// same answers; an email link still signs in, once; a signed-out form
/// without its cookie's token is refused.
async fn wrong_passwords_lock_sign_in_and_links_still_work(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let mut o = owner(&app, "olga@shop.example").await;
    let csrf = o.session_csrf().await;
    assert_eq!(
        o.post("/console/signout", &[("csrf", &csrf)]).await.location,
        "/console/signin"
    );

    let mut b = Browser::new(&app.base);
    let page = b.get("/console/signin").await;
    let csrf = page.csrf();
    let try_password = async |b: &mut Browser, email: &str, password: &str| {
        b.post(
            "/console/signin",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    };
    for email in ["olga@shop.example", "nobody@shop.example"] {
        for i in 1..=5 {
            let a = try_password(&mut b, email, "wrong wrong wrong").await;
            if i < 5 {
                assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{email} #{i}");
                assert!(a.body.contains("The email or the password is wrong."), "{}", a.body);
            } else {
                assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{email} #{i}");
                assert!(a.body.contains("Too many failed sign-ins"), "{}", a.body);
            }
        }
    }
    let a = try_password(&mut b, "olga@shop.example", "correct horse battery").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "locked, whatever the password");
    // An email link works meanwhile; the same answer for an unknown email,
    // which gets nothing.
    for email in ["olga@shop.example", "nobody@shop.example"] {
        let a = b
            .post("/console/signin/email", &[("csrf", &csrf), ("email", email)])
            .await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body.contains("a sign-in link is on its way"), "{}", a.body);
    }
    let link = mailed_link(&env.data_dir, "olga@shop.example");
    assert_eq!(
        mailed(&env.data_dir, "nobody@shop.example"),
        None,
        "no account, no email"
    );
    let mut via_link = Browser::new(&app.base);
    let a = via_link.accept(&link, &[]).await;
    assert_eq!(
        (a.status, a.location.as_str()),
        (StatusCode::SEE_OTHER, "/console"),
        "{}",
        a.body
    );
    assert_eq!(via_link.get("/console").await.status, StatusCode::OK);
    let mut again = Browser::new(&app.base);
    let used = again.get(link.strip_prefix(&app.base).unwrap()).await;
    assert_eq!(used.status, StatusCode::GONE, "a link works once");
    // After the lock, the right password works.
    app.clock.advance(16 * 60_000);
    let a = try_password(&mut b, "olga@shop.example", "correct horse battery").await;
    assert_eq!(
        (a.status, a.location.as_str()),
        (StatusCode::SEE_OTHER, "/console"),
        "{}",
        a.body
    );
    // A signed-out form needs its cookie's token.
    let mut stranger = Browser::new(&app.base);
    let a = stranger
        .post(
            "/console/signin",
            &[
                ("csrf", &csrf),
                ("email", "olga@shop.example"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    // An owner's link cannot take over an email someone already has.
    let link = gateway::http::console::owner_link(&app.state.people, &app.base, &app.seller, app.state.payments.now())
        .await
        .unwrap();
    let a = Browser::new(&app.base)
        .accept(
            &link,
            &[
                ("email", "olga@shop.example"),
                ("name", "Eve"),
                ("password", "eve's own password"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    // A month on, housekeeping forgets the sessions, links and failures.
    app.clock.advance(31 * 24 * 3_600_000);
    let gone = app.state.people.purge(app.state.payments.now()).await.unwrap();
    assert!(gone >= 3, "{gone}");
    assert_eq!(via_link.get("/console").await.location, "/console/signin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_lock_sign_in_on_the_embedded_backend() {
    wrong_passwords_lock_sign_in_and_links_still_work(Env::embedded().await).await;
}

/// The console in real Chromium (`tests/js/console.mjs`): set up from the
/// first link, an invitation accepted from its email, a host refused the
/// team page who runs a sale from the live room (a stream, a lot, live,
/// pinned, an offer launched; a viewer's hold and sale seen in the room;
/// stock and time added), a form without its CSRF token refused, a lockout
/// after five wrong passwords; the overview and the room photographed at
/// two widths. Then a manager refunds the sale and a moderator may not.
async fn the_console_works_in_a_real_browser(env: Env) {
    // (The webhook endpoint the owner adds listens on this machine.)
    let app = TestApp::start(&env, &[("HAUL_WEBHOOKS_ALLOW_PRIVATE", "true")]).await;
    let link = gateway::http::console::owner_link(&app.state.people, &app.base, &app.seller, app.state.payments.now())
        .await
        .unwrap();
    let shots = std::env::temp_dir().join(format!("haul-console-{}", streams::ids::random_token(6)));
    let shots = shots.to_string_lossy().into_owned();
    let (hook_url, hooks) = crate::pages::hook_endpoint().await;
    let steps = crate::pages::Browser::start(
        "console.mjs",
        &[&app.base, &link, &env.data_dir, &shots, &hook_url],
        "console",
    )
    .run_out()
    .await;
    let step = |name: &str| crate::pages::step(&steps, name).unwrap_or_else(|| panic!("no {name} in {steps:?}"));
    assert_eq!(step("owner_link"), "Set up Test shop: you will be its owner");
    assert_eq!(
        step("owner_home"),
        json!({ "shop": "Test shop", "role": "Your role: owner", "test_banner": true })
    );
    assert!(step("invited").as_str().unwrap().contains("hana@shop.example"));
    assert_eq!(step("host_link"), "Join Test shop as host");
    assert_eq!(step("host_home"), json!({ "role": "Your role: host", "team_link": 0 }));
    assert_eq!(step("host_team")["status"], 403);
    assert_eq!(step("csrf_refused")["status"], 403);
    assert!(step("csrf_refused")["text"].as_str().unwrap().contains("out of date"));
    assert_eq!(step("locked")["status"], 429);
    assert!(step("locked")["text"]
        .as_str()
        .unwrap()
        .contains("Too many failed sign-ins"));
    // The live room: launched, a hold seen, the sale seen, stock and time added.
    assert_eq!(
        step("launched"),
        json!({ "left": "5 / 5", "held": "0", "sold": "0", "revenue": "₽0.00" })
    );
    assert_eq!(
        step("held"),
        json!({ "left": "4 / 5", "held": "1", "sold": "0", "revenue": "₽0.00" })
    );
    let sold = step("sold");
    assert_eq!(
        (&sold["left"], &sold["held"], &sold["sold"], &sold["revenue"]),
        (&json!("4 / 5"), &json!("0"), &json!("1"), &json!("₽1,490.00")),
        "{sold}"
    );
    assert_eq!(sold["feed"], "1 × Teapot sold");
    let edited = step("edited");
    assert_eq!(edited["left"], "14 / 15", "{edited}");
    assert!(
        edited["minutes_after"].as_i64() > edited["minutes_before"].as_i64(),
        "{edited}"
    );
    for shot in ["", "-room"] {
        for width in [1280, 820] {
            let shot = format!("{shots}{shot}-{width}.png");
            let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
            assert!(size > 1000, "{shot}: {size} bytes");
        }
    }
    // Nobody else was invited: the refused form changed nothing.
    let account = &app.seller;
    let members = app.state.people.members(account).await.unwrap();
    assert_eq!(members.len(), 2, "{members:?}");

    // The owner's refund in the browser: asked first, done once (the
    // double click carried one Idempotency-Key).
    assert_eq!(step("order_page"), json!({ "state": "Paid", "fulfilment": "Paid" }));
    let refunded = step("refunded");
    assert_eq!(
        refunded["question"], "Refund ₽490.00 to the buyer? This cannot be undone.",
        "{refunded}"
    );
    assert_eq!(refunded["done"], "Refunded ₽490.00.");
    // The endpoint added in the console heard the refund, and heard it again
    // when asked to from its log: the same message, twice.
    let hook = step("webhook");
    assert_eq!(hook["secret_shown"], true, "{hook}");
    assert!(hook["row"].as_str().unwrap().contains("order.refunded"), "{hook}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = hooks.lock().unwrap().clone();
        let refunds: Vec<_> = got.iter().filter(|h| h.3.contains("order.refunded")).collect();
        if refunds.len() >= 2 {
            assert_eq!(refunds[0].0, refunds[1].0, "the same message id");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{got:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // An API key from the console: shown once, working, then revoked.
    let key = step("key");
    let made = key["key"].as_str().unwrap();
    assert!(made.starts_with("hk_test_"), "{key}");
    assert_eq!(key["asked_twice"], "Revoke now: it stops at once");
    assert_eq!(key["state"], "revoked");
    assert_eq!(key["shown_again"], false, "a key is shown once");
    let (st, _) = app.call(Method::GET, "/v1/streams", Some(made), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "a revoked key works no more");

    // A manager refunds the rest; a moderator may not.
    let stream = step("stream");
    let (_, orders) = app
        .seller(
            Method::GET,
            &format!("/v1/orders?stream={}", stream.as_str().unwrap()),
            None,
        )
        .await;
    let order = orders["data"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{orders}"))
        .to_owned();
    // (The script locked the owner's email: its quarter of an hour passes.)
    app.clock.advance(16 * 60_000);
    let mut owner = signed_in(&app, "olga@shop.example", "correct horse battery").await;
    let mut manager = invited(&app, &env, &mut owner, "max@shop.example", "manager").await;
    let mut moderator = invited(&app, &env, &mut owner, "dima@shop.example", "moderator").await;
    let (_, detail) = app.seller(Method::GET, &format!("/v1/orders/{order}"), None).await;
    assert_eq!(
        detail["refunds"].as_array().map(Vec::len),
        Some(1),
        "one refund for two clicks: {detail}"
    );
    // The order book and the order's page are a manager's, not a moderator's.
    let page = manager.get("/console/orders").await;
    assert!(page.body.contains(&format!("data-order=\"{order}\"")), "{}", page.body);
    let page = manager.get(&format!("/console/orders/{order}")).await;
    assert!(
        page.body.contains("data-test=\"refund-form\"") && page.body.contains("Teapot × 1"),
        "{}",
        page.body
    );
    assert_eq!(moderator.get("/console/orders").await.status, StatusCode::FORBIDDEN);
    // An order read through the API with the session: a manager's, not a moderator's.
    let a = manager
        .api(Method::GET, &format!("/v1/orders/{order}"), None, None)
        .await;
    assert_eq!(
        (a.status, a.json()["id"].as_str()),
        (StatusCode::OK, Some(order.as_str())),
        "{}",
        a.body
    );
    let a = moderator
        .api(Method::GET, &format!("/v1/orders/{order}"), None, None)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let refund = json!({ "amount_minor": 100000 });
    let csrf = moderator.session_csrf().await;
    let a = moderator
        .api(
            Method::POST,
            &format!("/v1/orders/{order}/refunds"),
            Some(&csrf),
            Some(refund.clone()),
        )
        .await;
    assert_eq!(
        (a.status, a.json()["error"]["code"].clone()),
        (StatusCode::FORBIDDEN, json!("forbidden_role"))
    );
    // The same Idempotency-Key twice from the console: one refund, one answer.
    let csrf = manager.session_csrf().await;
    let mut answers = Vec::new();
    for _ in 0..2 {
        let req = manager
            .http
            .post(format!("{}/v1/orders/{order}/refunds", app.base))
            .header("x-csrf-token", &csrf)
            .header("idempotency-key", "refund-the-rest")
            .json(&refund);
        let a = manager.send(req).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        answers.push(a.json()["id"].clone());
    }
    assert_eq!(answers[0], answers[1]);
    let (_, detail) = app.seller(Method::GET, &format!("/v1/orders/{order}"), None).await;
    assert_eq!(detail["refunds"].as_array().map(Vec::len), Some(2), "{detail}");
    assert_eq!(detail["state"], "refunded", "{detail}");
}

/// The widget page: the allowed sites saved (a bad line named), a new
/// widget secret shown once (an owner's, not a manager's), and the signing
/// helper's signature accepted by `POST /v1/checkout/signed` as is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_page_keeps_sites_makes_a_secret_and_signs() {
    let env = Env::embedded().await;
    let app = TestApp::start(&env, &[]).await;
    let mut o = owner(&app, "olga@shop.example").await;
    let mut m = invited(&app, &env, &mut o, "max@shop.example", "manager").await;
    let page = o.get("/console/widget").await;
    assert!(page.body.contains("/widget.js"), "the snippet: {}", page.body);
    let csrf = page.csrf();
    let a = o
        .post(
            "/console/widget/origins",
            &[("csrf", &csrf), ("origins", "https://shop.example\nftp://x.example")],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("ftp://x.example: must be http or https"), "{}", a.body);
    let a = o
        .post(
            "/console/widget/origins",
            &[
                ("csrf", &csrf),
                (
                    "origins",
                    "https://shop.example\n https://shop.example \nhttp://localhost:3000",
                ),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let (_, v) = app.seller(Method::GET, "/v1/widget-origins", None).await;
    assert_eq!(v["origins"], json!(["https://shop.example", "http://localhost:3000"]));
    // A manager keeps the sites but makes no secret.
    let mcsrf = m.session_csrf().await;
    let a = m.post("/console/widget/secret", &[("csrf", &mcsrf)]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = o.post("/console/widget/secret", &[("csrf", &csrf)]).await;
    let at = a.body.find("data-test=\"new-secret\">").expect("the secret is shown");
    let secret = &a.body[at + "data-test=\"new-secret\">".len()..];
    let secret = secret[..secret.find('<').unwrap()].to_owned();
    assert!(secret.starts_with("wsk_"), "{secret}");
    assert!(!o.get("/console/widget").await.body.contains(&secret), "shown once");
    // The helper signs; the signed checkout takes its signature.
    let expires = (app.state.payments.now() / 1000 + 3600).to_string();
    let lines = format!(
        "amount_minor=149000\ncurrency=RUB\nreference=W-7\nsuccess_url=https://shop.example/ok\n\
         cancel_url=https://shop.example/\ncustomer_email=buyer@example.com\nexpires={expires}"
    );
    let a = m
        .post("/console/widget/sign", &[("csrf", &mcsrf), ("params", &lines)])
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let at = a.body.find("data-test=\"signature\">").expect("a signature");
    let signature = &a.body[at + "data-test=\"signature\">".len()..];
    let signature = signature[..signature.find('<').unwrap()].to_owned();
    let mut params: serde_json::Map<String, Value> = lines
        .lines()
        .map(|l| l.split_once('=').unwrap())
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    params.insert("seller".into(), json!(app.seller.as_str()));
    params.insert("signature".into(), json!(signature));
    let (st, v) = app
        .call(Method::POST, "/v1/checkout/signed", None, Some(Value::Object(params)))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let a = m
        .post("/console/widget/sign", &[("csrf", &mcsrf), ("params", "colour=blue")])
        .await;
    assert!(a.body.contains("unknown parameter"), "{}", a.body);
}

/// Sign-in attempts from one address are limited (`HAUL_RATE_SIGNIN`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_limited_per_address() {
    let env = Env::embedded().await;
    let app = TestApp::start(&env, &[("HAUL_RATE_SIGNIN", "3/m")]).await;
    let mut b = Browser::new(&app.base);
    let csrf = b.get("/console/signin").await.csrf();
    let mut statuses = Vec::new();
    for i in 0..4 {
        let email = format!("guess{i}@shop.example");
        let a = b
            .post(
                "/console/signin",
                &[("csrf", &csrf), ("email", &email), ("password", "guess guess guess")],
            )
            .await;
        statuses.push(a.status);
        if i == 3 {
            assert!(a.body.contains("Too many tries from your network"), "{}", a.body);
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // Invitations (emails to any address) draw from the same budget.
    let mut o = owner(&app, "olga@shop.example").await;
    let team = o.get("/console/team").await;
    let a = o
        .post(
            "/console/team/invite",
            &[("csrf", &team.csrf()), ("email", "x@y.example"), ("role", "host")],
        )
        .await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
}

/// `haul seller create` prints the owner's first sign-in link, which makes
/// the owner of that account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seller_create_prints_the_owners_first_link() {
    let env = Env::embedded().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_haul"))
        .args(["seller", "create", "--name", "Corner shop"])
        .env("HAUL_DATABASE_URL", &env.db_url)
        .env("HAUL_PUBLIC_URL", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let link = text
        .lines()
        .find_map(|l| l.strip_prefix("owner_link "))
        .unwrap_or_else(|| panic!("{text}"))
        .trim()
        .replace("http://127.0.0.1:1", "");
    let app = TestApp::start(&env, &[]).await;
    let mut b = Browser::new(&app.base);
    let a = b
        .accept(
            &link,
            &[
                ("email", "corner@shop.example"),
                ("name", "Cora"),
                ("password", "a long enough password"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let home = b.get("/console").await;
    assert!(home.body.contains("Corner shop"), "{}", home.body);
}
