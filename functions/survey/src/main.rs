//! The survey Lambda: a workflow step (`aftersales_service::handlers::steps::survey`).

use aftersales_service::handlers::steps::config::SurveyConfig;
use aftersales_service::handlers::steps::{serve, survey};
use aftersales_service::runtime::{aws_config, init_failed, init_tracing};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let config = SurveyConfig::from_env().map_err(init_failed)?;
    let aws = aws_config().map_err(init_failed)?;
    let deps = config.deps(
        aws_sdk_dynamodb::Client::new(&aws),
        aws_sdk_sqs::Client::new(&aws),
    );
    serve(|input| survey::handle(input, &deps)).await
}
