//! The store contract (`aftersales_service::testing::store_contract`) against the in-process
//! `MemoryStore` (module `memory`) and `DynamoStore` on a moto server through the real AWS SDK
//! client (module `dynamodb`, fresh tables per test; `scripts/moto.sh` installs moto). The
//! local stack runs the same behaviours on its durable store (`local/stack/tests/store.rs`).
//! Moto gets this binary's DynamoDB requests one at a time (`testing::moto::one_at_a_time`), as
//! DynamoDB serialises conflicting writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use aftersales_service::store::{DynamoStore, MemoryStore, TableNames, create_tables};
use aftersales_service::testing::moto;

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
    let sdk = moto::shared().serialised_sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let names = TableNames::with_prefix(&prefix);
    create_tables(&client, &names).await.unwrap();
    Arc::new(DynamoStore::new(client, names))
}

aftersales_service::store_contract!(memory, memory_store());
aftersales_service::store_contract!(dynamodb, dynamo_store().await);
