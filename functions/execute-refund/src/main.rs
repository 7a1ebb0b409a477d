//! The execute-refund Lambda: a workflow step
//! (`aftersales_service::handlers::steps::execute_refund`).

use aftersales_service::handlers::steps::config::RefundConfig;
use aftersales_service::handlers::steps::{execute_refund, serve};
use aftersales_service::runtime::{aws_config, init_failed, init_tracing};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let config = RefundConfig::from_env().map_err(init_failed)?;
    let aws = aws_config().map_err(init_failed)?;
    let deps = config.deps(&aws).await.map_err(init_failed)?;
    serve(|input| execute_refund::handle(input, &deps)).await
}
