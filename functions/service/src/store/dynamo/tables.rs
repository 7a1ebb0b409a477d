//! The two tables as data: what `create_tables` creates for tests and the local stack, and
//! what `infra/template.yaml` declares (keep them in step; `docs/storage.md` shows both).

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};

use super::TableNames;
use super::errors::{encoding, sdk};
use super::items::{attr, index};
use crate::store::StoreError;

/// One table: string keys, on-demand billing, global secondary indexes with `INCLUDE`
/// projections, optionally a TTL attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDefinition {
    pub name: String,
    pub hash_key: &'static str,
    pub range_key: Option<&'static str>,
    pub indexes: Vec<IndexDefinition>,
    pub ttl_attribute: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDefinition {
    pub name: &'static str,
    pub hash_key: &'static str,
    pub range_key: &'static str,
    /// Non-key attributes copied into the index.
    pub projected: &'static [&'static str],
}

/// The tickets table and the ledger table.
pub fn table_definitions(names: &TableNames) -> Vec<TableDefinition> {
    vec![
        TableDefinition {
            name: names.tickets.clone(),
            hash_key: attr::PK,
            range_key: Some(attr::SK),
            indexes: vec![
                IndexDefinition {
                    name: index::TICKETS_BY_CUSTOMER,
                    hash_key: attr::CUSTOMER_ID,
                    range_key: attr::CREATED_KEY,
                    projected: &[
                        attr::ID,
                        attr::ORDER_ID,
                        attr::STATUS,
                        attr::RECEIVED_AT,
                        attr::RESOLUTION_DUE,
                    ],
                },
                IndexDefinition {
                    name: index::OPEN_TICKETS_BY_DUE,
                    hash_key: attr::OPEN_KEY,
                    range_key: attr::DUE_KEY,
                    projected: &[
                        attr::ID,
                        attr::CUSTOMER_ID,
                        attr::ORDER_ID,
                        attr::STATUS,
                        attr::RECEIVED_AT,
                        attr::RESOLUTION_DUE,
                    ],
                },
                IndexDefinition {
                    name: index::TICKETS_BY_ORDER,
                    hash_key: attr::ORDER_ID,
                    range_key: attr::CREATED_KEY,
                    projected: &[
                        attr::ID,
                        attr::CUSTOMER_ID,
                        attr::STATUS,
                        attr::RECEIVED_AT,
                        attr::RESOLUTION_DUE,
                        attr::CLAIMS,
                    ],
                },
            ],
            ttl_attribute: None,
        },
        TableDefinition {
            name: names.ledger.clone(),
            hash_key: attr::PK,
            range_key: None,
            indexes: vec![
                IndexDefinition {
                    name: index::REFUNDS_BY_CUSTOMER,
                    hash_key: attr::CUSTOMER_ID,
                    range_key: attr::REFUND_KEY,
                    projected: &[attr::STATE, attr::BODY],
                },
                IndexDefinition {
                    name: index::REFUNDS_BY_ORDER,
                    hash_key: attr::ORDER_ID,
                    range_key: attr::REFUND_KEY,
                    projected: &[attr::STATE, attr::BODY],
                },
            ],
            ttl_attribute: Some(attr::EXPIRES_AT),
        },
    ]
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| encoding("key schema", e))
}

/// Creates both tables (on-demand billing), waits until they are active and enables TTL.
pub async fn create_tables(client: &Client, names: &TableNames) -> Result<(), StoreError> {
    for table in table_definitions(names) {
        create_table(client, &table).await?;
    }
    Ok(())
}

async fn create_table(client: &Client, table: &TableDefinition) -> Result<(), StoreError> {
    let mut keys: BTreeSet<&str> = BTreeSet::from([table.hash_key]);
    keys.extend(table.range_key);
    for index in &table.indexes {
        keys.insert(index.hash_key);
        keys.insert(index.range_key);
    }
    let mut request = client
        .create_table()
        .table_name(&table.name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(table.hash_key, KeyType::Hash)?);
    if let Some(range) = table.range_key {
        request = request.key_schema(key(range, KeyType::Range)?);
    }
    for name in keys {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| encoding("attribute definition", e))?,
        );
    }
    for index in &table.indexes {
        let projection = Projection::builder()
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(
                index.projected.iter().map(|a| (*a).to_owned()).collect(),
            ))
            .build();
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key(index.hash_key, KeyType::Hash)?)
                .key_schema(key(index.range_key, KeyType::Range)?)
                .projection(projection)
                .build()
                .map_err(|e| encoding("index", e))?,
        );
    }
    request.send().await.map_err(|e| sdk("CreateTable", e))?;

    let mut active = false;
    for _ in 0..120 {
        let described = client
            .describe_table()
            .table_name(&table.name)
            .send()
            .await
            .map_err(|e| sdk("DescribeTable", e))?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if !active {
        return Err(StoreError::Unavailable(format!(
            "table {} did not become active",
            table.name
        )));
    }

    if let Some(ttl) = table.ttl_attribute {
        client
            .update_time_to_live()
            .table_name(&table.name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(ttl)
                    .enabled(true)
                    .build()
                    .map_err(|e| encoding("time to live", e))?,
            )
            .send()
            .await
            .map_err(|e| sdk("UpdateTimeToLive", e))?;
    }
    Ok(())
}
