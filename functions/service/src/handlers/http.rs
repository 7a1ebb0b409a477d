//! What the HTTP handlers (`accept`, `respond`) share: the API's error codes and body, the
//! checks every signed request passes, and JSON answers over API Gateway HTTP API (payload v2)
//! events. The contract is `docs/api.md`; `docs/openapi.yaml` is tested against this module.

use std::fmt;

use aftersales_domain::RequestError;
use aftersales_domain::request::ErrorCode as RequestErrorCode;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue, Method, header};
use base64::Engine;
use jiff::Timestamp;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::signature::{SIGNATURE_HEADER, SignatureError, WebhookSecret, verify_with_any};
use crate::store::StoreError;

/// Largest request body accepted (after base64 decoding), in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Every error code the HTTP API answers with, and its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidSignature,
    StaleSignature,
    InvalidJson,
    InvalidField,
    PayloadTooLarge,
    UnsupportedMediaType,
    NotFound,
    MethodNotAllowed,
    Conflict,
    /// A dependency (store, workflow engine) is briefly unavailable: send the same request again.
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::InvalidSignature,
        ErrorCode::StaleSignature,
        ErrorCode::InvalidJson,
        ErrorCode::InvalidField,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidSignature => "invalid_signature",
            ErrorCode::StaleSignature => "stale_signature",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidSignature | ErrorCode::StaleSignature => 401,
            ErrorCode::InvalidJson | ErrorCode::InvalidField => 400,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused request: becomes `{"error": {"code", "message", "field"?}}` with the code's
/// status. Messages never carry personal data, so they may be logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// The field at fault, `lines[1].disposition`.
    pub field: Option<String>,
    /// For 405: the methods the route takes.
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            field: None,
            allow: None,
        }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(ErrorCode::InvalidField, message)
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Conflict, message)
    }

    pub fn method_not_allowed(allow: &'static str) -> ApiError {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("this route takes {allow}"),
            )
        }
    }

    /// The API error body.
    pub fn body(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), self.code.as_str().into());
        error.insert("message".into(), self.message.clone().into());
        if let Some(field) = &self.field {
            error.insert("field".into(), field.clone().into());
        }
        serde_json::json!({ "error": error })
    }

    pub fn into_response(self) -> ApiGatewayV2httpResponse {
        let mut response = json_response(self.code.status(), &self.body());
        if let Some(allow) = self.allow {
            response
                .headers
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }

    /// Logs the refusal by code, field and status only: never the body.
    pub fn log(&self) {
        let status = self.code.status();
        let field = self.field.as_deref().unwrap_or("");
        if status >= 500 {
            tracing::error!(status, code = %self.code, field, message = %self.message, "request failed");
        } else {
            tracing::info!(status, code = %self.code, field, "request refused");
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> ApiError {
        let code = match e.code {
            RequestErrorCode::InvalidJson => ErrorCode::InvalidJson,
            RequestErrorCode::InvalidField => ErrorCode::InvalidField,
        };
        ApiError {
            field: e.field,
            ..ApiError::new(code, e.message)
        }
    }
}

impl From<SignatureError> for ApiError {
    fn from(e: SignatureError) -> ApiError {
        let code = match e {
            SignatureError::Stale { .. } => ErrorCode::StaleSignature,
            SignatureError::Missing | SignatureError::Malformed(_) | SignatureError::NoMatch => {
                ErrorCode::InvalidSignature
            }
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(_) => ApiError::not_found("no such ticket"),
            StoreError::Conflict(_) => {
                ApiError::conflict("the ticket changed at the same time; send the request again")
            }
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "the ticket store is briefly unavailable; send the same request again",
                )
            }
            StoreError::Corrupt(_) | StoreError::CapExceeded { .. } => {
                tracing::error!(error = %e, "store error");
                ApiError::new(ErrorCode::Internal, "the request could not be processed")
            }
        }
    }
}

/// A JSON answer with `content-type: application/json` that no cache keeps.
pub fn json_response(status: u16, body: &Value) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(Body::Text(body.to_string()));
    response
}

/// The request's method (`requestContext.http.method`).
pub fn method(event: &ApiGatewayV2httpRequest) -> &Method {
    &event.request_context.http.method
}

/// The request path without a named stage's prefix (`/prod/v1/requests` → `/v1/requests`).
pub fn path(event: &ApiGatewayV2httpRequest) -> &str {
    let raw = event
        .raw_path
        .as_deref()
        .or(event.request_context.http.path.as_deref())
        .unwrap_or("/");
    match event.request_context.stage.as_deref() {
        Some(stage) if !stage.is_empty() && stage != "$default" => raw
            .strip_prefix('/')
            .and_then(|rest| rest.strip_prefix(stage))
            .filter(|rest| rest.starts_with('/'))
            .unwrap_or(raw),
        _ => raw,
    }
}

/// The value of `name` when the request carries it once as visible ASCII.
pub fn header<'a>(event: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    event.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The raw body bytes, base64-decoded when API Gateway encoded them.
pub fn raw_body(event: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, ApiError> {
    let body = event.body.as_deref().unwrap_or("");
    if event.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| ApiError::new(ErrorCode::InvalidJson, "the body is not valid base64"))
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

/// Checks `X-Aftersales-Signature` over `body` against any of `secrets`.
pub fn check_signature(
    event: &ApiGatewayV2httpRequest,
    body: &[u8],
    secrets: &[WebhookSecret],
    now: Timestamp,
) -> Result<(), ApiError> {
    verify_with_any(header(event, SIGNATURE_HEADER), body, secrets, now)?;
    Ok(())
}

/// The body must be `application/json`, with no charset but UTF-8 (RFC 8259).
pub fn check_json_content_type(event: &ApiGatewayV2httpRequest) -> Result<(), ApiError> {
    let refuse = |what: &str| {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("the body must be application/json, not {what}"),
        ))
    };
    let Some(value) = header(event, header::CONTENT_TYPE.as_str()) else {
        return refuse("an undeclared type");
    };
    let mut parts = value.split(';');
    let media_type = parts.next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return refuse(if media_type.is_empty() {
            "an undeclared type"
        } else {
            media_type
        });
    }
    for parameter in parts {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        if name.trim().eq_ignore_ascii_case("charset")
            && !value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        {
            return refuse("a charset other than utf-8");
        }
    }
    Ok(())
}

/// The checks of a signed JSON `POST`, in the contract's order: the signature over the raw
/// bytes (nothing is parsed before it holds), the size limit, the content type. Returns the
/// raw body for parsing.
pub fn signed_json_body(
    event: &ApiGatewayV2httpRequest,
    secrets: &[WebhookSecret],
    now: Timestamp,
) -> Result<Vec<u8>, ApiError> {
    let body = raw_body(event)?;
    check_signature(event, &body, secrets, now)?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the body is {} bytes; at most {MAX_BODY_BYTES} are accepted",
                body.len()
            ),
        ));
    }
    check_json_content_type(event)?;
    Ok(body)
}

/// SHA-256 (hex) of a value's canonical JSON: what a request or response is recognised by.
pub fn fingerprint<T: serde::Serialize>(value: &T) -> Result<String, ApiError> {
    let bytes = serde_json::to_vec(value).map_err(|e| {
        tracing::error!(error = %e, "cannot serialise for a fingerprint");
        ApiError::new(ErrorCode::Internal, "the request could not be processed")
    })?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(path: &str, stage: &str) -> ApiGatewayV2httpRequest {
        serde_json::from_value(serde_json::json!({
            "version": "2.0", "rawPath": path, "headers": {"content-type": "application/json; charset=UTF-8"},
            "requestContext": {"stage": stage, "http": {"method": "POST", "path": path}},
            "isBase64Encoded": false
        }))
        .unwrap()
    }

    #[test]
    fn a_named_stage_prefix_is_not_part_of_the_route() {
        assert_eq!(path(&event("/prod/v1/requests", "prod")), "/v1/requests");
        assert_eq!(path(&event("/v1/requests", "$default")), "/v1/requests");
        assert_eq!(path(&event("/production/x", "prod")), "/production/x");
    }

    #[test]
    fn json_with_a_utf8_charset_is_accepted_and_other_charsets_are_not() {
        let mut e = event("/v1/requests", "$default");
        assert_eq!(check_json_content_type(&e), Ok(()));
        e.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=latin1"),
        );
        assert_eq!(
            check_json_content_type(&e).unwrap_err().code,
            ErrorCode::UnsupportedMediaType
        );
    }

    #[test]
    fn every_code_has_a_distinct_name() {
        let names: std::collections::BTreeSet<_> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }
}
