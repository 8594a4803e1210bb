//! `GET /v1/status` and `GET /metrics`.

use actix_web::{HttpResponse, web};
use base64::Engine;

use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/status", web::get().to(status))
        .route("/metrics", web::get().to(metrics));
}

async fn status(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "server_name": state.server_name().as_str(),
        "version": env!("CARGO_PKG_VERSION"),
        "server_key": base64::engine::general_purpose::STANDARD.encode(state.identity().server_key.public().as_bytes()),
        "tls_fingerprint": state.identity().fingerprint(),
    }))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state
        .metrics()
        .connections
        .set(state.push().connected() as i64);
    state
        .metrics()
        .wakeup_queue
        .set(state.push().pending_wakeups() as i64);
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics().encode())
}
