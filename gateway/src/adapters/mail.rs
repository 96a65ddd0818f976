//! Sending buyers' emails from their queue ([`payments::mail`]): a worker on
//! every node claims due ones, renders the seller's template (or the
//! default) and sends it through the configured SMTP relay — or, without
//! one, writes it as a `.eml` file under `HAUL_DATA_DIR/mail`, so a
//! newcomer's embedded setup shows what buyers would get. Every email
//! carries a link that opts the buyer out of the seller's emails, signed so
//! no one can opt another buyer out.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hmac::{Hmac, Mac};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use payments::mail::{self, Due, Sent};
use secrecy::ExposeSecret;
use sha2::Sha256;
use tokio::sync::watch;
use widget::Locale;

use crate::config::Config;
use crate::state::AppState;

/// Emails claimed per round, and how long a claim lasts.
const BATCH: i64 = 20;
const LEASE_MS: i64 = 60_000;

/// Where emails go.
pub enum Sender {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(PathBuf),
}

impl Sender {
    pub fn new(config: &Config) -> Sender {
        match &config.smtp {
            Some(smtp) => {
                let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
                    .port(smtp.port)
                    .timeout(Some(Duration::from_secs(15)));
                if let Some((user, pass)) = &smtp.credentials {
                    b = b.credentials(Credentials::new(user.clone(), pass.expose_secret().to_owned()));
                }
                Sender::Smtp(b.build())
            }
            None => Sender::Files(config.data_dir.join("mail")),
        }
    }
}

/// The opt-out link's signature of (seller, email).
pub fn opt_out_signature(secret: &str, seller: &str, email: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("mail-opt-out\n{seller}\n{}", email.to_lowercase()).as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn opt_out_url(s: &AppState, seller: &str, email: &str, locale: Locale) -> String {
    let sig = opt_out_signature(s.token_secret.expose_secret(), seller, email);
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("seller", seller)
        .append_pair("email", &email.to_lowercase())
        .append_pair("sig", &sig)
        .append_pair("lang", locale.tag())
        .finish();
    format!("{}/mail/opt-out?{q}", s.public_url)
}

/// An amount as the buyer's language writes it (`1 490,00 ₽`, `₽1,490.00`).
fn amount(locale: Locale, minor: i64, currency: &str) -> String {
    let digits = streams::money::Currency::parse(currency).map_or(2, |c| c.exponent());
    locale.money(minor, digits, currency)
}

/// The language of an order's emails: the one its checkout spoke, else
/// the seller's default.
async fn locale_of(s: &AppState, due: &Due, session: Option<&payments::checkout::Session>) -> Locale {
    match session.and_then(|cs| cs.locale.as_deref()).and_then(Locale::parse) {
        Some(l) => l,
        None => crate::http::extract::Language::seller_default(s, &due.seller_id).await,
    }
}

async fn values(s: &AppState, due: &Due) -> (Locale, BTreeMap<&'static str, String>) {
    let d = &due.data;
    let text = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let session = s.payments.session_of_order(&due.order_id).await.ok().flatten();
    let locale = locale_of(s, due, session.as_ref()).await;
    let currency = text("currency");
    let minor = |k: &str| amount(locale, d.get(k).and_then(|v| v.as_i64()).unwrap_or(0), &currency);
    let shop = sqlx::query_scalar::<_, String>("SELECT name FROM sellers WHERE id = $1")
        .bind(&due.seller_id)
        .fetch_optional(&s.pool)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| "the shop".into());
    let receipt = session
        .as_ref()
        .map(|cs| format!("{}/checkout/{}?lang={locale}", s.public_url, cs.id))
        .unwrap_or_default();
    let mut v = BTreeMap::new();
    v.insert("shop", shop);
    v.insert("order_id", due.order_id.clone());
    v.insert("reference", text("reference"));
    v.insert("amount", minor("amount_minor"));
    v.insert("refunded", minor("refunded_minor"));
    v.insert("carrier", text("carrier"));
    v.insert("tracking_number", text("tracking_number"));
    v.insert("receipt_url", receipt);
    v.insert("opt_out_url", opt_out_url(s, &due.seller_id, &due.to, locale));
    (locale, v)
}

/// Renders and sends one email.
async fn send_one(s: &AppState, sender: &Sender, due: &Due) -> Sent {
    match mail::opted_out(&s.pool, &due.seller_id, &due.to).await {
        Ok(true) => return Sent::Skipped,
        Ok(false) => {}
        Err(e) => return Sent::Failed(format!("the opt-outs could not be read: {e}")),
    }
    let (locale, v) = values(s, due).await;
    let Some((default_subject, default_body)) = mail::default_template(&due.kind, locale) else {
        return Sent::Failed(format!("no template for {}", due.kind));
    };
    let (subject, body) = match mail::template(&s.pool, &due.seller_id, &due.kind).await {
        Ok(Some(t)) => t,
        Ok(None) => (default_subject.to_owned(), default_body.to_owned()),
        Err(e) => return Sent::Failed(format!("the template could not be read: {e}")),
    };
    let subject = mail::render(&subject, &v).replace(['\r', '\n'], " ");
    let body = mail::render(&body, &v);
    let (Ok(from), Ok(to)) = (s.config.mail_from.parse::<Mailbox>(), due.to.parse::<Mailbox>()) else {
        return Sent::Failed("the From or To address is not one".into());
    };
    let message = match Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
    {
        Ok(m) => m,
        Err(e) => return Sent::Failed(format!("the email could not be built: {e}")),
    };
    match deliver(sender, message, &format!("{}-{}", due.kind, due.id)).await {
        Ok(()) => Sent::Sent,
        Err(why) => Sent::Failed(why),
    }
}

/// Hands a message to the relay, or writes it as `<name>.eml`.
async fn deliver(sender: &Sender, message: Message, name: &str) -> Result<(), String> {
    match sender {
        Sender::Smtp(t) => t
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("the relay refused or was away: {e}")),
        Sender::Files(dir) => {
            let path = dir.join(format!("{name}.eml"));
            let (dir, file, bytes) = (dir.clone(), path.clone(), message.formatted());
            let written = tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir)?;
                std::fs::write(&file, bytes)
            })
            .await;
            match written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("{}: {e}", path.display())),
                Err(e) => Err(format!("{}: {e}", path.display())),
            }
        }
    }
}

/// Sends one email now, not from the queue (the console's sign-in links
/// and invitations, which are worth nothing once late): through the relay,
/// or written under `HAUL_DATA_DIR/mail` without one.
pub async fn send_now(config: &Config, to: &str, subject: &str, body: String) -> Result<(), String> {
    let (Ok(from), Ok(to)) = (config.mail_from.parse::<Mailbox>(), to.parse::<Mailbox>()) else {
        return Err("the From or To address is not one".into());
    };
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(subject.replace(['\r', '\n'], " "))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("the email could not be built: {e}"))?;
    let name = format!("console-{}", streams::ids::random_token(16));
    deliver(&Sender::new(config), message, &name).await
}

/// Sends due emails until the node stops.
pub async fn run(s: AppState, mut stop: watch::Receiver<bool>) {
    let sender = Sender::new(&s.config);
    loop {
        let now = s.payments.now();
        match mail::claim_due(&s.pool, now, BATCH, LEASE_MS).await {
            Ok(due) => {
                for d in due {
                    let sent = send_one(&s, &sender, &d).await;
                    match &sent {
                        // The address is the buyer's: never logged.
                        Sent::Failed(why) => {
                            tracing::warn!(email = %d.id, kind = %d.kind, %why, "a buyer's email was not sent: retried")
                        }
                        _ => tracing::info!(email = %d.id, kind = %d.kind, "buyer's email done"),
                    }
                    if let Err(e) = mail::record(&s.pool, &d, &sent, s.payments.now()).await {
                        tracing::warn!(email = %d.id, error = %e, "a buyer's email could not be recorded");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not look for buyers' emails"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}
