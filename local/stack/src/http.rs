//! The public HTTP API on localhost: each request becomes the API Gateway v2 event the cloud
//! would deliver, answered by the very `accept` and `respond` handlers.

use std::sync::Arc;

use aftersales_service::handlers::{accept, respond};
use aws_lambda_events::apigw::{
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription, ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body as LambdaBody;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine;

/// What the handler refuses with 413 (`payload_too_large`) is 256 KiB; axum lets a little more
/// through so the handler, not axum, gives the documented answer.
pub const BODY_LIMIT: usize = 512 * 1024;

pub struct Handlers {
    pub accept: accept::Deps,
    pub respond: respond::Deps,
}

pub fn router(handlers: Arc<Handlers>) -> Router {
    Router::new()
        .fallback(route)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(handlers)
}

async fn route(
    State(handlers): State<Arc<Handlers>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let event = event(&method, &uri, headers, &body);
    let path = uri.path();
    let answer = if path == accept::ROUTE {
        accept::handle(event, &handlers.accept).await
    } else if path.starts_with("/v1/tickets/") {
        respond::handle(event, &handlers.respond).await
    } else {
        not_found()
    };
    response(answer)
}

/// The event API Gateway (payload format 2.0) builds; the body is passed base64-encoded, so the
/// signature is checked over the exact bytes received.
fn event(method: &Method, uri: &Uri, headers: HeaderMap, body: &[u8]) -> ApiGatewayV2httpRequest {
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = method.clone();
    http.path = Some(uri.path().to_owned());
    http.protocol = Some("HTTP/1.1".to_owned());
    http.source_ip = Some("127.0.0.1".to_owned());
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.http = http;
    context.route_key = Some("$default".to_owned());
    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".to_owned());
    event.route_key = Some("$default".to_owned());
    event.raw_path = Some(uri.path().to_owned());
    event.raw_query_string = Some(uri.query().unwrap_or_default().to_owned());
    event.headers = headers;
    event.request_context = context;
    if !body.is_empty() {
        event.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
        event.is_base64_encoded = true;
    }
    event
}

fn not_found() -> ApiGatewayV2httpResponse {
    let body = serde_json::json!({"error": {"code": "not_found", "message": "no such route"}});
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = 404;
    response.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.body = Some(LambdaBody::Text(body.to_string()));
    response
}

fn response(answer: ApiGatewayV2httpResponse) -> Response {
    let status = u16::try_from(answer.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let bytes: Vec<u8> = match answer.body {
        Some(LambdaBody::Text(text)) => text.into_bytes(),
        Some(LambdaBody::Binary(bytes)) => bytes,
        _ => Vec::new(),
    };
    let bytes = if answer.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(&bytes)
            .unwrap_or(bytes)
    } else {
        bytes
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = answer.headers;
    response
}
