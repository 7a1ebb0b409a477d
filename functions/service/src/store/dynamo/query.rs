//! Reads shared by both traits: consistent gets and paginated queries.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;

use super::DynamoStore;
use super::errors::sdk;
use super::items::{Item, attr, s};
use crate::store::StoreError;

/// DynamoDB's page size is capped anyway; asking for more than this per page gains nothing.
const MAX_PAGE: usize = 1000;

impl DynamoStore {
    /// A strongly consistent read of one item.
    pub(super) async fn get_item(
        &self,
        table: &str,
        pk: String,
        sk: Option<&str>,
    ) -> Result<Option<Item>, StoreError> {
        let mut request = self
            .client
            .get_item()
            .table_name(table)
            .consistent_read(true)
            .key(attr::PK, s(pk));
        if let Some(sk) = sk {
            request = request.key(attr::SK, s(sk));
        }
        let out = request.send().await.map_err(|e| sdk("GetItem", e))?;
        Ok(out.item)
    }

    /// Every item of a query, following pages, up to `limit` items when given.
    pub(super) async fn query_all(
        &self,
        operation: &str,
        query: QueryFluentBuilder,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut page = query.clone().set_exclusive_start_key(start.take());
            if let Some(limit) = limit {
                let wanted = limit.saturating_sub(items.len()).clamp(1, MAX_PAGE);
                page = page.limit(i32::try_from(wanted).unwrap_or(i32::MAX));
            }
            let out = page.send().await.map_err(|e| sdk(operation, e))?;
            items.extend(out.items.unwrap_or_default());
            if let Some(limit) = limit
                && items.len() >= limit
            {
                items.truncate(limit);
                return Ok(items);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }
}
