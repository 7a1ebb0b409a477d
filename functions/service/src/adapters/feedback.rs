//! Root-cause feedback to the upstream departments' queues (quality, logistics, warehouse,
//! service).
//!
//! [`SqsFeedbackPublisher`] sends each department's messages to its SQS queue in batches of at
//! most ten (`SendMessageBatch`), then retries only the entries SQS reports as failed (bounded
//! attempts, exponential backoff with full jitter). Entries that fail through our own fault
//! (`SenderFault`) are not retried. Whatever is still undelivered is returned by dedup id.
//!
//! A message's body is its JSON `body`; the ids travel as message attributes (`department`,
//! `ticket_id`, `dedup_id`). On FIFO queues (URL ending in `.fifo`) the ticket id is also the
//! message group and the dedup id the deduplication id, so a re-run step is delivered once.

use std::collections::BTreeMap;
use std::time::Duration;

use aftersales_domain::{Department, TicketId};
use async_trait::async_trait;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Largest message (body plus attributes) and largest batch we send: SQS's classic 256 KiB
/// limit, which every queue accepts.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// SQS accepts at most this many entries per `SendMessageBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// One root-cause summary for one department.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackMessage {
    pub department: Department,
    pub ticket_id: TicketId,
    pub body: serde_json::Value,
    /// Stable for the same feedback (e.g. `<ticket id>:root-cause`): 1–128 printable ASCII
    /// characters, no spaces.
    pub dedup_id: String,
}

/// A message that could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndeliveredMessage {
    pub dedup_id: String,
    pub ticket_id: TicketId,
    pub department: Department,
    /// The last error code SQS gave for it.
    pub code: String,
    pub attempts: u32,
}

/// Why feedback was not (fully) published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Nothing was sent: a message can never be accepted as it is.
    #[error("feedback message {dedup_id} cannot be sent: {reason}")]
    InvalidMessage { dedup_id: String, reason: String },
    /// These messages are still undelivered after the retries; the others were delivered.
    #[error("{} feedback message(s) undelivered: {}", .undelivered.len(), dedup_ids(.undelivered))]
    Undelivered {
        undelivered: Vec<UndeliveredMessage>,
    },
}

fn dedup_ids(messages: &[UndeliveredMessage]) -> String {
    messages
        .iter()
        .map(|m| m.dedup_id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Publishes root-cause feedback to the departments.
#[async_trait]
pub trait FeedbackPublisher: Send + Sync {
    async fn publish(&self, messages: &[FeedbackMessage]) -> Result<(), PublishError>;
}

/// The queue URL of each department.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartmentQueues {
    pub quality: String,
    pub logistics: String,
    pub warehouse: String,
    pub service: String,
}

impl DepartmentQueues {
    pub fn url(&self, department: Department) -> &str {
        match department {
            Department::Quality => &self.quality,
            Department::Logistics => &self.logistics,
            Department::Warehouse => &self.warehouse,
            Department::Service => &self.service,
        }
    }
}

/// How often and how patiently failed entries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per entry, the first one included.
    pub max_attempts: u32,
    /// Backoff before retry `n` is a random delay up to `base_delay × 2^(n-1)`, capped.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let cap = self
            .base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

/// One entry of a `SendMessageBatch` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    /// Unique within the call; reported back for failed entries.
    pub id: String,
    pub body: String,
    /// String message attributes.
    pub attributes: Vec<(&'static str, String)>,
    /// FIFO queues only.
    pub group_id: Option<String>,
    /// FIFO queues only.
    pub deduplication_id: Option<String>,
}

/// An entry that SQS did not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    pub id: String,
    pub code: String,
    /// The entry itself is wrong: sending it again fails again.
    pub sender_fault: bool,
}

/// The whole `SendMessageBatch` call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SendMessageBatch failed ({code})")]
pub struct BatchCallError {
    pub code: String,
    /// Throttling, 5xx, timeouts, connection errors.
    pub retryable: bool,
}

/// The one SQS call the publisher makes: the seam between batching/retry logic and the SDK.
#[async_trait]
pub trait MessageBatchSender: Send + Sync {
    /// Sends at most ten entries to one queue; returns the entries that failed.
    async fn send_batch(
        &self,
        queue_url: &str,
        entries: &[BatchEntry],
    ) -> Result<Vec<EntryFailure>, BatchCallError>;
}

#[async_trait]
impl<T: MessageBatchSender + ?Sized> MessageBatchSender for &T {
    async fn send_batch(
        &self,
        queue_url: &str,
        entries: &[BatchEntry],
    ) -> Result<Vec<EntryFailure>, BatchCallError> {
        (**self).send_batch(queue_url, entries).await
    }
}

#[async_trait]
impl MessageBatchSender for aws_sdk_sqs::Client {
    async fn send_batch(
        &self,
        queue_url: &str,
        entries: &[BatchEntry],
    ) -> Result<Vec<EntryFailure>, BatchCallError> {
        let mut request = self.send_message_batch().queue_url(queue_url);
        for entry in entries {
            request = request.entries(sdk_entry(entry)?);
        }
        match request.send().await {
            Ok(output) => Ok(output
                .failed()
                .iter()
                .map(|f| EntryFailure {
                    id: f.id().to_owned(),
                    code: f.code().to_owned(),
                    sender_fault: f.sender_fault(),
                })
                .collect()),
            Err(error) => {
                let status = error.raw_response().map(|r| r.status().as_u16());
                let code = error.code().map(str::to_owned);
                let retryable = match &error {
                    aws_sdk_sqs::error::SdkError::ServiceError(_) => {
                        status.is_some_and(|s| s >= 500 || s == 429)
                            || code.as_deref().is_some_and(is_throttling_code)
                    }
                    aws_sdk_sqs::error::SdkError::ConstructionFailure(_) => false,
                    _ => true,
                };
                Err(BatchCallError {
                    code: code.unwrap_or_else(|| sdk_error_kind(&error).to_owned()),
                    retryable,
                })
            }
        }
    }
}

fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "RequestThrottled"
            | "ThrottlingException"
            | "Throttling"
            | "KmsThrottled"
            | "ServiceUnavailable"
            | "InternalError"
            | "InternalFailure"
    )
}

fn sdk_error_kind<E, R>(error: &aws_sdk_sqs::error::SdkError<E, R>) -> &'static str {
    use aws_sdk_sqs::error::SdkError;
    match error {
        SdkError::ConstructionFailure(_) => "ConstructionFailure",
        SdkError::TimeoutError(_) => "Timeout",
        SdkError::DispatchFailure(_) => "DispatchFailure",
        SdkError::ResponseError(_) => "ResponseError",
        SdkError::ServiceError(_) => "ServiceError",
        _ => "SdkError",
    }
}

fn sdk_entry(entry: &BatchEntry) -> Result<SendMessageBatchRequestEntry, BatchCallError> {
    let invalid = |_| BatchCallError {
        code: "InvalidEntry".into(),
        retryable: false,
    };
    let mut builder = SendMessageBatchRequestEntry::builder()
        .id(&entry.id)
        .message_body(&entry.body)
        .set_message_group_id(entry.group_id.clone())
        .set_message_deduplication_id(entry.deduplication_id.clone());
    for (name, value) in &entry.attributes {
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .map_err(invalid)?;
        builder = builder.message_attributes(*name, attribute);
    }
    builder.build().map_err(invalid)
}

/// Publishes feedback to the departments' SQS queues.
#[derive(Debug, Clone)]
pub struct SqsFeedbackPublisher<S = aws_sdk_sqs::Client> {
    sender: S,
    queues: DepartmentQueues,
    retry: RetryPolicy,
}

impl<S: MessageBatchSender> SqsFeedbackPublisher<S> {
    /// `sender` is normally an `aws_sdk_sqs::Client`, built once at start-up.
    pub fn new(sender: S, queues: DepartmentQueues) -> Self {
        SqsFeedbackPublisher {
            sender,
            queues,
            retry: RetryPolicy::default(),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    async fn publish_to_queue(
        &self,
        queue_url: &str,
        items: &[Queued<'_>],
    ) -> Vec<UndeliveredMessage> {
        let mut pending: Vec<usize> = (0..items.len()).collect();
        let mut last_code = vec![String::new(); items.len()];
        let mut undelivered = Vec::new();
        let mut attempt = 0;

        while !pending.is_empty() && attempt < self.retry.max_attempts {
            attempt += 1;
            if attempt > 1 {
                tokio::time::sleep(self.retry.backoff(attempt - 1)).await;
            }
            let mut retry_next = Vec::new();
            for chunk in batches(items, &pending) {
                let entries: Vec<BatchEntry> =
                    chunk.iter().map(|&p| items[p].entry.clone()).collect();
                match self.sender.send_batch(queue_url, &entries).await {
                    Ok(failures) => {
                        for p in chunk {
                            let item = &items[p];
                            let Some(failure) = failures.iter().find(|f| f.id == item.entry.id)
                            else {
                                continue;
                            };
                            last_code[p].clone_from(&failure.code);
                            if failure.sender_fault {
                                undelivered.push(item.undelivered(&failure.code, attempt));
                            } else {
                                retry_next.push(p);
                            }
                        }
                    }
                    Err(error) => {
                        for p in chunk {
                            last_code[p].clone_from(&error.code);
                            if error.retryable {
                                retry_next.push(p);
                            } else {
                                undelivered.push(items[p].undelivered(&error.code, attempt));
                            }
                        }
                    }
                }
            }
            if !retry_next.is_empty() {
                tracing::warn!(
                    queue_url,
                    attempt,
                    failed = retry_next.len(),
                    "feedback entries failed; retrying"
                );
            }
            pending = retry_next;
        }

        for p in pending {
            undelivered.push(items[p].undelivered(&last_code[p], attempt));
        }
        undelivered
    }
}

/// A message on its way to a queue, with its SQS entry.
struct Queued<'a> {
    message: &'a FeedbackMessage,
    entry: BatchEntry,
}

impl Queued<'_> {
    fn undelivered(&self, code: &str, attempts: u32) -> UndeliveredMessage {
        UndeliveredMessage {
            dedup_id: self.message.dedup_id.clone(),
            ticket_id: self.message.ticket_id.clone(),
            department: self.message.department,
            code: code.to_owned(),
            attempts,
        }
    }
}

/// Splits the pending items into `SendMessageBatch` calls of at most ten entries and 256 KiB.
fn batches(items: &[Queued<'_>], pending: &[usize]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for &p in pending {
        let size = entry_size(&items[p].entry);
        if !current.is_empty()
            && (current.len() == MAX_BATCH_ENTRIES || bytes + size > MAX_MESSAGE_BYTES)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(p);
        bytes += size;
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// What SQS counts against the size limit: the body and each attribute's name, type and value.
fn entry_size(entry: &BatchEntry) -> usize {
    entry.body.len()
        + entry
            .attributes
            .iter()
            .map(|(name, value)| name.len() + "String".len() + value.len())
            .sum::<usize>()
}

fn check_dedup_id(dedup_id: &str) -> Result<(), String> {
    if dedup_id.is_empty() || dedup_id.len() > 128 {
        return Err("the dedup id must be 1 to 128 characters".into());
    }
    if !dedup_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the dedup id must be printable ASCII without spaces".into());
    }
    Ok(())
}

fn batch_entry(
    index: usize,
    message: &FeedbackMessage,
    fifo: bool,
) -> Result<BatchEntry, PublishError> {
    let invalid = |reason: String| PublishError::InvalidMessage {
        dedup_id: message.dedup_id.chars().take(128).collect(),
        reason,
    };
    check_dedup_id(&message.dedup_id).map_err(invalid)?;
    let body = serde_json::to_string(&message.body).map_err(|e| invalid(e.to_string()))?;
    let entry = BatchEntry {
        id: format!("m{index}"),
        body,
        attributes: vec![
            ("department", message.department.as_str().to_owned()),
            ("ticket_id", message.ticket_id.to_string()),
            ("dedup_id", message.dedup_id.clone()),
        ],
        group_id: fifo.then(|| message.ticket_id.to_string()),
        deduplication_id: fifo.then(|| message.dedup_id.clone()),
    };
    let size = entry_size(&entry);
    if size > MAX_MESSAGE_BYTES {
        return Err(invalid(format!(
            "the message is {size} bytes; at most {MAX_MESSAGE_BYTES} fit in a queue message"
        )));
    }
    Ok(entry)
}

#[async_trait]
impl<S: MessageBatchSender> FeedbackPublisher for SqsFeedbackPublisher<S> {
    async fn publish(&self, messages: &[FeedbackMessage]) -> Result<(), PublishError> {
        let mut by_queue: BTreeMap<&str, Vec<Queued<'_>>> = BTreeMap::new();
        for (index, message) in messages.iter().enumerate() {
            let queue_url = self.queues.url(message.department);
            let entry = batch_entry(index, message, queue_url.ends_with(".fifo"))?;
            by_queue
                .entry(queue_url)
                .or_default()
                .push(Queued { message, entry });
        }

        let mut undelivered = Vec::new();
        for (queue_url, entries) in &by_queue {
            undelivered.extend(self.publish_to_queue(queue_url, entries).await);
        }
        if undelivered.is_empty() {
            tracing::info!(messages = messages.len(), "feedback published");
            Ok(())
        } else {
            for message in &undelivered {
                tracing::error!(
                    ticket_id = %message.ticket_id,
                    dedup_id = %message.dedup_id,
                    department = %message.department,
                    code = %message.code,
                    "feedback undelivered"
                );
            }
            Err(PublishError::Undelivered { undelivered })
        }
    }
}

/// Keeps feedback in memory, per department, for tests and the local stack. Like a FIFO queue,
/// a message whose dedup id was already published to that department is dropped.
#[derive(Debug, Default)]
pub struct InMemoryFeedbackPublisher {
    queues: std::sync::Mutex<BTreeMap<Department, Vec<FeedbackMessage>>>,
}

impl InMemoryFeedbackPublisher {
    pub fn new() -> Self {
        Self::default()
    }

    /// The messages a department received, in publishing order.
    pub fn messages(&self, department: Department) -> Vec<FeedbackMessage> {
        self.lock().get(&department).cloned().unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Department, Vec<FeedbackMessage>>> {
        // A panic while holding the lock leaves plain data behind, still consistent.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl FeedbackPublisher for InMemoryFeedbackPublisher {
    async fn publish(&self, messages: &[FeedbackMessage]) -> Result<(), PublishError> {
        for message in messages {
            check_dedup_id(&message.dedup_id).map_err(|reason| PublishError::InvalidMessage {
                dedup_id: message.dedup_id.chars().take(128).collect(),
                reason,
            })?;
        }
        let mut queues = self.lock();
        for message in messages {
            let queue = queues.entry(message.department).or_default();
            if !queue.iter().any(|m| m.dedup_id == message.dedup_id) {
                queue.push(message.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// What the fake SQS answers to each successive call.
    enum Answer {
        Accept,
        /// These entry ids fail (code, sender_fault); the rest are accepted.
        Fail(Vec<(&'static str, &'static str, bool)>),
        CallError(&'static str, bool),
    }

    /// A `SendMessageBatch` stand-in: records every call and answers from a script
    /// (accepting everything once the script runs out).
    #[derive(Default)]
    struct ScriptedSqs {
        answers: Mutex<VecDeque<Answer>>,
        calls: Mutex<Vec<(String, Vec<String>)>>,
    }

    impl ScriptedSqs {
        fn answering(answers: Vec<Answer>) -> Self {
            ScriptedSqs {
                answers: Mutex::new(answers.into()),
                calls: Mutex::default(),
            }
        }

        fn calls(&self) -> Vec<(String, Vec<String>)> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl MessageBatchSender for ScriptedSqs {
        async fn send_batch(
            &self,
            queue_url: &str,
            entries: &[BatchEntry],
        ) -> Result<Vec<EntryFailure>, BatchCallError> {
            self.calls.lock().unwrap().push((
                queue_url.to_owned(),
                entries.iter().map(|e| e.id.clone()).collect(),
            ));
            match self.answers.lock().unwrap().pop_front() {
                None | Some(Answer::Accept) => Ok(vec![]),
                Some(Answer::Fail(failures)) => Ok(failures
                    .into_iter()
                    .filter(|(id, _, _)| entries.iter().any(|e| e.id == *id))
                    .map(|(id, code, sender_fault)| EntryFailure {
                        id: id.into(),
                        code: code.into(),
                        sender_fault,
                    })
                    .collect()),
                Some(Answer::CallError(code, retryable)) => Err(BatchCallError {
                    code: code.into(),
                    retryable,
                }),
            }
        }
    }

    fn queues() -> DepartmentQueues {
        DepartmentQueues {
            quality: "https://sqs/q".into(),
            logistics: "https://sqs/l".into(),
            warehouse: "https://sqs/w".into(),
            service: "https://sqs/s".into(),
        }
    }

    fn message(i: u128, department: Department) -> FeedbackMessage {
        let ticket_id = TicketId::generate(jiff::Timestamp::UNIX_EPOCH, i);
        FeedbackMessage {
            department,
            body: json!({"n": i as u64}),
            dedup_id: format!("{ticket_id}:root-cause"),
            ticket_id,
        }
    }

    fn no_wait(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }

    fn ids(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("m{i}")).collect()
    }

    #[tokio::test]
    async fn messages_are_grouped_per_queue_in_batches_of_at_most_ten() {
        let sqs = ScriptedSqs::default();
        let mut messages: Vec<_> = (0..23).map(|i| message(i, Department::Quality)).collect();
        messages.push(message(23, Department::Service));
        let publisher = SqsFeedbackPublisher::new(&sqs, queues()).with_retry(no_wait(3));

        publisher.publish(&messages).await.unwrap();

        assert_eq!(
            sqs.calls(),
            vec![
                ("https://sqs/q".to_owned(), ids(0..10)),
                ("https://sqs/q".to_owned(), ids(10..20)),
                ("https://sqs/q".to_owned(), ids(20..23)),
                ("https://sqs/s".to_owned(), ids(23..24)),
            ]
        );
    }

    #[tokio::test]
    async fn only_the_entries_that_failed_are_sent_again() {
        let sqs = ScriptedSqs::answering(vec![Answer::Fail(vec![
            ("m2", "InternalError", false),
            ("m7", "ServiceUnavailable", false),
        ])]);
        let messages: Vec<_> = (0..10).map(|i| message(i, Department::Warehouse)).collect();
        let publisher = SqsFeedbackPublisher::new(&sqs, queues()).with_retry(no_wait(3));

        publisher.publish(&messages).await.unwrap();

        assert_eq!(
            sqs.calls(),
            vec![
                ("https://sqs/w".to_owned(), ids(0..10)),
                (
                    "https://sqs/w".to_owned(),
                    vec!["m2".to_owned(), "m7".to_owned()]
                ),
            ]
        );
    }

    #[tokio::test]
    async fn entries_still_failing_after_the_last_attempt_are_reported_by_dedup_id() {
        let always_m1 = || Answer::Fail(vec![("m1", "InternalError", false)]);
        let sqs = ScriptedSqs::answering(vec![always_m1(), always_m1(), always_m1()]);
        let messages: Vec<_> = (0..3).map(|i| message(i, Department::Logistics)).collect();
        let publisher = SqsFeedbackPublisher::new(&sqs, queues()).with_retry(no_wait(3));

        let error = publisher.publish(&messages).await.unwrap_err();

        assert_eq!(
            error,
            PublishError::Undelivered {
                undelivered: vec![UndeliveredMessage {
                    dedup_id: messages[1].dedup_id.clone(),
                    ticket_id: messages[1].ticket_id.clone(),
                    department: Department::Logistics,
                    code: "InternalError".into(),
                    attempts: 3,
                }]
            }
        );
        assert_eq!(sqs.calls().len(), 3);
        assert_eq!(
            error.to_string(),
            format!(
                "1 feedback message(s) undelivered: {}",
                messages[1].dedup_id
            )
        );
    }

    #[tokio::test]
    async fn sender_fault_failures_are_not_retried() {
        let sqs = ScriptedSqs::answering(vec![Answer::Fail(vec![(
            "m0",
            "InvalidParameterValue",
            true,
        )])]);
        let messages = [
            message(0, Department::Quality),
            message(1, Department::Quality),
        ];
        let publisher = SqsFeedbackPublisher::new(&sqs, queues()).with_retry(no_wait(3));

        let error = publisher.publish(&messages).await.unwrap_err();

        assert_eq!(
            error,
            PublishError::Undelivered {
                undelivered: vec![UndeliveredMessage {
                    dedup_id: messages[0].dedup_id.clone(),
                    ticket_id: messages[0].ticket_id.clone(),
                    department: Department::Quality,
                    code: "InvalidParameterValue".into(),
                    attempts: 1,
                }]
            }
        );
        assert_eq!(sqs.calls().len(), 1);
    }

    #[tokio::test]
    async fn a_throttled_call_is_retried_whole_and_a_refused_call_is_not() {
        let sqs = ScriptedSqs::answering(vec![
            Answer::CallError("RequestThrottled", true),
            Answer::Accept,
            Answer::CallError("AccessDenied", false),
        ]);
        let messages = [
            message(0, Department::Quality),
            message(1, Department::Service),
        ];
        let publisher = SqsFeedbackPublisher::new(&sqs, queues()).with_retry(no_wait(3));

        let error = publisher.publish(&messages).await.unwrap_err();

        // Quality: throttled, then accepted on the retry. Service: refused, not retried.
        assert_eq!(
            sqs.calls(),
            vec![
                ("https://sqs/q".to_owned(), ids(0..1)),
                ("https://sqs/q".to_owned(), ids(0..1)),
                ("https://sqs/s".to_owned(), ids(1..2)),
            ]
        );
        let PublishError::Undelivered { undelivered } = error else {
            panic!("expected Undelivered");
        };
        assert_eq!(undelivered.len(), 1);
        assert_eq!(undelivered[0].department, Department::Service);
        assert_eq!(undelivered[0].code, "AccessDenied");
    }

    #[tokio::test]
    async fn batches_are_also_split_to_stay_under_256_kib() {
        let sqs = ScriptedSqs::default();
        let mut messages: Vec<_> = (0..3).map(|i| message(i, Department::Quality)).collect();
        for m in &mut messages {
            m.body = json!({"text": "x".repeat(100 * 1024)});
        }
        let publisher = SqsFeedbackPublisher::new(&sqs, queues()).with_retry(no_wait(3));

        publisher.publish(&messages).await.unwrap();

        assert_eq!(
            sqs.calls(),
            vec![
                ("https://sqs/q".to_owned(), ids(0..2)),
                ("https://sqs/q".to_owned(), ids(2..3)),
            ]
        );
    }

    #[tokio::test]
    async fn a_dedup_id_with_spaces_is_refused_before_anything_is_sent() {
        let sqs = ScriptedSqs::default();
        let mut bad = message(1, Department::Quality);
        bad.dedup_id = "root cause".into();
        let publisher = SqsFeedbackPublisher::new(&sqs, queues());

        let error = publisher
            .publish(&[message(0, Department::Quality), bad])
            .await
            .unwrap_err();

        assert_eq!(
            error,
            PublishError::InvalidMessage {
                dedup_id: "root cause".into(),
                reason: "the dedup id must be printable ASCII without spaces".into(),
            }
        );
        assert_eq!(sqs.calls(), vec![]);
    }

    #[test]
    fn fifo_queues_get_the_ticket_as_group_and_the_dedup_id() {
        let m = message(5, Department::Warehouse);
        let fifo = batch_entry(3, &m, true).unwrap();
        assert_eq!(fifo.id, "m3");
        assert_eq!(fifo.group_id.as_deref(), Some(m.ticket_id.as_str()));
        assert_eq!(fifo.deduplication_id.as_deref(), Some(m.dedup_id.as_str()));
        let standard = batch_entry(3, &m, false).unwrap();
        assert_eq!((standard.group_id, standard.deduplication_id), (None, None));
        assert_eq!(
            standard.attributes,
            vec![
                ("department", "warehouse".to_owned()),
                ("ticket_id", m.ticket_id.to_string()),
                ("dedup_id", m.dedup_id.clone()),
            ]
        );
        assert_eq!(standard.body, r#"{"n":5}"#);
    }

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(750),
        };
        for _ in 0..50 {
            assert!(policy.backoff(1) <= Duration::from_millis(100));
            assert!(policy.backoff(3) <= Duration::from_millis(400));
            assert!(policy.backoff(40) <= Duration::from_millis(750));
        }
    }

    #[tokio::test]
    async fn in_memory_publisher_keeps_messages_per_department_once_per_dedup_id() {
        let publisher = InMemoryFeedbackPublisher::new();
        let a = message(1, Department::Quality);
        let b = message(2, Department::Logistics);

        publisher.publish(&[a.clone(), b.clone()]).await.unwrap();
        publisher.publish(std::slice::from_ref(&a)).await.unwrap();

        assert_eq!(publisher.messages(Department::Quality), vec![a]);
        assert_eq!(publisher.messages(Department::Logistics), vec![b]);
        assert_eq!(publisher.messages(Department::Service), vec![]);
    }
}
