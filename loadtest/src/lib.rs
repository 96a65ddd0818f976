//! The load and fault scenarios' library: `faults` (run by `loadtest
//! faults` and, short, by the test suite) and the HTTP helpers every
//! scenario shares.

use serde_json::Value;

pub mod faults;

/// A command-line flag's whole-number value within `lo..=hi`.
pub fn number(flag: &str, value: &str, lo: u64, hi: u64) -> Result<u64, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or_else(|| format!("{flag} must be a whole number from {lo} to {hi}"))
}

#[derive(Debug)]
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

/// A call's status and JSON body.
pub async fn call(req: reqwest::RequestBuilder) -> Result<(u16, Value), Failure> {
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await?;
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)?
    };
    Ok((status, value))
}

pub async fn expect(req: reqwest::RequestBuilder, want: u16, what: &str) -> Result<Value, Failure> {
    let (status, body) = call(req).await?;
    if status != want {
        return Err(Failure(format!("{what}: HTTP {status}: {body}")));
    }
    Ok(body)
}

pub fn text(v: &Value, key: &str) -> Result<String, Failure> {
    v[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Failure(format!("no {key} in {v}")))
}
