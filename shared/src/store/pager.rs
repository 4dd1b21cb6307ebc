//! The one loop over DynamoDB's `LastEvaluatedKey`: every Query that may span pages in the
//! store reads through a [`Pager`], and decides for itself when it has read enough.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::query::QueryError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::Item;

pub(crate) struct Pager {
    query: QueryFluentBuilder,
    start: Option<Item>,
    done: bool,
}

impl Pager {
    /// Reads `query` from its start, or after the key `start`.
    pub fn new(query: QueryFluentBuilder, start: Option<Item>) -> Self {
        Self { query, start, done: false }
    }

    /// The next page, of at most `limit` items (DynamoDB's 1 MB page when `None`); `None` once
    /// the query is read to its end. A filtered page may be empty without being the last.
    pub async fn next(&mut self, limit: Option<usize>) -> Result<Option<Vec<Item>>, SdkError<QueryError, HttpResponse>> {
        if self.done {
            return Ok(None);
        }
        let limit = limit.map(|n| n.clamp(1, i32::MAX as usize) as i32);
        let page = self.query.clone().set_exclusive_start_key(self.start.take()).set_limit(limit).send().await?;
        self.start = page.last_evaluated_key;
        self.done = self.start.is_none();
        Ok(Some(page.items.unwrap_or_default()))
    }

    /// Where reading stopped, when the query was not read to its end: the key to go on after.
    pub fn resume_key(&self) -> Option<&Item> {
        self.start.as_ref()
    }
}
