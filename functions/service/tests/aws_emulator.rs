//! The SQS feedback publisher, the Step Functions workflow client and the Secrets Manager secret
//! source through the real AWS SDK clients, against a moto server started by this test binary
//! (`scripts/moto.sh` installs it).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aftersales_domain::{Department, TicketId};
use aftersales_service::adapters::feedback::{
    DepartmentQueues, FeedbackMessage, FeedbackPublisher, PublishError, RetryPolicy,
    SqsFeedbackPublisher, UndeliveredMessage,
};
use aftersales_service::adapters::workflow::{
    StartOutcome, StepFunctionsWorkflow, WorkflowClient, WorkflowError,
};
use aftersales_service::testing::moto;
use jiff::Timestamp;
use serde_json::{Value, json};

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/after-sales-workflow";

/// A name no other test in this run uses (tests share one moto server).
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn ticket(n: u128) -> TicketId {
    TicketId::generate("2026-11-20T09:30:00Z".parse::<Timestamp>().unwrap(), n)
}

async fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&moto::shared().sdk_config().await)
}

async fn sfn() -> aws_sdk_sfn::Client {
    aws_sdk_sfn::Client::new(&moto::shared().sdk_config().await)
}

async fn create_queue(client: &aws_sdk_sqs::Client, name: &str) -> String {
    let mut request = client.create_queue().queue_name(name);
    if name.ends_with(".fifo") {
        request = request.attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true");
    }
    request
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned()
}

async fn department_queues(client: &aws_sdk_sqs::Client, suffix: &str) -> DepartmentQueues {
    let run = unique("feedback");
    DepartmentQueues {
        quality: create_queue(client, &format!("{run}-quality{suffix}")).await,
        logistics: create_queue(client, &format!("{run}-logistics{suffix}")).await,
        warehouse: create_queue(client, &format!("{run}-warehouse{suffix}")).await,
        service: create_queue(client, &format!("{run}-service{suffix}")).await,
    }
}

/// Every message in the queue: (body, department attribute, ticket_id attribute, dedup_id attribute).
async fn drain(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Vec<(Value, String, String, String)> {
    let mut out = Vec::new();
    loop {
        let received = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        let messages = received.messages();
        if messages.is_empty() {
            return out;
        }
        for message in messages {
            let attributes = message.message_attributes().unwrap();
            let attribute = |name: &str| attributes[name].string_value().unwrap().to_owned();
            out.push((
                serde_json::from_str(message.body().unwrap()).unwrap(),
                attribute("department"),
                attribute("ticket_id"),
                attribute("dedup_id"),
            ));
            client
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

fn feedback(i: u32, department: Department) -> FeedbackMessage {
    let ticket_id = ticket(u128::from(i));
    FeedbackMessage {
        department,
        body: json!({"ticket_id": ticket_id.as_str(), "root_cause": format!("cause {i}"), "n": i}),
        dedup_id: format!("{ticket_id}:root-cause"),
        ticket_id,
    }
}

fn no_wait() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    }
}

#[tokio::test]
async fn publishing_25_messages_lands_each_in_its_departments_queue_once() {
    let client = sqs().await;
    let queues = department_queues(&client, "").await;
    let messages: Vec<FeedbackMessage> = (0..25)
        .map(|i| feedback(i, Department::ALL[i as usize % 4]))
        .collect();

    SqsFeedbackPublisher::new(client.clone(), queues.clone())
        .publish(&messages)
        .await
        .unwrap();

    for department in Department::ALL {
        let mut expected: Vec<(Value, String, String, String)> = messages
            .iter()
            .filter(|m| m.department == *department)
            .map(|m| {
                (
                    m.body.clone(),
                    department.as_str().to_owned(),
                    m.ticket_id.to_string(),
                    m.dedup_id.clone(),
                )
            })
            .collect();
        let mut received = drain(&client, queues.url(*department)).await;
        expected.sort_by(|a, b| a.3.cmp(&b.3));
        received.sort_by(|a, b| a.3.cmp(&b.3));
        assert_eq!(received, expected, "{department}");
    }
    let counts: BTreeMap<Department, usize> = Department::ALL
        .iter()
        .map(|d| (*d, messages.iter().filter(|m| m.department == *d).count()))
        .collect();
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        vec![7, 6, 6, 6]
    );
}

#[tokio::test]
async fn fifo_queues_get_the_ticket_as_group_and_drop_a_republished_dedup_id() {
    let client = sqs().await;
    let queues = department_queues(&client, ".fifo").await;
    let first = feedback(1, Department::Logistics);
    let publisher = SqsFeedbackPublisher::new(client.clone(), queues.clone());

    publisher
        .publish(std::slice::from_ref(&first))
        .await
        .unwrap();
    publisher
        .publish(std::slice::from_ref(&first))
        .await
        .unwrap();

    let received = drain(&client, &queues.logistics).await;
    assert_eq!(
        received,
        vec![(
            first.body.clone(),
            "logistics".to_owned(),
            first.ticket_id.to_string(),
            first.dedup_id.clone()
        )]
    );
}

#[tokio::test]
async fn publishing_to_a_missing_queue_reports_every_message_undelivered_without_retrying() {
    let client = sqs().await;
    let mut queues = department_queues(&client, "").await;
    queues.warehouse = format!(
        "{}/123456789012/{}",
        moto::shared().endpoint(),
        unique("gone")
    );
    let messages = [
        feedback(1, Department::Warehouse),
        feedback(2, Department::Quality),
    ];

    let error = SqsFeedbackPublisher::new(client.clone(), queues.clone())
        .with_retry(no_wait())
        .publish(&messages)
        .await
        .unwrap_err();

    let PublishError::Undelivered { undelivered } = error else {
        panic!("expected Undelivered, got {error:?}");
    };
    assert_eq!(
        undelivered,
        vec![UndeliveredMessage {
            dedup_id: messages[0].dedup_id.clone(),
            ticket_id: messages[0].ticket_id.clone(),
            department: Department::Warehouse,
            code: "AWS.SimpleQueueService.NonExistentQueue".into(),
            attempts: 1,
        }]
    );
    assert_eq!(drain(&client, &queues.quality).await.len(), 1);
}

#[tokio::test]
async fn an_oversized_message_is_refused_before_anything_is_sent() {
    let client = sqs().await;
    let queues = department_queues(&client, "").await;
    let small = feedback(1, Department::Quality);
    let mut big = feedback(2, Department::Quality);
    big.body = json!({"root_cause": "x".repeat(256 * 1024)});

    let error = SqsFeedbackPublisher::new(client.clone(), queues.clone())
        .publish(&[small, big.clone()])
        .await
        .unwrap_err();

    assert_eq!(
        error,
        PublishError::InvalidMessage {
            dedup_id: big.dedup_id.clone(),
            reason: "the message is 262284 bytes; at most 262144 fit in a queue message".into(),
        }
    );
    assert_eq!(drain(&client, &queues.quality).await, vec![]);
}

// ---- Step Functions ----

async fn create_state_machine(client: &aws_sdk_sfn::Client, definition: Value) -> String {
    client
        .create_state_machine()
        .name(unique("after-sales"))
        .definition(definition.to_string())
        .role_arn(ROLE_ARN)
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_owned()
}

async fn executions(
    client: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
) -> Vec<(String, String)> {
    client
        .list_executions()
        .state_machine_arn(state_machine_arn)
        .send()
        .await
        .unwrap()
        .executions()
        .iter()
        .map(|e| (e.name().to_owned(), e.execution_arn().to_owned()))
        .collect()
}

async fn wait_for_status(client: &aws_sdk_sfn::Client, execution_arn: &str, status: &str) -> Value {
    for _ in 0..100 {
        let execution = client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .unwrap();
        if execution.status().as_str() == status {
            return execution
                .output()
                .map_or(Value::Null, |o| serde_json::from_str(o).unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("execution {execution_arn} never reached {status}");
}

fn waiting_machine() -> Value {
    json!({"StartAt": "AwaitCustomerDecision", "States": {
        "AwaitCustomerDecision": {"Type": "Wait", "Seconds": 600, "End": true}
    }})
}

#[tokio::test]
async fn starting_a_ticket_twice_runs_one_execution_named_after_the_ticket() {
    let client = sfn().await;
    let arn = create_state_machine(&client, waiting_machine()).await;
    let workflow = StepFunctionsWorkflow::new(client.clone(), &arn);
    let ticket_id = ticket(7);
    let input = json!({"ticket_id": ticket_id.as_str()});

    let first = workflow.start(&ticket_id, &input).await.unwrap();
    let second = workflow.start(&ticket_id, &input).await.unwrap();

    let expected_arn = workflow.execution_arn(&ticket_id);
    assert_eq!(
        first,
        StartOutcome::Started {
            execution_arn: expected_arn.clone()
        }
    );
    // Same name and input while running: Step Functions answers with the same execution.
    assert_eq!(
        second,
        StartOutcome::Started {
            execution_arn: expected_arn.clone()
        }
    );
    assert_eq!(
        executions(&client, &arn).await,
        vec![(ticket_id.to_string(), expected_arn)]
    );
}

#[tokio::test]
async fn restarting_a_ticket_with_other_input_is_already_started_and_starts_nothing() {
    let client = sfn().await;
    let arn = create_state_machine(&client, waiting_machine()).await;
    let workflow = StepFunctionsWorkflow::new(client.clone(), &arn);
    let ticket_id = ticket(8);

    workflow
        .start(&ticket_id, &json!({"attempt": 1}))
        .await
        .unwrap();
    let again = workflow
        .start(&ticket_id, &json!({"attempt": 2}))
        .await
        .unwrap();

    let expected_arn = workflow.execution_arn(&ticket_id);
    assert_eq!(
        again,
        StartOutcome::AlreadyStarted {
            execution_arn: expected_arn.clone()
        }
    );
    assert_eq!(
        executions(&client, &arn).await,
        vec![(ticket_id.to_string(), expected_arn)]
    );
}

#[tokio::test]
async fn restarting_a_finished_ticket_is_already_started() {
    let client = sfn().await;
    let arn = create_state_machine(
        &client,
        json!({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}}),
    )
    .await;
    let workflow = StepFunctionsWorkflow::new(client.clone(), &arn);
    let ticket_id = ticket(9);
    let input = json!({"ticket_id": ticket_id.as_str()});

    let first = workflow.start(&ticket_id, &input).await.unwrap();
    wait_for_status(&client, first.execution_arn(), "SUCCEEDED").await;
    let again = workflow.start(&ticket_id, &input).await.unwrap();

    assert_eq!(
        again,
        StartOutcome::AlreadyStarted {
            execution_arn: first.execution_arn().to_owned()
        }
    );
    assert_eq!(executions(&client, &arn).await.len(), 1);
}

#[tokio::test]
async fn task_calls_with_an_unknown_token_are_invalid_token() {
    let client = sfn().await;
    let workflow = StepFunctionsWorkflow::new(
        client,
        "arn:aws:states:us-east-1:123456789012:stateMachine:after-sales",
    );

    assert_eq!(
        workflow
            .send_task_success("not-a-token", &json!({"decision": "accept"}))
            .await,
        Err(WorkflowError::InvalidToken)
    );
    assert_eq!(
        workflow
            .send_task_failure("not-a-token", "Declined", "customer declined")
            .await,
        Err(WorkflowError::InvalidToken)
    );
    assert_eq!(
        workflow.send_task_heartbeat("not-a-token").await,
        Err(WorkflowError::InvalidToken)
    );
}

#[tokio::test]
async fn a_waiting_task_resumes_with_the_output_sent_for_its_token() {
    let sqs = sqs().await;
    let token_queue = create_queue(&sqs, &unique("task-tokens")).await;
    let client = sfn().await;
    let arn = create_state_machine(
        &client,
        json!({"StartAt": "AwaitCustomerDecision", "States": {"AwaitCustomerDecision": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {"QueueUrl": token_queue, "MessageBody": {"token.$": "$$.Task.Token"}},
            "HeartbeatSeconds": 300,
            "TimeoutSeconds": 600,
            "End": true
        }}}),
    )
    .await;
    let workflow = StepFunctionsWorkflow::new(client.clone(), &arn);
    let ticket_id = ticket(10);
    let started = workflow.start(&ticket_id, &json!({})).await.unwrap();

    let mut token = None;
    for _ in 0..50 {
        let received = sqs
            .receive_message()
            .queue_url(&token_queue)
            .send()
            .await
            .unwrap();
        if let Some(message) = received.messages().first() {
            let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
            token = Some(body["token"].as_str().unwrap().to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = token.expect("the waiting task never published its token");

    workflow.send_task_heartbeat(&token).await.unwrap();
    workflow
        .send_task_success(&token, &json!({"decision": "accept", "option_id": "opt-1"}))
        .await
        .unwrap();

    let output = wait_for_status(&client, started.execution_arn(), "SUCCEEDED").await;
    assert_eq!(output, json!({"decision": "accept", "option_id": "opt-1"}));
    // moto forgets a token once its task is done, so a second answer is InvalidToken there.
    assert_eq!(
        workflow.send_task_success(&token, &json!({})).await,
        Err(WorkflowError::InvalidToken)
    );
}

// --- Secrets Manager: the webhook secret and the payment provider's key, read at init ---

use aftersales_service::config::{ConfigError, SecretSource};
use aftersales_service::signature::{WebhookSecret, sign};

#[tokio::test]
async fn a_secrets_manager_secret_is_read_with_one_secret_per_line_for_rotation() {
    let config = moto::shared().sdk_config().await;
    let name = unique("webhook-secret");
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name(&name)
        .secret_string("old-secret-0123456789abcdef\n  new-secret-0123456789abcdef  \n\n")
        .send()
        .await
        .unwrap();
    let source = SecretSource::SecretsManager { secret_id: name };

    let secrets = source.load(&config).await.unwrap();

    let at: Timestamp = "2026-11-24T12:00:00Z".parse().unwrap();
    let signed = |s: &WebhookSecret| sign(s, at, b"{}");
    let expected = ["old-secret-0123456789abcdef", "new-secret-0123456789abcdef"]
        .map(|text| signed(&WebhookSecret::new(text).unwrap()));
    assert_eq!(secrets.iter().map(signed).collect::<Vec<_>>(), expected);
    assert_eq!(
        source.text(&config).await.unwrap(),
        "old-secret-0123456789abcdef\n  new-secret-0123456789abcdef  \n\n"
    );
}

#[tokio::test]
async fn a_missing_secrets_manager_secret_is_an_init_error_naming_the_secret() {
    let config = moto::shared().sdk_config().await;
    let name = unique("never-created");
    let source = SecretSource::SecretsManager {
        secret_id: name.clone(),
    };

    let error = source.load(&config).await.unwrap_err();

    let ConfigError::Secret { from, reason } = &error else {
        panic!("expected a secret error, got {error:?}");
    };
    assert_eq!(from, &format!("Secrets Manager secret {name}"));
    assert!(reason.contains("ResourceNotFoundException"), "{reason}");
}

#[tokio::test]
async fn a_secret_given_as_a_value_makes_no_aws_call() {
    // Nothing listens on port 9 of loopback: any call would fail.
    let unreachable =
        aftersales_service::testing::aws_environment("http://127.0.0.1:9").sdk_config();
    let source = SecretSource::Value("value-secret-0123456789abcdef".to_owned());

    assert_eq!(source.load(&unreachable).await.unwrap().len(), 1);
    assert_eq!(
        source.text(&unreachable).await.unwrap(),
        "value-secret-0123456789abcdef"
    );
}
