//! The control endpoints: `GET /__stats` and `POST /__reset`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, SERVER};
use http::{HeaderMap, StatusCode};

use crate::Shared;

/// A `200` JSON response that caches must not store.
fn json(body: Vec<u8>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(SERVER, HeaderValue::from_static("origin-mock"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::OK;
    *response.headers_mut() = headers;
    response
}

/// `GET /__stats`: `{"total": N, "paths": {..}, "requests": {..}}`.
pub(crate) async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    match serde_json::to_vec(&shared.stats.snapshot()) {
        Ok(body) => json(body),
        Err(err) => crate::respond::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("origin-mock: stats: {err}\n"),
        ),
    }
}

/// `POST /__reset`: zeroes all counts.
pub(crate) async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.stats.reset();
    json(br#"{"reset":true}"#.to_vec())
}
