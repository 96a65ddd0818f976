//! The buyers of a fault run and the history they write: every request
//! with what it asked and what it was told (`ok`, a refusal, or `info`
//! when no answer came, so the outcome is unknown).
//!
//! A buyer holds a unit and then, by lot: releases it, walks away (the
//! hold must come back by itself), pays once on the sandbox's card page,
//! pays twice (a second attempt started while the first is being paid,
//! then paid too: the first is either paid or cancelled by the second,
//! whichever the sandbox decided first), or pays late (the bank's
//! confirmation, signed as the sandbox signs it, arrives after the
//! order's deadline).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde_json::{json, Value};

use crate::Failure;

pub struct Plan {
    pub front: String,
    pub key: String,
    pub offer: String,
    /// Each node's own address (reserves go to a buyer's node directly).
    pub nodes: Vec<String>,
    pub buyers: usize,
    pub hold_ttl: Duration,
    pub until: Instant,
}

/// One request of the history.
#[derive(Debug, Clone)]
pub struct Op {
    pub at_ms: u64,
    pub buyer: usize,
    /// reserve, release, order, attempt, pay, late-pay.
    pub op: &'static str,
    pub hold: Option<String>,
    pub order: Option<String>,
    pub attempt: Option<String>,
    /// The HTTP status; 0 when no answer came.
    pub status: u16,
    /// ok, fail or info (unknown).
    pub outcome: &'static str,
    pub detail: String,
    /// How long the answer took.
    pub ms: u64,
    /// Which node answered (reserves only).
    pub node: Option<usize>,
}

#[derive(Clone, Default)]
pub struct History(Arc<Mutex<Vec<Op>>>);

impl History {
    fn push(&self, op: Op) {
        self.0.lock().expect("history lock").push(op);
    }

    pub fn ops(&self) -> Vec<Op> {
        self.0.lock().expect("history lock").clone()
    }

    pub fn save(&self, path: &Path) -> Result<(), Failure> {
        let mut out = String::new();
        for o in self.ops() {
            out.push_str(
                &json!({ "at_ms": o.at_ms, "buyer": o.buyer, "op": o.op, "hold": o.hold, "order": o.order,
                         "attempt": o.attempt, "status": o.status, "outcome": o.outcome, "detail": o.detail, "ms": o.ms })
                .to_string(),
            );
            out.push('\n');
        }
        std::fs::write(path, out)?;
        Ok(())
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Buyer {
    n: usize,
    plan: Arc<Plan>,
    http: reqwest::Client,
    history: History,
    token: String,
    minted: usize,
    /// How long the last call that got no answer waited.
    waited: AtomicU64,
}

/// What one call gave.
struct Answer {
    status: u16,
    body: Value,
    ms: u64,
}

impl Buyer {
    async fn send(&self, req: reqwest::RequestBuilder) -> Option<Answer> {
        let started = Instant::now();
        self.read(started, req.send().await).await
    }

    async fn read(&self, started: Instant, sent: Result<reqwest::Response, reqwest::Error>) -> Option<Answer> {
        let waited = || {
            self.waited
                .store(started.elapsed().as_millis() as u64, Ordering::Relaxed)
        };
        let Ok(resp) = sent else {
            waited();
            return None;
        };
        let status = resp.status().as_u16();
        let Ok(text) = resp.text().await else {
            waited();
            return None;
        };
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let ms = started.elapsed().as_millis() as u64;
        Some(Answer { status, body, ms })
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        op: &'static str,
        hold: Option<&str>,
        order: Option<&str>,
        attempt: Option<&str>,
        answer: &Option<Answer>,
        ok: bool,
    ) {
        let (status, outcome, detail, ms) = match answer {
            None => (0, "info", "no answer".to_owned(), self.waited.load(Ordering::Relaxed)),
            Some(a) => (
                a.status,
                if ok { "ok" } else { "fail" },
                a.body["error"]["code"]
                    .as_str()
                    .or(a.body["code"].as_str())
                    .unwrap_or("")
                    .to_owned(),
                a.ms,
            ),
        };
        self.history.push(Op {
            at_ms: now_ms(),
            buyer: self.n,
            op,
            hold: hold.map(str::to_owned),
            order: order.map(str::to_owned),
            attempt: attempt.map(str::to_owned),
            status,
            outcome,
            detail,
            ms,
            node: None,
        });
    }

    async fn mint(&mut self) -> bool {
        self.minted += 1;
        let req = self
            .http
            .post(format!("{}/v1/viewer-tokens", self.plan.front))
            .bearer_auth(&self.plan.key)
            .json(&json!({ "viewer_id": format!("buyer-{}-{}", self.n, self.minted) }));
        match self.send(req).await {
            Some(a) if a.status == 201 => {
                self.token = a.body["token"].as_str().unwrap_or_default().to_owned();
                true
            }
            _ => false,
        }
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.plan.front))
            .bearer_auth(&self.token)
    }

    /// Reserves on the buyer's own node (on the other one if its own does
    /// not take the connection, as a client retries), so each answer says
    /// which node gave it.
    async fn reserve(&self, rid: &str) -> Option<Answer> {
        let nodes = &self.plan.nodes;
        let mut a = None;
        let mut node = self.n % nodes.len();
        let started = Instant::now();
        for i in 0..nodes.len() {
            node = (self.n + i) % nodes.len();
            let req = self
                .http
                .post(format!("{}/v1/offers/{}/reserve", nodes[node], self.plan.offer))
                .bearer_auth(&self.token)
                .json(&json!({ "quantity": 1, "request_id": rid }));
            match req.send().await {
                Err(e) if e.is_connect() => continue,
                other => {
                    a = self.read(started, other).await;
                    break;
                }
            }
        }
        let ok = a.as_ref().is_some_and(|a| a.status == 201);
        let hold = a
            .as_ref()
            .and_then(|a| a.body["hold"]["id"].as_str().map(str::to_owned));
        self.record("reserve", hold.as_deref(), None, None, &a, ok);
        if let Some(last) = self.history.0.lock().expect("history lock").last_mut() {
            last.node = Some(node);
        }
        a
    }

    async fn order(&self, hold: &str) -> Option<String> {
        let a = self
            .send(self.post(&format!("/v1/offers/{}/holds/{hold}/order", self.plan.offer)))
            .await;
        let id = a
            .as_ref()
            .filter(|a| a.status == 201 || a.status == 200)
            .and_then(|a| a.body["id"].as_str().map(str::to_owned));
        self.record("order", Some(hold), id.as_deref(), None, &a, id.is_some());
        id
    }

    /// A sandbox attempt on `order`: (attempt id, card page URL).
    async fn attempt(&self, order: &str) -> Option<(String, String)> {
        let a = self
            .send(
                self.post(&format!("/v1/orders/{order}/attempts"))
                    .json(&json!({ "acquirer": "sandbox" })),
            )
            .await;
        let got = a.as_ref().filter(|a| a.status == 201).and_then(|a| {
            Some((
                a.body["id"].as_str()?.to_owned(),
                a.body["redirect_url"].as_str()?.to_owned(),
            ))
        });
        self.record(
            "attempt",
            None,
            Some(order),
            got.as_ref().map(|g| g.0.as_str()),
            &a,
            got.is_some(),
        );
        got
    }

    /// Pays on the sandbox's card page with the card that succeeds; `ok`
    /// when the page said the payment was sent (the buyer saw it go).
    async fn pay(&self, order: &str, attempt: &(String, String)) {
        let a = self
            .send(self.http.post(&attempt.1).form(&[
                ("number", "4242424242424242"),
                ("expiry", "12/39"),
                ("cvc", "123"),
            ]))
            .await;
        let ok = a
            .as_ref()
            .is_some_and(|a| a.status == 200 && a.body.as_str().is_some_and(|t| t.contains("Payment sent")));
        self.record("pay", None, Some(order), Some(&attempt.0), &a, ok);
    }

    /// The bank's own confirmation of a payment, arriving after the
    /// order's deadline (a late payment).
    async fn late_pay(&self, order: &str, attempt: &str) {
        let deadline = Instant::now() + self.plan.hold_ttl * 3 + Duration::from_secs(3);
        while Instant::now() < deadline {
            let a = self
                .send(
                    self.http
                        .get(format!("{}/v1/orders/{order}", self.plan.front))
                        .bearer_auth(&self.token),
                )
                .await;
            if a.is_some_and(|a| a.body["state"] == "expired") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let body = json!({
            "event_id": format!("evt_late_{attempt}"), "payment_id": attempt, "status": "succeeded",
            "amount_minor": 99000, "currency": "RUB", "decline_code": null,
            "created_at": now_ms() / 1000,
        })
        .to_string();
        let sig = payments::sandbox::sign(
            super::SANDBOX_SECRET.as_bytes(),
            (now_ms() / 1000) as i64,
            body.as_bytes(),
        );
        let a = self
            .send(
                self.http
                    .post(format!("{}/v1/callbacks/sandbox", self.plan.front))
                    .header(payments::sandbox::SIGNATURE_HEADER, sig)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        let ok = a.as_ref().is_some_and(|a| (200..300).contains(&a.status));
        self.record("late-pay", None, Some(order), Some(attempt), &a, ok);
    }

    async fn release(&self, hold: &str) {
        let a = self
            .send(self.post(&format!("/v1/offers/{}/holds/{hold}/release", self.plan.offer)))
            .await;
        let ok = a.as_ref().is_some_and(|a| a.status == 200);
        self.record("release", Some(hold), None, None, &a, ok);
    }

    async fn live(mut self) {
        let mut n = 0u64;
        while Instant::now() < self.plan.until {
            if self.token.is_empty() && !self.mint().await {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            n += 1;
            let rid = format!("b{}-{}-{n}", self.n, self.minted);
            let Some(a) = self.reserve(&rid).await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            if a.status != 201 {
                let code = a.body["error"]["code"].as_str().unwrap_or_default().to_owned();
                if code.contains("limit") {
                    self.token.clear();
                }
                // 503 says when; a refusal waits a moment too.
                let pause = if a.status == 503 { 1000 } else { 300 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
                continue;
            }
            let Some(hold) = a.body["hold"]["id"].as_str().map(str::to_owned) else {
                continue;
            };
            let lot = rand::rng().random_range(0..100);
            match lot {
                0..15 => self.release(&hold).await,
                15..25 => {}
                _ => {
                    let Some(order) = self.order(&hold).await else {
                        continue;
                    };
                    let Some(first) = self.attempt(&order).await else {
                        continue;
                    };
                    match lot {
                        25..80 => self.pay(&order, &first).await,
                        80..92 => {
                            let second = async {
                                if let Some(again) = self.attempt(&order).await {
                                    self.pay(&order, &again).await;
                                }
                            };
                            tokio::join!(self.pay(&order, &first), second);
                        }
                        _ => self.late_pay(&order, &first.0).await,
                    }
                }
            }
            let pause = rand::rng().random_range(100..400);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
}

pub async fn run(plan: Plan, history: History, http: reqwest::Client) {
    let plan = Arc::new(plan);
    let mut tasks = Vec::new();
    for n in 0..plan.buyers {
        let b = Buyer {
            n,
            plan: plan.clone(),
            http: http.clone(),
            history: history.clone(),
            token: String::new(),
            minted: 0,
            waited: AtomicU64::new(0),
        };
        tasks.push(tokio::spawn(b.live()));
    }
    for t in tasks {
        let _ = t.await;
    }
}
