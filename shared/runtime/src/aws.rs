//! What the AWS adapters share: telling a retryable SDK failure from a permanent one.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::future::Future;

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

/// A failed AWS call, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// Throttling, timeouts, network and 5xx: retry later.
    #[error("transient AWS failure: {0}")]
    Transient(String),
    /// Validation and permission errors: retrying will not help.
    #[error("AWS rejected the request: {0}")]
    Permanent(String),
}

impl AwsError {
    pub fn is_transient(&self) -> bool {
        matches!(self, AwsError::Transient(_))
    }
}

/// Classifies any SDK error (all AWS SDK crates share `aws-smithy-runtime-api`'s SdkError).
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> AwsError
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
                AwsError::Transient(text)
            } else {
                AwsError::Permanent(text)
            }
        }
        SdkError::TimeoutError(_) => AwsError::Transient("timeout".into()),
        SdkError::DispatchFailure(e) => AwsError::Transient(format!("dispatch failure: {e:?}")),
        SdkError::ResponseError(_) => AwsError::Transient("unreadable response".into()),
        other => AwsError::Transient(other.to_string()),
    }
}

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Every item of a paginated Query or Scan: `page` is called with each `ExclusiveStartKey`
/// (first `None`) and answers the page's items and its `LastEvaluatedKey`.
pub async fn all_pages<F, Fut>(mut page: F) -> Result<Vec<Item>, AwsError>
where
    F: FnMut(Option<Item>) -> Fut,
    Fut: Future<Output = Result<(Vec<Item>, Option<Item>), AwsError>>,
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
