//! The propose Lambda: a workflow step (`aftersales_service::handlers::steps::propose`).

use aftersales_service::handlers::steps::config::RulesConfig;
use aftersales_service::handlers::steps::{propose, serve};
use aftersales_service::runtime::{aws_config, init_failed, init_tracing};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let config = RulesConfig::from_env().map_err(init_failed)?;
    let aws = aws_config().map_err(init_failed)?;
    let deps = config.propose_deps(aws_sdk_dynamodb::Client::new(&aws));
    serve(|input| propose::handle(input, &deps)).await
}
