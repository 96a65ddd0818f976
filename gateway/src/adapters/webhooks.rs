//! Delivering seller webhooks from the outbox ([`payments::outbox`]): a worker
//! claims due deliveries, checks the address, signs with the Standard
//! Webhooks scheme and records what happened. 2xx is delivered; 410 Gone
//! disables the endpoint; anything else is retried on the schedule. Every
//! address that is not globally reachable is refused, when the endpoint is
//! made and again when connecting, unless `HAUL_WEBHOOKS_ALLOW_PRIVATE`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use payments::outbox::{Attempted, Due};
use payments::webhook::signature_header;
use rand::Rng;
use tokio::sync::{watch, Semaphore};

use crate::state::AppState;

/// Deliveries in flight at once per node.
const CONCURRENCY: usize = 16;
/// A claim lasts this long: a node that dies mid-send frees it by then.
const LEASE_MS: i64 = 60_000;

/// Whether an address is one a webhook must not reach (SSRF): anything
/// but a globally reachable unicast address ([`super::addresses`]).
pub fn private(ip: IpAddr) -> bool {
    super::addresses::refused(ip).is_some()
}

/// Why a webhook URL is refused, if it is.
pub async fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "not a URL".to_owned())?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err("must be http or https".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials".into());
    }
    let host = parsed.host_str().ok_or("has no host")?;
    if allow_private {
        return Ok(());
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| "its host does not resolve".to_owned())?
            .map(|a| a.ip())
            .collect(),
    };
    if addrs.is_empty() || addrs.iter().any(|ip| private(*ip)) {
        return Err("private or loopback addresses are not allowed".into());
    }
    Ok(())
}

/// Resolves webhook hosts to public addresses only, at connection time: a
/// name that answered a public address when checked and a private one when
/// connecting (DNS rebinding) gets no connection.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !private(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The client deliveries are sent with: no redirects, a 10 s limit and,
/// unless private addresses are allowed, public addresses only.
pub fn client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Haul-Webhooks/", env!("CARGO_PKG_VERSION")));
    if allow_private {
        builder.build()
    } else {
        builder.dns_resolver(Arc::new(PublicOnly)).build()
    }
}

/// Claims and sends due deliveries until the node stops.
pub async fn run(s: AppState, mut stop: watch::Receiver<bool>) {
    let client = match client(s.config.webhooks_allow_private) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook client could not be built; webhooks are not delivered");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    loop {
        match s.payments.claim_deliveries(CONCURRENCY as i64, LEASE_MS).await {
            Ok(due) => {
                for d in due {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let (s, client) = (s.clone(), client.clone());
                    tokio::spawn(async move {
                        deliver(&s, &client, &d).await;
                        drop(permit);
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not claim webhook deliveries"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn deliver(s: &AppState, client: &reqwest::Client, d: &Due) {
    let result = attempt(s, client, d).await;
    if let Attempted::Failed { status: Some(410), .. } = &result {
        tracing::warn!(endpoint = %d.endpoint.id, "webhook endpoint answered 410 Gone: disabled");
        if let Err(e) = s.payments.disable_endpoint(&d.endpoint.id, "answered 410 Gone").await {
            tracing::error!(error = %e, "could not disable a webhook endpoint");
        }
    }
    let jitter = rand::rng().random::<f64>();
    match s.payments.record_delivery(d, &result, jitter).await {
        Ok(next) => {
            tracing::debug!(message = %d.message_id, endpoint = %d.endpoint.id, ?result, ?next, "webhook attempt")
        }
        Err(e) => tracing::error!(error = %e, "could not record a webhook attempt"),
    }
}

async fn attempt(s: &AppState, client: &reqwest::Client, d: &Due) -> Attempted {
    if let Err(why) = check_url(&d.endpoint.url, s.config.webhooks_allow_private).await {
        return Attempted::Failed {
            status: None,
            error: format!("refused address: {why}"),
        };
    }
    let now = s.payments.now();
    let ts = now / 1000;
    let signature = signature_header(
        &d.endpoint.signing_secrets(now),
        &d.message_id,
        ts,
        d.payload.as_bytes(),
    );
    let sent = client
        .post(&d.endpoint.url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.message_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(d.payload.clone())
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => Attempted::Delivered {
            status: r.status().as_u16(),
        },
        Ok(r) if r.status().as_u16() == 410 => Attempted::Failed {
            status: Some(410),
            error: "gone".into(),
        },
        Ok(r) => Attempted::Retry {
            status: Some(r.status().as_u16()),
            error: format!("answered {}", r.status()),
        },
        Err(e) => Attempted::Retry {
            status: None,
            error: if e.is_timeout() {
                "timed out".into()
            } else {
                "could not connect".into()
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(!private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_get_no_connection() {
        // `localhost` resolves to loopback: refused at connection time even
        // though nothing checked the URL first (a rebinding name looks so).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let strict = client(false).unwrap();
        let err = strict
            .post(format!("http://localhost:{port}/hook"))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_connect() || err.is_request(), "{err:?}");
        let mut source: Option<&dyn std::error::Error> = Some(&err);
        let mut chain = String::new();
        while let Some(e) = source {
            chain.push_str(&e.to_string());
            source = e.source();
        }
        assert!(chain.contains("no public address"), "{chain}");
        // Allowed for development: the same name connects.
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let open = client(true).unwrap();
        let r = open.post(format!("http://localhost:{port}/hook")).send().await.unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn webhook_urls_are_checked() {
        assert!(check_url("https://93.184.216.34/hooks", false).await.is_ok());
        for bad in [
            "ftp://93.184.216.34/",
            "https://user:pw@93.184.216.34/",
            "not a url",
            "http://127.0.0.1:9/x",
            "http://[::1]/x",
            "http://10.0.0.5/x",
        ] {
            assert!(check_url(bad, false).await.is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9/x", true).await.is_ok());
    }
}
