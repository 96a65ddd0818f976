//! Seller API: streams and their lots.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use streams::ids::{LotId, StreamId};
use streams::service::{LotPatch, NewLot, NewStream};

use super::{list, PageQuery};
use crate::http::error::ApiError;
use crate::http::extract::{id, Json, Seller};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/streams", post(create).get(list_streams))
        .route("/v1/streams/{id}", get(get_stream))
        .route("/v1/streams/{id}/live", post(go_live))
        .route("/v1/streams/{id}/end", post(end))
        .route("/v1/streams/{id}/unpin", post(unpin))
        .route("/v1/streams/{id}/messages", post(message))
        .route("/v1/streams/{id}/lots", post(add_lot).get(list_lots))
        .route("/v1/lots/{id}", get(get_lot).patch(update_lot).delete(delete_lot))
        .route("/v1/lots/{id}/pin", post(pin))
        .route("/v1/lots/{id}/archive", post(archive))
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

fn ok<T: serde::Serialize>(status: StatusCode, v: &T) -> Answer {
    Ok((status, axum::Json(serde_json::to_value(v).map_err(ApiError::internal)?)))
}

async fn create(State(s): State<AppState>, Seller(seller): Seller, Json(body): Json<NewStream>) -> Answer {
    ok(StatusCode::CREATED, &s.streams.create_stream(&seller, body).await?)
}

async fn list_streams(
    State(s): State<AppState>,
    Seller(seller): Seller,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let page = q.page()?;
    let items = s.streams.list_streams(&seller, page).await?;
    Ok((StatusCode::OK, axum::Json(list(&items, |x| x.created_at, page.limit))))
}

async fn get_stream(State(s): State<AppState>, Seller(seller): Seller, Path(raw): Path<String>) -> Answer {
    let sid = id(&raw, StreamId::parse)?;
    ok(StatusCode::OK, &s.streams.stream(&seller, &sid).await?)
}

async fn go_live(State(s): State<AppState>, Seller(seller): Seller, Path(raw): Path<String>) -> Answer {
    let sid = id(&raw, StreamId::parse)?;
    ok(StatusCode::OK, &s.streams.go_live(&seller, &sid).await?)
}

async fn end(State(s): State<AppState>, Seller(seller): Seller, Path(raw): Path<String>) -> Answer {
    let sid = id(&raw, StreamId::parse)?;
    ok(StatusCode::OK, &s.streams.end_stream(&seller, &sid).await?)
}

async fn unpin(State(s): State<AppState>, Seller(seller): Seller, Path(raw): Path<String>) -> Answer {
    let sid = id(&raw, StreamId::parse)?;
    ok(StatusCode::OK, &s.streams.unpin_lot(&seller, &sid).await?)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Message {
    text: String,
}

async fn message(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path(raw): Path<String>,
    Json(body): Json<Message>,
) -> Answer {
    let sid = id(&raw, StreamId::parse)?;
    s.streams.post_message(&seller, &sid, &body.text).await?;
    // Answered once the note is in the channel (on Redis, for every node's
    // viewers): notes a streamer sends one after another, through any
    // nodes, reach viewers in that order.
    s.hub.engine().drain(std::time::Duration::from_secs(1)).await;
    ok(StatusCode::ACCEPTED, &serde_json::json!({ "sent": true }))
}

async fn add_lot(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path(raw): Path<String>,
    Json(body): Json<NewLot>,
) -> Answer {
    let sid = id(&raw, StreamId::parse)?;
    ok(StatusCode::CREATED, &s.streams.add_lot(&seller, &sid, body).await?)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LotsQuery {
    /// Archived lots too.
    #[serde(default)]
    archived: bool,
}

async fn list_lots(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path(raw): Path<String>,
    q: Result<Query<LotsQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let sid = id(&raw, StreamId::parse)?;
    let lots = s.streams.lots(&seller, &sid, q.archived).await?;
    ok(StatusCode::OK, &serde_json::json!({ "data": lots }))
}

/// Archives a lot: kept for its orders, no longer listed, pinned or offered.
async fn archive(State(s): State<AppState>, Seller(seller): Seller, Path(raw): Path<String>) -> Answer {
    let lid = id(&raw, LotId::parse)?;
    ok(StatusCode::OK, &s.streams.archive_lot(&seller, &lid).await?)
}

/// Deletes a lot that was never offered.
async fn delete_lot(State(s): State<AppState>, Seller(seller): Seller, Path(raw): Path<String>) -> Answer {
    let lid = id(&raw, LotId::parse)?;
    s.streams.delete_lot(&seller, &lid).await?;
    ok(StatusCode::OK, &serde_json::json!({ "id": lid, "deleted": true }))
}

async fn get_lot(State(s): State<AppState>, Seller(seller): Seller, Path(raw): Path<String>) -> Answer {
    let lid = id(&raw, LotId::parse)?;
    ok(StatusCode::OK, &s.streams.lot(&seller, &lid).await?)
}

async fn update_lot(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path(raw): Path<String>,
    Json(body): Json<LotPatch>,
) -> Answer {
    let lid = id(&raw, LotId::parse)?;
    ok(StatusCode::OK, &s.streams.update_lot(&seller, &lid, body).await?)
}

async fn pin(State(s): State<AppState>, Seller(seller): Seller, Path(raw): Path<String>) -> Answer {
    let lid = id(&raw, LotId::parse)?;
    ok(StatusCode::OK, &s.streams.pin_lot(&seller, &lid).await?)
}
