//! The bank transport over HTTP: the [`Call`]s each bank's protocol builds
//! are sent here, to the API base URL configured for that bank. Every call
//! has a time limit (`HAUL_ACQUIRER_TIMEOUT_MS`); a call that runs out of
//! time has an unknown result, which the payments domain never takes as a
//! refusal.

use std::time::Duration;

use payments::acquirers::{Bank, Body, Call, Method};
use payments::service::bank::Answer;
use payments::service::{Transport, TransportError};
use secrecy::ExposeSecret;

use crate::config::Config;

/// Sends bank calls with the shared HTTP client.
pub struct HttpTransport {
    http: reqwest::Client,
    timeout: Duration,
    tbank: String,
    cloudpayments: String,
    yookassa: String,
    stripe: String,
}

impl HttpTransport {
    pub fn new(http: reqwest::Client, config: &Config) -> Self {
        Self {
            http,
            timeout: config.acquirer_timeout,
            tbank: config.tbank_url.clone(),
            cloudpayments: config.cloudpayments_url.clone(),
            yookassa: config.yookassa_url.clone(),
            stripe: config.stripe_url.clone(),
        }
    }

    fn base_url(&self, bank: Bank) -> &str {
        match bank {
            Bank::TBank => &self.tbank,
            Bank::CloudPayments => &self.cloudpayments,
            Bank::YooKassa => &self.yookassa,
            Bank::Stripe => &self.stripe,
        }
    }
}

#[async_trait::async_trait]
impl Transport for HttpTransport {
    async fn send(&self, bank: Bank, call: Call) -> Answer {
        let url = format!("{}{}", self.base_url(bank), call.path);
        let mut r = match call.method {
            Method::Get => self.http.get(url),
            Method::Post => self.http.post(url),
        }
        .timeout(self.timeout);
        if let Some(auth) = &call.authorization {
            let mut value = reqwest::header::HeaderValue::from_str(auth.expose_secret())
                .map_err(|e| TransportError::Connect(Box::new(e)))?;
            value.set_sensitive(true);
            r = r.header(reqwest::header::AUTHORIZATION, value);
        }
        for (k, v) in call.headers {
            r = r.header(k, v);
        }
        r = match call.body {
            Body::Empty => r,
            Body::Json(v) => r.json(&v),
            Body::Form(pairs) => {
                let mut f = form_urlencoded::Serializer::new(String::new());
                for (k, v) in &pairs {
                    f.append_pair(k, v);
                }
                r.header("content-type", "application/x-www-form-urlencoded")
                    .body(f.finish())
            }
        };
        // Refused connections are an outage (nothing reached the bank);
        // anything later may have created a payment.
        let lost = |e: reqwest::Error| {
            if e.is_connect() {
                TransportError::Connect(Box::new(e))
            } else {
                TransportError::NoAnswer(Box::new(e))
            }
        };
        let r = r.send().await.map_err(lost)?;
        let status = r.status().as_u16();
        let body = r.bytes().await.map_err(|e| TransportError::NoAnswer(Box::new(e)))?;
        Ok((status, body.to_vec()))
    }
}
