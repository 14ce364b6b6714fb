//! What the AWS adapters share: turning an SDK failure into the ports' [`ServiceError`]
//! (retryable or not), and DynamoDB paging.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::future::Future;

use crate::service::ServiceError;

/// Error codes AWS services use for throttling and their own faults: worth a retry.
const TRANSIENT_CODES: [&str; 9] = [
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "Throttling",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "RequestThrottled",
    "TransactionConflictException",
];

/// Classifies any SDK error (all AWS SDK crates share `aws-smithy-runtime-api`'s SdkError).
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> ServiceError
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown");
            let message = service.err().message().unwrap_or("");
            let text = format!("{code}: {message}");
            let server_fault = service.raw().status().is_server_error();
            if TRANSIENT_CODES.contains(&code) || server_fault {
                ServiceError::Transient(text)
            } else {
                ServiceError::Permanent(text)
            }
        }
        SdkError::TimeoutError(_) => ServiceError::Transient("timeout".into()),
        SdkError::DispatchFailure(e) => ServiceError::Transient(format!("dispatch failure: {e:?}")),
        SdkError::ResponseError(_) => ServiceError::Transient("unreadable response".into()),
        other => ServiceError::Transient(other.to_string()),
    }
}

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Every item a Query answers, page by page (the built query is re-sent with each
/// `ExclusiveStartKey`).
pub async fn query_all(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> Result<Vec<Item>, ServiceError> {
    all_pages(|start| {
        let query = query.clone();
        async move {
            let out = query
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify(&e))?;
            Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
        }
    })
    .await
}

/// Every item of a paginated Query or Scan: `page` is called with each `ExclusiveStartKey`
/// (first `None`) and answers the page's items and its `LastEvaluatedKey`.
pub async fn all_pages<F, Fut>(mut page: F) -> Result<Vec<Item>, ServiceError>
where
    F: FnMut(Option<Item>) -> Fut,
    Fut: Future<Output = Result<(Vec<Item>, Option<Item>), ServiceError>>,
{
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let (page_items, last) = page(start.take()).await?;
        items.extend(page_items);
        match last {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(items),
        }
    }
}
