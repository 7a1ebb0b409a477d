//! The notify Lambda: a workflow step (`aftersales_service::handlers::steps::notify`).

use aftersales_service::handlers::steps::config::NotifyConfig;
use aftersales_service::handlers::steps::{notify, serve};
use aftersales_service::runtime::{aws_config, init_failed, init_tracing};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let config = NotifyConfig::from_env().map_err(init_failed)?;
    let aws = aws_config().map_err(init_failed)?;
    let deps = config.deps(&aws).await.map_err(init_failed)?;
    serve(|input| notify::handle(input, &deps)).await
}
