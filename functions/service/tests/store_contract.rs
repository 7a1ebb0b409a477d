//! The store contract (`aftersales_service::testing::store_contract`) against the in-process
//! `MemoryStore` (module `memory`) and `DynamoStore` on a moto server through the real AWS SDK
//! client (module `dynamodb`, fresh tables per test; `scripts/moto.sh` installs moto). The
//! local stack runs the same behaviours on its durable store (`local/stack/tests/store.rs`).
//! Moto gets this binary's DynamoDB requests one at a time (see [`one_at_a_time`]), as
//! DynamoDB serialises conflicting writes.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use aftersales_service::store::{DynamoStore, MemoryStore, TableNames, create_tables};
use aftersales_service::testing::moto;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector,
    http_client_fn,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;

fn memory_store() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new())
}

/// A store on tables no other test in this run uses (tests share one moto server).
async fn dynamo_store() -> Arc<DynamoStore> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let prefix = format!(
        "contract-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let sdk = moto::shared().sdk_config().await;
    let plain_http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .http_client(one_at_a_time(plain_http))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let names = TableNames::with_prefix(&prefix);
    create_tables(&client, &names).await.unwrap();
    Arc::new(DynamoStore::new(client, names))
}

/// Moto's `TransactWriteItems` is not atomic across its request threads: it checks each
/// condition and writes item by item, and undoes a cancelled transaction by restoring a table
/// snapshot taken when it began, which also erases writes that other requests made meanwhile.
/// DynamoDB serialises conflicting transactions; to emulate that, this test binary sends one
/// request at a time. The races under test stay: concurrent callers still interleave between
/// requests, read stale state and lose conditional writes.
fn one_at_a_time(inner: SharedHttpClient) -> SharedHttpClient {
    static TURN: OnceLock<Arc<tokio::sync::Mutex<()>>> = OnceLock::new();
    http_client_fn(move |settings, components| {
        SharedHttpConnector::new(OneAtATime {
            inner: inner.http_connector(settings, components),
            turn: Arc::clone(TURN.get_or_init(Arc::default)),
        })
    })
}

#[derive(Debug)]
struct OneAtATime {
    inner: SharedHttpConnector,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl HttpConnector for OneAtATime {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let turn = Arc::clone(&self.turn);
        HttpConnectorFuture::new(async move {
            let _turn = turn.lock_owned().await;
            inner.call(request).await
        })
    }
}

aftersales_service::store_contract!(memory, memory_store());
aftersales_service::store_contract!(dynamodb, dynamo_store().await);
