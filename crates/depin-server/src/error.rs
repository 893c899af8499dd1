//! Every error leaves the server as `{ "error": code, "message": text }` with
//! a 4xx/5xx status (DESIGN invariant 8). Codes are reason codes where the
//! protocol has one, else a small fixed set.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use depin_coordinator::CoordError;
use depin_core::Reason;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// A well-formed number the API cannot represent (the store keeps
    /// integers as i64, so anything above `i64::MAX` is refused here).
    pub fn out_of_range(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "out_of_range", message)
    }
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", message)
    }
    pub fn uri_too_long(message: impl Into<String>) -> Self {
        Self::new(StatusCode::URI_TOO_LONG, "uri_too_long", message)
    }
    pub fn too_many_connections(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            message,
        )
    }

    /// The JSON body every error carries. Public to the crate so that the
    /// accept loop, which answers before any request exists, sends the very
    /// same shape.
    pub(crate) fn body(&self) -> serde_json::Value {
        json!({ "error": self.code, "message": self.message })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        metrics::counter!("depin_http_errors_total", "code" => self.code).increment(1);
        (self.status, Json(self.body())).into_response()
    }
}

fn reason_status(reason: Reason) -> StatusCode {
    match reason {
        Reason::UnknownSigner => StatusCode::UNAUTHORIZED,
        Reason::BadSignature | Reason::BadCertificate | Reason::RevokedDevice => {
            StatusCode::FORBIDDEN
        }
        Reason::AlreadyRegistered | Reason::ReplayedSequence | Reason::LateReport => {
            StatusCode::CONFLICT
        }
        Reason::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Reason::InsufficientEscrow => StatusCode::PAYMENT_REQUIRED,
        Reason::DepositConflict | Reason::OrderConflict => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// A storage failure: nothing was stored, and the client may retry. The
/// agent treats every 5xx as retryable, so acknowledged means committed.
fn unavailable(message: String) -> ApiError {
    crate::metrics::store_error("request");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        format!("the coordinator could not store this (nothing was kept; retry later): {message}"),
    )
}

impl From<CoordError> for ApiError {
    fn from(e: CoordError) -> Self {
        match e {
            CoordError::Unavailable(m) => unavailable(m),
            CoordError::Store(e) if e.is_unavailable() => unavailable(e.to_string()),
            CoordError::Rejected { reason, message } => {
                ApiError::new(reason_status(reason), reason.as_str(), message)
            }
            CoordError::NotFound(m) => ApiError::not_found(m),
            e @ CoordError::NotDue { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not_due", e.to_string())
            }
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

impl From<depin_store::StoreError> for ApiError {
    fn from(e: depin_store::StoreError) -> Self {
        if e.is_unavailable() {
            unavailable(e.to_string())
        } else {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
    }
}
