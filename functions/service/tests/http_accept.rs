//! `POST /v1/requests` through `handlers::accept::handle`: the in-memory store and workflow with
//! a fixed clock, and the DynamoDB store with real Step Functions calls against the moto server
//! (`scripts/moto.sh` installs it) for the concurrent-delivery invariant.

mod http_support;
mod metrics_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use aftersales_domain::{Policy, TicketId};
use aftersales_service::adapters::workflow::{
    InMemoryWorkflow, StartOutcome, StepFunctionsWorkflow, WorkflowCall, WorkflowClient,
    WorkflowError,
};
use aftersales_service::clock::FixedClock;
use aftersales_service::handlers::accept::{Deps, handle};
use aftersales_service::signature::{WebhookSecret, sign};
use aftersales_service::store::{DynamoStore, MemoryStore, TableNames, TicketStore, create_tables};
use aftersales_service::testing::moto;
use async_trait::async_trait;
use base64::Engine;
use http_support::*;
use jiff::{SignedDuration, Timestamp};
use metrics_support::captured;
use serde_json::{Value, json};

const ROUTE: &str = "/v1/requests";

struct World {
    store: Arc<MemoryStore>,
    workflow: Arc<InMemoryWorkflow>,
    deps: Deps,
}

fn world() -> World {
    let store = Arc::new(MemoryStore::new());
    let workflow = Arc::new(InMemoryWorkflow::new());
    let deps = Deps {
        store: store.clone(),
        workflow: workflow.clone(),
        clock: Arc::new(FixedClock::at(now())),
        policy: Arc::new(Policy::default_policy()),
        secrets: secrets(),
    };
    World {
        store,
        workflow,
        deps,
    }
}

fn starts(workflow: &InMemoryWorkflow) -> Vec<(TicketId, Value)> {
    workflow
        .calls()
        .into_iter()
        .filter_map(|call| match call {
            WorkflowCall::Start { ticket_id, input } => Some((ticket_id, input)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_valid_request_is_acknowledged_with_a_ticket_and_starts_one_run_named_by_it() {
    // given
    let w = world();
    // when
    let response = handle(signed_post(ROUTE, &request_json("evt_1")), &w.deps).await;
    // then
    assert_eq!(status(&response), 202);
    assert_eq!(content_type(&response), "application/json");
    let body = body(&response);
    let ticket_id: TicketId = body["ticket_id"].as_str().unwrap().parse().unwrap();
    // Submitted 09:30, the default policy's first response is due 4 h later.
    assert_eq!(
        body,
        json!({"ticket_id": ticket_id.as_str(), "status": "received",
               "first_response_due": "2026-11-20T13:30:00Z"})
    );
    // The run gets the ticket id and the default policy's deadlines in seconds.
    assert_eq!(
        starts(&w.workflow),
        vec![(
            ticket_id.clone(),
            json!({"ticket_id": ticket_id.as_str(), "deadlines": {
                "evidence": {"reminder": 86400, "remaining": 172800},
                "decision": {"reminder": 172800, "remaining": 259200, "default_action": "accept_top_option"},
                "return_parcel": {"reminder": 604800, "remaining": 604800},
                "agent_review": {"sla": 86400, "supervisor_sla": 86400},
                "survey": {"delay": 86400, "reminder": 259200, "remaining": 345600}}})
        )]
    );
    let stored = w.store.get(&ticket_id).await.unwrap().unwrap();
    assert_eq!(stored.request.request_id.as_str(), "evt_1");
    assert_eq!(stored.resolution_due.to_string(), "2026-11-23T09:30:00Z");
    assert_eq!(w.store.audit_trail(&ticket_id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_repeated_delivery_returns_the_first_ticket_with_200() {
    let w = world();
    let first = body(&handle(signed_post(ROUTE, &request_json("evt_2")), &w.deps).await);

    let again = handle(signed_post(ROUTE, &request_json("evt_2")), &w.deps).await;

    assert_eq!(status(&again), 200);
    assert_eq!(body(&again), first);
    assert_eq!(w.workflow.runs().len(), 1);
}

#[tokio::test]
async fn a_repeat_with_the_same_content_in_another_layout_is_the_same_request() {
    let w = world();
    let compact = serde_json::to_vec(&request_json("evt_3")).unwrap();
    let pretty = serde_json::to_vec_pretty(&request_json("evt_3")).unwrap();
    let first = handle(
        signed_at("POST", ROUTE, &compact, "application/json", now()),
        &w.deps,
    )
    .await;

    let again = handle(
        signed_at("POST", ROUTE, &pretty, "application/json", now()),
        &w.deps,
    )
    .await;

    assert_eq!(status(&first), 202);
    assert_eq!(status(&again), 200);
    assert_eq!(body(&again), body(&first));
}

#[tokio::test]
async fn the_same_request_id_with_another_body_is_a_conflict() {
    let w = world();
    handle(signed_post(ROUTE, &request_json("evt_4")), &w.deps).await;
    let mut other = request_json("evt_4");
    other["problem"]["lines"][0]["quantity"] = json!(1);

    let response = handle(signed_post(ROUTE, &other), &w.deps).await;

    assert_eq!(status(&response), 409);
    assert_eq!(error(&response), ("conflict".into(), None));
    assert_eq!(w.workflow.runs().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_deliveries_make_one_ticket_and_one_run() {
    // given
    let w = Arc::new(world());
    // when
    let answers = deliver_concurrently(&w, 50, "evt_concurrent").await;
    // then
    assert_one_ticket(&answers);
    assert_eq!(w.workflow.runs().len(), 1);
    let id: TicketId = answers[0].1["ticket_id"].as_str().unwrap().parse().unwrap();
    assert!(w.workflow.runs().contains_key(&id));
}

async fn deliver_concurrently(w: &Arc<World>, n: usize, request_id: &str) -> Vec<(i64, Value)> {
    let body = serde_json::to_vec(&request_json(request_id)).unwrap();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let w = w.clone();
            let event = signed_at("POST", ROUTE, &body, "application/json", now());
            tokio::spawn(async move {
                let response = handle(event, &w.deps).await;
                (status(&response), http_support::body(&response))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

fn assert_one_ticket(answers: &[(i64, Value)]) {
    let created = answers.iter().filter(|(s, _)| *s == 202).count();
    let repeated = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((created, repeated), (1, answers.len() - 1), "{answers:?}");
    let first = &answers[0].1;
    assert!(answers.iter().all(|(_, body)| body == first), "{answers:?}");
}

/// Tables and a state machine of their own in the shared moto server.
async fn aws_world() -> (Arc<World>, Arc<DynamoStore>, aws_sdk_sfn::Client, String) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let run = format!(
        "http-accept-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    // One request at a time, as AWS serialises conflicting ones (moto::one_at_a_time).
    let sdk = moto::shared().serialised_sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let tables = TableNames::with_prefix(&run);
    create_tables(&dynamodb, &tables).await.unwrap();
    let store = Arc::new(DynamoStore::new(dynamodb, tables));
    let sfn = aws_sdk_sfn::Client::new(&sdk);
    let definition = json!({"StartAt": "Diagnose", "States": {
        "Diagnose": {"Type": "Wait", "Seconds": 600, "End": true}}});
    let arn = sfn
        .create_state_machine()
        .name(run)
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/after-sales-workflow")
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_owned();
    let mut w = world();
    w.deps.store = store.clone();
    w.deps.workflow = Arc::new(StepFunctionsWorkflow::new(sfn.clone(), &arn));
    (Arc::new(w), store, sfn, arn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_deliveries_against_dynamodb_and_step_functions_make_one_ticket_and_one_execution()
 {
    // given
    let (w, store, sfn, arn) = aws_world().await;
    // when
    let answers = deliver_concurrently(&w, 50, "evt_aws_concurrent").await;
    // then
    assert_one_ticket(&answers);
    let id = answers[0].1["ticket_id"].as_str().unwrap().to_owned();
    let ticket = store
        .find_by_request(&"evt_aws_concurrent".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ticket.id.as_str(), id);
    let executions = sfn
        .list_executions()
        .state_machine_arn(&arn)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = executions.executions().iter().map(|e| e.name()).collect();
    assert_eq!(names, vec![id.as_str()]);
}

#[tokio::test]
async fn a_signature_made_with_another_secret_is_refused_before_parsing() {
    let w = world();
    let body = b"{ this is not even json";
    let signature = sign(&WebhookSecret::new("whsec_other").unwrap(), now(), body);
    let event = event(
        "POST",
        ROUTE,
        json!({"content-type": "application/json", "x-aftersales-signature": signature}),
        Some(body),
    );

    let response = handle(event, &w.deps).await;

    assert_eq!(status(&response), 401);
    assert_eq!(error(&response), ("invalid_signature".into(), None));
    assert!(w.workflow.calls().is_empty());
}

#[tokio::test]
async fn a_request_without_a_signature_is_refused() {
    let w = world();
    let body = serde_json::to_vec(&request_json("evt_5")).unwrap();
    let event = event(
        "POST",
        ROUTE,
        json!({"content-type": "application/json"}),
        Some(&body),
    );

    let response = handle(event, &w.deps).await;

    assert_eq!(status(&response), 401);
    assert_eq!(error(&response).0, "invalid_signature");
}

#[tokio::test]
async fn a_signature_301_seconds_old_is_stale() {
    let w = world();
    let body = serde_json::to_vec(&request_json("evt_6")).unwrap();
    let old = now().checked_sub(SignedDuration::from_secs(301)).unwrap();

    let response = handle(
        signed_at("POST", ROUTE, &body, "application/json", old),
        &w.deps,
    )
    .await;

    assert_eq!(status(&response), 401);
    assert_eq!(error(&response).0, "stale_signature");
}

#[tokio::test]
async fn a_body_over_256_kib_is_too_large() {
    let w = world();
    let mut request = request_json("evt_7");
    request["padding"] = json!("x".repeat(300 * 1024));
    let body = serde_json::to_vec(&request).unwrap();

    let response = handle(
        signed_at("POST", ROUTE, &body, "application/json", now()),
        &w.deps,
    )
    .await;

    assert_eq!(status(&response), 413);
    assert_eq!(error(&response).0, "payload_too_large");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_an_unsupported_media_type() {
    let w = world();
    let body = serde_json::to_vec(&request_json("evt_8")).unwrap();

    let response = handle(
        signed_at("POST", ROUTE, &body, "text/plain", now()),
        &w.deps,
    )
    .await;

    assert_eq!(status(&response), 415);
    assert_eq!(error(&response).0, "unsupported_media_type");
}

#[tokio::test]
async fn json_with_a_utf8_charset_is_accepted() {
    let w = world();
    let body = serde_json::to_vec(&request_json("evt_9")).unwrap();
    let event = signed_at(
        "POST",
        ROUTE,
        &body,
        "application/json; charset=utf-8",
        now(),
    );

    assert_eq!(status(&handle(event, &w.deps).await), 202);
}

#[tokio::test]
async fn malformed_json_is_invalid_json() {
    let w = world();
    let body = br#"{"request_id": "evt_10", "channel": "#;

    let response = handle(
        signed_at("POST", ROUTE, body, "application/json", now()),
        &w.deps,
    )
    .await;

    assert_eq!(status(&response), 400);
    assert_eq!(error(&response), ("invalid_json".into(), None));
}

#[tokio::test]
async fn a_wrong_field_is_named_in_the_error() {
    let w = world();
    let mut request = request_json("evt_11");
    request["order"]["lines"][0]["quantity"] = json!(0);

    let response = handle(signed_post(ROUTE, &request), &w.deps).await;

    assert_eq!(status(&response), 400);
    assert_eq!(
        error(&response),
        (
            "invalid_field".into(),
            Some("order.lines[0].quantity".into())
        )
    );
    assert!(
        w.store
            .find_by_request(&"evt_11".parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(w.workflow.calls().is_empty());
}

#[tokio::test]
async fn a_base64_encoded_body_is_verified_and_parsed_as_its_bytes() {
    let w = world();
    let body = serde_json::to_vec(&request_json("evt_12")).unwrap();
    let mut event = signed_at("POST", ROUTE, &body, "application/json", now());
    event.body = Some(base64::engine::general_purpose::STANDARD.encode(&body));
    event.is_base64_encoded = true;

    assert_eq!(status(&handle(event, &w.deps).await), 202);
}

#[tokio::test]
async fn unknown_routes_are_not_found_and_other_methods_not_allowed() {
    let w = world();

    let unknown = handle(
        signed_post("/v1/requestz", &request_json("evt_13")),
        &w.deps,
    )
    .await;
    let get = handle(signed_get(ROUTE), &w.deps).await;

    assert_eq!(status(&unknown), 404);
    assert_eq!(error(&unknown).0, "not_found");
    assert_eq!(status(&get), 405);
    assert_eq!(error(&get).0, "method_not_allowed");
    assert_eq!(get.headers.get("allow").unwrap(), "POST");
}

#[tokio::test]
async fn no_personal_data_reaches_the_logs() {
    // given
    let logs = LogCapture::default();
    let _guard = logs.install();
    let w = world();
    // when: accepted, repeated, and refused for a field
    let accepted = handle(signed_post(ROUTE, &request_json("evt_14")), &w.deps).await;
    handle(signed_post(ROUTE, &request_json("evt_14")), &w.deps).await;
    let mut bad = request_json("evt_15");
    bad["customer"]["email"] = json!("not an email, but still private: Zhao");
    handle(signed_post(ROUTE, &bad), &w.deps).await;
    // then
    assert_eq!(status(&accepted), 202);
    let text = logs.text();
    assert!(
        text.contains("request accepted"),
        "the capture works: {text}"
    );
    for private in [
        CUSTOMER_NAME,
        CUSTOMER_EMAIL,
        CUSTOMER_PHONE,
        DESCRIPTION,
        "Zhao",
    ] {
        assert!(!text.contains(private), "{private:?} was logged:\n{text}");
    }
}

/// Fails the first `start`, as a throttled or crashed invocation would.
struct FailingOnce {
    inner: InMemoryWorkflow,
    failed: AtomicU32,
}

#[async_trait]
impl WorkflowClient for FailingOnce {
    async fn start(&self, id: &TicketId, input: &Value) -> Result<StartOutcome, WorkflowError> {
        if self.failed.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(WorkflowError::Transient {
                code: "ThrottlingException".into(),
            });
        }
        self.inner.start(id, input).await
    }
    async fn send_task_success(&self, token: &str, output: &Value) -> Result<(), WorkflowError> {
        self.inner.send_task_success(token, output).await
    }
    async fn send_task_failure(&self, token: &str, e: &str, c: &str) -> Result<(), WorkflowError> {
        self.inner.send_task_failure(token, e, c).await
    }
    async fn send_task_heartbeat(&self, token: &str) -> Result<(), WorkflowError> {
        self.inner.send_task_heartbeat(token).await
    }
}

#[tokio::test]
async fn a_ticket_whose_run_did_not_start_gets_it_on_the_next_delivery() {
    // given: the first delivery stored the ticket but could not start its run
    let mut w = world();
    let workflow = Arc::new(FailingOnce {
        inner: InMemoryWorkflow::new(),
        failed: AtomicU32::new(0),
    });
    w.deps.workflow = workflow.clone();
    let first = handle(signed_post(ROUTE, &request_json("evt_16")), &w.deps).await;
    assert_eq!(status(&first), 503);
    assert_eq!(error(&first).0, "unavailable");
    assert!(workflow.inner.runs().is_empty());
    // when
    let again = handle(signed_post(ROUTE, &request_json("evt_16")), &w.deps).await;
    // then
    assert_eq!(status(&again), 200);
    let id: TicketId = body(&again)["ticket_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(workflow.inner.runs().keys().collect::<Vec<_>>(), vec![&id]);
}

#[tokio::test]
async fn a_repeat_for_a_ticket_already_under_way_starts_nothing() {
    // given: a ticket whose run has recorded a step
    let w = world();
    let first = body(&handle(signed_post(ROUTE, &request_json("evt_17")), &w.deps).await);
    let id: TicketId = first["ticket_id"].as_str().unwrap().parse().unwrap();
    let mut ticket = w.store.get(&id).await.unwrap().unwrap();
    let audit = ticket
        .record(
            now(),
            aftersales_domain::lifecycle::Actor::system("diagnose"),
            aftersales_domain::lifecycle::TicketEvent::EvidenceRequested,
        )
        .unwrap();
    ticket.version = 2;
    w.store.save(&ticket, 1, &[audit]).await.unwrap();
    // when
    let again = handle(signed_post(ROUTE, &request_json("evt_17")), &w.deps).await;
    // then
    assert_eq!(status(&again), 200);
    assert_eq!(body(&again), first);
    assert_eq!(starts(&w.workflow).len(), 1);
}

#[tokio::test]
async fn a_future_submission_time_does_not_stretch_the_first_response_promise() {
    let w = world();
    let mut request = request_json("evt_18");
    request["submitted_at"] = json!("2026-11-21T09:30:00Z");

    let response = handle(signed_post(ROUTE, &request), &w.deps).await;

    let due: Timestamp = body(&response)["first_response_due"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        due,
        now().checked_add(SignedDuration::from_hours(4)).unwrap()
    );
}

#[tokio::test]
async fn a_new_ticket_is_counted_by_channel_and_problem_kind_and_a_repeat_is_not() {
    let w = world();
    let request = request_json("evt_metrics");

    let (first, emitted) = captured(handle(signed_post(ROUTE, &request), &w.deps)).await;
    let (repeat, repeated) = captured(handle(signed_post(ROUTE, &request), &w.deps)).await;

    assert_eq!((status(&first), status(&repeat)), (202, 200));
    assert_eq!(emitted.names(), ["TicketsReceived"]);
    assert_eq!(emitted.value("TicketsReceived"), (json!(1), "Count".into()));
    assert_eq!(
        emitted.dimension_sets("TicketsReceived"),
        json!([["Stack"], ["Stack", "Channel"], ["Stack", "ProblemKind"]])
    );
    let document = emitted.document_of("TicketsReceived");
    assert_eq!(document["Channel"], "web");
    assert_eq!(document["ProblemKind"], "damaged_in_transit");
    assert_eq!(document["_aws"]["Timestamp"], json!(now().as_millisecond()));
    let ticket_id = body(&first)["ticket_id"].as_str().unwrap().to_owned();
    let line = document.to_string();
    for private in [
        ticket_id.as_str(),
        "evt_metrics",
        "C-1001",
        "ORD-5521",
        CUSTOMER_EMAIL,
    ] {
        assert!(!line.contains(private), "'{private}' in {line}");
    }
    assert!(repeated.is_empty(), "a repeated delivery counts nothing");
}

#[tokio::test]
async fn a_refused_request_counts_nothing() {
    let w = world();
    let mut request = request_json("evt_metrics_bad");
    request["channel"] = json!("fax");

    let (response, emitted) = captured(handle(signed_post(ROUTE, &request), &w.deps)).await;

    assert_eq!(status(&response), 400);
    assert!(emitted.is_empty());
}
