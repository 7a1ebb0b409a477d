//! The `accept` Lambda: `POST /v1/requests` (`aftersales_service::handlers::accept`).

use std::sync::Arc;

use aftersales_service::adapters::workflow::StepFunctionsWorkflow;
use aftersales_service::clock::SystemClock;
use aftersales_service::handlers::accept::{Config, Deps, handle};
use aftersales_service::runtime::{aws_config, init_failed, init_tracing, serve_http};
use aftersales_service::store::DynamoStore;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let config = Config::from_env().map_err(init_failed)?;
    let aws = aws_config().map_err(init_failed)?;
    let secrets = config
        .webhook_secret
        .load(&aws)
        .await
        .map_err(init_failed)?;
    let deps = Deps {
        store: Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            config.tables,
        )),
        workflow: Arc::new(StepFunctionsWorkflow::new(
            aws_sdk_sfn::Client::new(&aws),
            config.state_machine_arn,
        )),
        clock: Arc::new(SystemClock),
        policy: Arc::new(config.policy),
        secrets,
    };
    serve_http(|event| handle(event, &deps)).await
}
