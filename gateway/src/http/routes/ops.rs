//! Health, readiness, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/healthz",
            get(|| async { (StatusCode::OK, axum::Json(json!({ "status": "ok" }))) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(crate::http::openapi::document()) }),
        )
}

/// Ready when the durable store and the stock engine both answer.
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let db = s.streams.store().ping().await.is_ok();
    let engine = s.streams.inventory().ping().await.is_ok();
    let status = if db && engine {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    (
        status,
        axum::Json(json!({ "database": word(db), "stock_engine": word(engine) })),
    )
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let live = s.streams.inventory().live_holds().await.ok();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        s.metrics.render(live, &s.hub.offers_ended())
            + &format!(
                "# HELP haul_acquirer_accounts_out_of_rotation Bank accounts this node skips after outages.\n\
                 # TYPE haul_acquirer_accounts_out_of_rotation gauge\n\
                 haul_acquirer_accounts_out_of_rotation {}\n",
                s.payments.breakers().open()
            )
            + &crate::realtime::render_metrics(&s.realtime, &s.hub),
    )
}
