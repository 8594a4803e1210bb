//! `GET /v1/status` (`GET /metrics` is on the admin listener, `admin.rs`).

use actix_web::{HttpResponse, web};
use base64::Engine;

use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/status", web::get().to(status));
}

async fn status(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "server_name": state.server_name().as_str(),
        "version": env!("CARGO_PKG_VERSION"),
        "server_key": base64::engine::general_purpose::STANDARD.encode(state.identity().server_key.public().as_bytes()),
        "tls_fingerprint": state.identity().fingerprint(),
    }))
}
