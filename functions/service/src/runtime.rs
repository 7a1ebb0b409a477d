//! The Lambda bootstrap every binary shares: logging, init failures, the HTTP event loop.

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_runtime::{LambdaEvent, service_fn};

/// Starts logging to stdout: JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON`, the level from
/// `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (default INFO). Call it first thing in `main`.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Logs why initialisation failed (one line naming what to fix) and hands the error back for
/// `main` to return, so Lambda reports an init error instead of serving with bad configuration.
pub fn init_failed<E>(error: E) -> lambda_runtime::Error
where
    E: Display + Into<lambda_runtime::Error>,
{
    tracing::error!(error = %error, "initialisation failed");
    error.into()
}

/// Serves API Gateway HTTP API events with `handler`, which answers every event (refusals and
/// failures included) with an HTTP response.
pub async fn serve_http<H, F>(handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(ApiGatewayV2httpRequest) -> F,
    F: Future<Output = ApiGatewayV2httpResponse>,
{
    lambda_runtime::run(service_fn(|event: LambdaEvent<ApiGatewayV2httpRequest>| {
        let response = handler(event.payload);
        async move { Ok::<_, Infallible>(response.await) }
    }))
    .await
}
