//! The Centrifugo client protocol (version 2), JSON encoding: what a frame
//! from a client may hold, and the replies, pushes, error and disconnect codes
//! Haul answers with. Schema: `centrifugal/protocol`, `definitions/client.proto`.
//!
//! A frame carries one or more commands, one JSON object per line. Every
//! command has an `id` (> 0) and exactly one request field; an empty object is
//! the client's pong to the server's ping (also `{}`).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Errors in replies, as Centrifugo numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Internal = 100,
    Unauthorized = 101,
    UnknownChannel = 102,
    PermissionDenied = 103,
    MethodNotFound = 104,
    AlreadySubscribed = 105,
    LimitExceeded = 106,
    BadRequest = 107,
    NotAvailable = 108,
    TokenExpired = 109,
    TooManyRequests = 111,
}

/// An application error of an RPC (codes from 1000 up are the application's).
/// The message is Haul's stable error code (`sold_out`, `over_buyer_limit`, …).
pub const APP_REFUSED: u32 = 1409;
pub const APP_NOT_FOUND: u32 = 1404;
pub const APP_INVALID: u32 = 1422;

/// Why the server closes a connection: the WebSocket close code and reason.
/// Codes 3000–3499 tell the SDK to reconnect, 3500–3999 not to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// The node is going away; reconnect (to another node) and recover.
    Shutdown,
    /// The client could not read fast enough; reconnect and recover.
    Slow,
    /// The client did not answer pings.
    NoPong,
    /// Publications may have been lost on the way to this node; reconnect and
    /// recover them from the shared history.
    InsufficientState,
    /// A malformed or unexpected command.
    BadRequest,
    /// The connection token is invalid.
    InvalidToken,
    /// The connection token has expired.
    Expired,
    /// Too many connections or commands from one address.
    ConnectionLimit,
    /// The connection kept sending commands over its budget.
    TooManyRequests,
    /// A frame larger than the server reads (WebSocket's own 1009).
    MessageTooBig,
}

impl Disconnect {
    pub fn code(self) -> u16 {
        match self {
            Disconnect::Shutdown => 3001,
            Disconnect::Slow => 3008,
            Disconnect::NoPong => 3012,
            Disconnect::InsufficientState => 3010,
            Disconnect::InvalidToken => 3500,
            Disconnect::BadRequest => 3501,
            Disconnect::Expired => 3505,
            Disconnect::ConnectionLimit => 3508,
            Disconnect::MessageTooBig => 1009,
            Disconnect::TooManyRequests => 3013,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Disconnect::Shutdown => "shutdown",
            Disconnect::Slow => "slow",
            Disconnect::NoPong => "no pong",
            Disconnect::InsufficientState => "insufficient state",
            Disconnect::InvalidToken => "invalid token",
            Disconnect::BadRequest => "bad request",
            Disconnect::Expired => "expired",
            Disconnect::ConnectionLimit => "connection limit",
            Disconnect::MessageTooBig => "message too big",
            Disconnect::TooManyRequests => "too many requests",
        }
    }
}

/// `connect` request.
#[derive(Debug, Default, Deserialize)]
pub struct ConnectRequest {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
}

/// `subscribe` request.
#[derive(Debug, Deserialize)]
pub struct SubscribeRequest {
    pub channel: String,
    #[serde(default)]
    pub recover: bool,
    #[serde(default)]
    pub epoch: String,
    #[serde(default)]
    pub offset: u64,
}

/// `unsubscribe` request.
#[derive(Debug, Deserialize)]
pub struct UnsubscribeRequest {
    pub channel: String,
}

/// `rpc` request: `data` is kept raw and parsed by the method.
#[derive(Debug, Deserialize)]
pub struct RpcRequest {
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub data: Option<Box<RawValue>>,
}

/// One decoded command.
#[derive(Debug)]
pub enum Request {
    Connect(ConnectRequest),
    Subscribe(SubscribeRequest),
    Unsubscribe(UnsubscribeRequest),
    Ping,
    Rpc(RpcRequest),
    /// A request Haul does not serve (publish, presence, history, send, refresh…).
    Unsupported(&'static str),
}

#[derive(Debug)]
pub enum Frame {
    /// `{}`: the client's answer to a server ping.
    Pong,
    Command {
        id: u32,
        request: Request,
    },
}

/// Why a client frame was refused (the connection is closed with bad request).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("a command must be a JSON object")]
    NotAnObject,
    #[error("a command needs an id above 0")]
    MissingId,
    #[error("a command must carry exactly one request")]
    RequestCount,
    #[error("{0} request is malformed: {1}")]
    BadRequest(&'static str, String),
    #[error("unknown request field {0:?}")]
    Unknown(String),
}

const UNSUPPORTED: &[&str] = &[
    "publish",
    "presence",
    "presence_stats",
    "history",
    "send",
    "refresh",
    "sub_refresh",
];

fn field<T: serde::de::DeserializeOwned>(name: &'static str, v: Value) -> Result<T, FrameError> {
    serde_json::from_value(v).map_err(|e| FrameError::BadRequest(name, e.to_string()))
}

/// Decodes every command of one text frame.
pub fn parse_frame(text: &str) -> Result<Vec<Frame>, FrameError> {
    let mut out = Vec::new();
    for line in text.split('\n') {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        out.push(parse_command(line)?);
    }
    if out.is_empty() {
        return Err(FrameError::NotAnObject);
    }
    Ok(out)
}

fn parse_command(line: &str) -> Result<Frame, FrameError> {
    let v: Value = serde_json::from_str(line).map_err(|e| FrameError::Json(e.to_string()))?;
    let Value::Object(mut m) = v else {
        return Err(FrameError::NotAnObject);
    };
    if m.is_empty() {
        return Ok(Frame::Pong);
    }
    let id = match m.remove("id") {
        Some(Value::Number(n)) => n.as_u64().filter(|&n| n > 0 && n <= u32::MAX as u64),
        _ => None,
    }
    .ok_or(FrameError::MissingId)? as u32;
    if m.len() != 1 {
        return Err(FrameError::RequestCount);
    }
    let (name, body) = m.into_iter().next().ok_or(FrameError::RequestCount)?;
    let request = match name.as_str() {
        "connect" => Request::Connect(field("connect", body)?),
        "subscribe" => Request::Subscribe(field("subscribe", body)?),
        "unsubscribe" => Request::Unsubscribe(field("unsubscribe", body)?),
        "ping" => Request::Ping,
        "rpc" => Request::Rpc(field("rpc", body)?),
        other => match UNSUPPORTED.iter().find(|u| **u == other) {
            Some(u) => Request::Unsupported(u),
            None => return Err(FrameError::Unknown(other.chars().take(40).collect())),
        },
    };
    Ok(Frame::Command { id, request })
}

/// A reply carrying a result under `kind` (`connect`, `subscribe`, `rpc`, …).
pub fn reply(id: u32, kind: &str, result: Value) -> String {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(id));
    m.insert(kind.into(), result);
    Value::Object(m).to_string()
}

/// A reply carrying an error.
pub fn error_reply(id: u32, code: u32, message: &str) -> String {
    json!({ "id": id, "error": { "code": code, "message": message } }).to_string()
}

/// The push of one publication, as every subscriber of the channel gets it.
/// `data` is already JSON.
pub fn publication_push(channel: &str, data: &str, offset: u64) -> String {
    let data: &RawValue = serde_json::from_str(data).unwrap_or_else(|_| empty_object());
    json!({ "push": { "channel": channel, "pub": { "data": data, "offset": offset } } }).to_string()
}

/// A server-side unsubscribe push.
pub fn unsubscribe_push(channel: &str, code: u32, reason: &str) -> String {
    json!({ "push": { "channel": channel, "unsubscribe": { "code": code, "reason": reason } } }).to_string()
}

fn empty_object() -> &'static RawValue {
    // A constant, valid JSON text: cannot fail.
    static EMPTY: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| RawValue::from_string("{}".to_owned()).expect("{} is JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_commands_in_one_frame_are_decoded_in_order() {
        let frames = parse_frame(
            "{\"id\":1,\"connect\":{\"token\":\"t\",\"name\":\"js\"}}\n{\"id\":2,\"subscribe\":{\"channel\":\"a\"}}\n{}",
        )
        .unwrap();
        assert!(matches!(&frames[0], Frame::Command { id: 1, request: Request::Connect(c) } if c.token == "t"));
        assert!(matches!(&frames[1], Frame::Command { id: 2, request: Request::Subscribe(s) } if s.channel == "a"));
        assert!(matches!(frames[2], Frame::Pong));
    }

    #[test]
    fn malformed_commands_are_refused_with_a_reason() {
        assert!(matches!(parse_frame("{"), Err(FrameError::Json(_))));
        assert_eq!(parse_frame("[1]").unwrap_err(), FrameError::NotAnObject);
        assert_eq!(parse_frame("").unwrap_err(), FrameError::NotAnObject);
        assert_eq!(parse_frame("{\"ping\":{}}").unwrap_err(), FrameError::MissingId);
        assert_eq!(
            parse_frame("{\"id\":0,\"ping\":{}}").unwrap_err(),
            FrameError::MissingId
        );
        assert_eq!(
            parse_frame("{\"id\":-1,\"ping\":{}}").unwrap_err(),
            FrameError::MissingId
        );
        assert_eq!(parse_frame("{\"id\":1}").unwrap_err(), FrameError::RequestCount);
        assert_eq!(
            parse_frame("{\"id\":1,\"ping\":{},\"rpc\":{}}").unwrap_err(),
            FrameError::RequestCount
        );
        assert!(matches!(
            parse_frame("{\"id\":1,\"subscribe\":{\"channel\":5}}"),
            Err(FrameError::BadRequest("subscribe", _))
        ));
        assert!(matches!(
            parse_frame("{\"id\":1,\"bogus\":{}}"),
            Err(FrameError::Unknown(_))
        ));
        assert!(matches!(
            parse_frame("{\"id\":1,\"publish\":{}}").unwrap()[0],
            Frame::Command {
                request: Request::Unsupported("publish"),
                ..
            }
        ));
    }

    #[test]
    fn a_publication_push_embeds_the_event_json_as_is() {
        let push = publication_push("stream:x", "{\"type\":\"purchase\"}", 7);
        let v: Value = serde_json::from_str(&push).unwrap();
        assert_eq!(v["push"]["pub"]["data"]["type"], "purchase");
        assert_eq!(v["push"]["pub"]["offset"], 7);
        assert_eq!(v["push"]["channel"], "stream:x");
    }
}
