//! The `notify` step: each milestone's ticket event, the task token stored before sending,
//! the customer's language, and retries that send nothing twice.

mod metrics_support;
mod steps_support;

use std::sync::{Arc, Mutex};

use aftersales_domain::lifecycle::{TicketEvent, WaitKind};
use aftersales_domain::ticket::{RefundRecord, TaskToken, Waiting};
use aftersales_domain::{Money, ResolutionKind, TicketId};
use aftersales_service::adapters::notify::{
    Delivery, FanOut, NotificationChannel, NotifyError, OutboxChannel, OutgoingMessage,
};
use aftersales_service::handlers::steps::diagnose::{self, DiagnoseDeps, DiagnoseInput};
use aftersales_service::handlers::steps::notify::{
    NotifyDeps, NotifyInput, NotifyMilestone, SurveyLink, handle,
};
use aftersales_service::handlers::steps::propose::{self, ProposeDeps, ProposeInput};
use aftersales_service::store::MemoryStore;
use async_trait::async_trait;
use metrics_support::captured;
use serde_json::json;
use steps_support::*;

const TOKEN: &str = "AQCEAAAAKgAAAAMAAAAAAAAAAf-token";

fn deps(store: &Arc<MemoryStore>, channel: Arc<dyn NotificationChannel>) -> NotifyDeps {
    NotifyDeps {
        store: store.clone(),
        channels: FanOut::new(vec![channel]),
        policy: policy(),
        clock: clock(),
        return_address: Some("Returns Dept., 88 Warehouse Rd, Hangzhou".into()),
        survey_link: Some(SurveyLink {
            template: "https://shop.example.com/aftersales/{ticket_id}/survey".into(),
            secret: None,
        }),
    }
}

fn input(id: &TicketId, milestone: NotifyMilestone, wait: Option<WaitKind>) -> NotifyInput {
    NotifyInput {
        ticket_id: id.clone(),
        milestone,
        wait_for: wait,
        task_token: wait.map(|_| TaskToken::new(TOKEN).unwrap()),
    }
}

async fn awaiting_evidence(store: &Arc<MemoryStore>) -> TicketId {
    let mut json = request_json(&format!("evt_ev_{}", rand_suffix()));
    json["problem"]["evidence"] = json!([]);
    let id = open(store, request_from(json)).await;
    let deps = DiagnoseDeps {
        store: store.clone(),
        policy: policy(),
        clock: clock(),
    };
    let input = DiagnoseInput {
        ticket_id: id.clone(),
    };
    diagnose::handle(input, &deps).await.unwrap();
    id
}

async fn proposed(store: &Arc<MemoryStore>) -> TicketId {
    let id = open(
        store,
        request_from(request_json(&format!("evt_p_{}", rand_suffix()))),
    )
    .await;
    let diagnose_deps = DiagnoseDeps {
        store: store.clone(),
        policy: policy(),
        clock: clock(),
    };
    let diagnose_input = DiagnoseInput {
        ticket_id: id.clone(),
    };
    diagnose::handle(diagnose_input, &diagnose_deps)
        .await
        .unwrap();
    let propose_deps = ProposeDeps {
        store: store.clone(),
        policy: policy(),
        clock: clock(),
    };
    let propose_input = ProposeInput {
        ticket_id: id.clone(),
    };
    propose::handle(propose_input, &propose_deps).await.unwrap();
    id
}

async fn in_progress(
    store: &Arc<MemoryStore>,
    kind: ResolutionKind,
    amount: Option<i64>,
) -> TicketId {
    let json = request_json(&format!("evt_ip_{}", rand_suffix()));
    decided(store.as_ref(), request_from(json), kind, amount).await
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A ticket where `milestone` is sent in the process, what it waits for then, and the ticket
/// event the milestone itself records.
async fn given(
    store: &Arc<MemoryStore>,
    milestone: NotifyMilestone,
) -> (TicketId, Option<WaitKind>, Option<&'static str>) {
    use NotifyMilestone as M;
    let cny = "CNY".parse().unwrap();
    match milestone {
        M::Acknowledged => (
            open(
                store,
                request_from(request_json(&format!("evt_a_{}", rand_suffix()))),
            )
            .await,
            None,
            None,
        ),
        M::EvidenceRequested => (
            awaiting_evidence(store).await,
            Some(WaitKind::Evidence),
            None,
        ),
        M::EvidenceReminder => (
            awaiting_evidence(store).await,
            Some(WaitKind::Evidence),
            Some("reminder_sent"),
        ),
        M::UnderReview => {
            let id = open(
                store,
                request_from(request_json(&format!("evt_r_{}", rand_suffix()))),
            )
            .await;
            let events = vec![
                diagnosed_event(),
                TicketEvent::EscalatedToAgent {
                    reason: "amount_over_auto_approve_limit".into(),
                },
            ];
            advance(store.as_ref(), &id, events, |_| {}).await;
            (id, Some(WaitKind::Agent), None)
        }
        M::Proposal => (proposed(store).await, Some(WaitKind::Decision), None),
        M::DecisionReminder => (
            proposed(store).await,
            Some(WaitKind::Decision),
            Some("reminder_sent"),
        ),
        M::RefundIssued => {
            let id = in_progress(store, ResolutionKind::Refund, Some(29900)).await;
            let amount = Money::new(29900, cny);
            let event = TicketEvent::RefundIssued {
                amount,
                refund_id: "re_1".into(),
            };
            advance(store.as_ref(), &id, vec![event], |ticket| {
                ticket.refunds.push(RefundRecord {
                    idempotency_key: format!("{}:refund", ticket.id),
                    amount,
                    provider_refund_id: "re_1".into(),
                    at: now(),
                });
            })
            .await;
            (id, None, None)
        }
        M::ReturnRequested => (
            in_progress(store, ResolutionKind::ReturnRefund, Some(29900)).await,
            Some(WaitKind::ReturnParcel),
            Some("return_requested"),
        ),
        M::ReturnReminder => {
            let id = in_progress(store, ResolutionKind::ReturnRefund, Some(29900)).await;
            advance(
                store.as_ref(),
                &id,
                vec![TicketEvent::ReturnRequested],
                |_| {},
            )
            .await;
            (id, Some(WaitKind::ReturnParcel), Some("reminder_sent"))
        }
        M::ReturnReceived => (
            in_progress(store, ResolutionKind::ReturnRefund, Some(29900)).await,
            None,
            None,
        ),
        M::ExchangeArranged => (
            in_progress(store, ResolutionKind::Exchange, None).await,
            None,
            Some("exchange_arranged"),
        ),
        M::RepairArranged => (
            in_progress(store, ResolutionKind::Repair, None).await,
            None,
            Some("repair_arranged"),
        ),
        M::PartsSent => (
            in_progress(store, ResolutionKind::Parts, None).await,
            None,
            Some("parts_sent"),
        ),
        M::CouponIssued => (
            in_progress(store, ResolutionKind::Coupon, Some(2000)).await,
            None,
            Some("coupon_issued"),
        ),
        M::PriceAdjusted => (
            in_progress(store, ResolutionKind::PriceAdjustment, Some(2990)).await,
            None,
            Some("price_adjusted"),
        ),
        M::Resolved => (
            in_progress(store, ResolutionKind::Refund, Some(29900)).await,
            None,
            Some("resolved"),
        ),
        M::Rejected => {
            let id = open(
                store,
                request_from(request_json(&format!("evt_x_{}", rand_suffix()))),
            )
            .await;
            let events = vec![
                diagnosed_event(),
                TicketEvent::Rejected {
                    reason: "outside_window".into(),
                },
            ];
            advance(store.as_ref(), &id, events, |_| {}).await;
            (id, None, None)
        }
        M::ClosedUnanswered => (
            awaiting_evidence(store).await,
            None,
            Some("closed_unanswered"),
        ),
        M::Survey => {
            let id = in_progress(store, ResolutionKind::Refund, Some(29900)).await;
            let event = TicketEvent::Resolved {
                kind: ResolutionKind::Refund,
            };
            advance(store.as_ref(), &id, vec![event], |_| {}).await;
            (id, Some(WaitKind::Survey), None)
        }
        M::SurveyReminder => {
            let (id, _, _) = Box::pin(given(store, M::Survey)).await;
            (id, Some(WaitKind::Survey), Some("reminder_sent"))
        }
        M::EscalatedToSupervisor | M::ReviewOverdue => {
            let (id, _, _) = Box::pin(given(store, M::UnderReview)).await;
            let event = if milestone == M::ReviewOverdue {
                "follow_up_requested"
            } else {
                "escalated_to_supervisor"
            };
            (id, Some(WaitKind::Agent), Some(event))
        }
        M::DefaultOptionAccepted => (proposed(store).await, None, Some("option_accepted")),
        M::FollowUp => {
            let id = in_progress(store, ResolutionKind::Refund, Some(29900)).await;
            let events = vec![
                TicketEvent::Resolved {
                    kind: ResolutionKind::Refund,
                },
                TicketEvent::SurveyAnswered { score: 1 },
            ];
            advance(store.as_ref(), &id, events, |_| {}).await;
            (id, None, None)
        }
    }
}

#[tokio::test]
async fn every_milestone_records_its_event_stores_the_token_and_sends_one_message() {
    for milestone in NotifyMilestone::ALL {
        let store = Arc::new(MemoryStore::new());
        let outbox = OutboxChannel::new();
        let (id, wait, event) = given(&store, milestone).await;
        let before = events(store.as_ref(), &id).await;

        let out = handle(
            input(&id, milestone, wait),
            &deps(&store, Arc::new(outbox.clone())),
        )
        .await
        .unwrap_or_else(|e| panic!("{milestone}: {e}"));

        let messages = usize::from(milestone.message().is_some());
        assert_eq!(
            (out.sent as usize, out.replayed),
            (messages, false),
            "{milestone}"
        );
        let mut expected = before.clone();
        expected.extend(event);
        if messages == 1 {
            expected.push("notification_sent");
        }
        assert_eq!(events(store.as_ref(), &id).await, expected, "{milestone}");
        let ticket = load(store.as_ref(), &id).await;
        match wait {
            Some(kind) => {
                let waiting = ticket.waiting.expect("waiting stored");
                assert_eq!(waiting.kind, kind, "{milestone}");
                assert_eq!(waiting.token.expose(), TOKEN, "{milestone}");
            }
            None if milestone == NotifyMilestone::ClosedUnanswered => {
                assert!(ticket.waiting.is_none());
                assert!(ticket.status.is_terminal());
            }
            None => {}
        }
        let sent = outbox.for_ticket(&id);
        assert_eq!(sent.len(), messages, "{milestone}");
        if let (Some(message), Some(sent)) = (milestone.message(), sent.first()) {
            assert_eq!(sent.milestone(), message);
            assert!(
                !sent.body().contains(TOKEN),
                "{milestone}: the token stays private"
            );
        }
    }
}

#[tokio::test]
async fn closing_unanswered_records_what_the_ticket_waited_for() {
    let store = Arc::new(MemoryStore::new());
    let id = awaiting_evidence(&store).await;

    handle(
        input(&id, NotifyMilestone::ClosedUnanswered, None),
        &deps(&store, Arc::new(OutboxChannel::new())),
    )
    .await
    .unwrap();

    let trail = trail(store.as_ref(), &id).await;
    assert!(trail.iter().any(|e| e.event
        == TicketEvent::ClosedUnanswered {
            waiting_for: WaitKind::Evidence
        }));
}

/// The photos came as the evidence's last deadline fired: closing is refused as
/// `AlreadyAnswered`, naming the wait the workflow routes on; nothing is recorded or sent.
#[tokio::test]
async fn closing_a_ticket_whose_answer_came_at_the_deadline_is_already_answered() {
    let store = Arc::new(MemoryStore::new());
    let outbox = OutboxChannel::new();
    let id = awaiting_evidence(&store).await;
    advance(
        store.as_ref(),
        &id,
        vec![TicketEvent::EvidenceReceived { items: 1 }],
        |ticket| ticket.waiting = None,
    )
    .await;
    let before = events(store.as_ref(), &id).await;

    let error = handle(
        input(&id, NotifyMilestone::ClosedUnanswered, None),
        &deps(&store, Arc::new(outbox.clone())),
    )
    .await
    .unwrap_err();

    assert_eq!(error.name(), "AlreadyAnswered", "{error}");
    assert!(
        error.to_string().contains("no longer waits for evidence"),
        "{error}"
    );
    assert_eq!(events(store.as_ref(), &id).await, before);
    assert!(outbox.for_ticket(&id).is_empty());
}

/// A channel that looks at the stored ticket while it sends, as a fast customer would.
struct PeekingChannel {
    store: Arc<MemoryStore>,
    seen: Mutex<Option<Option<Waiting>>>,
}

#[async_trait]
impl NotificationChannel for PeekingChannel {
    fn name(&self) -> &'static str {
        "peeking"
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<Delivery, NotifyError> {
        let ticket = load(self.store.as_ref(), msg.ticket_id()).await;
        *self.seen.lock().unwrap() = Some(ticket.waiting);
        Ok(Delivery {
            channel: "peeking",
            reference: None,
        })
    }
}

#[tokio::test]
async fn the_token_is_stored_before_the_message_goes_out() {
    let store = Arc::new(MemoryStore::new());
    let id = proposed(&store).await;
    let channel = Arc::new(PeekingChannel {
        store: store.clone(),
        seen: Mutex::new(None),
    });

    handle(
        input(&id, NotifyMilestone::Proposal, Some(WaitKind::Decision)),
        &deps(&store, channel.clone()),
    )
    .await
    .unwrap();

    let seen = channel.seen.lock().unwrap().clone().expect("sent");
    let waiting = seen.expect("the token was stored when the message went out");
    assert_eq!(waiting.token.expose(), TOKEN);
    assert_eq!(waiting.kind, WaitKind::Decision);
}

#[tokio::test]
async fn a_rerun_sends_nothing_twice_and_keeps_the_newest_token() {
    let store = Arc::new(MemoryStore::new());
    let outbox = OutboxChannel::new();
    let id = proposed(&store).await;
    let deps = deps(&store, Arc::new(outbox.clone()));
    handle(
        input(&id, NotifyMilestone::Proposal, Some(WaitKind::Decision)),
        &deps,
    )
    .await
    .unwrap();
    let before = events(store.as_ref(), &id).await;

    let mut again = input(&id, NotifyMilestone::Proposal, Some(WaitKind::Decision));
    again.task_token = TaskToken::new("second-token");
    let out = handle(again, &deps).await.unwrap();

    assert!(out.replayed);
    assert_eq!(out.sent, 0);
    assert_eq!(outbox.for_ticket(&id).len(), 1);
    assert_eq!(events(store.as_ref(), &id).await, before);
    let waiting = load(store.as_ref(), &id).await.waiting.unwrap();
    assert_eq!(waiting.token.expose(), "second-token");
}

/// A channel that fails retryably the first time, then delivers.
struct FlakyChannel {
    inner: OutboxChannel,
    failures_left: Mutex<u32>,
    keys: Mutex<Vec<String>>,
}

#[async_trait]
impl NotificationChannel for FlakyChannel {
    fn name(&self) -> &'static str {
        "flaky"
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<Delivery, NotifyError> {
        self.keys
            .lock()
            .unwrap()
            .push(msg.idempotency_key().to_string());
        {
            let mut left = self.failures_left.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Err(NotifyError::Retryable {
                    channel: "flaky",
                    reason: "503".into(),
                });
            }
        }
        self.inner.send(msg).await
    }
}

#[tokio::test]
async fn a_failed_send_is_retryable_and_the_retry_records_each_event_once_with_the_same_key() {
    let store = Arc::new(MemoryStore::new());
    let id = in_progress(&store, ResolutionKind::ReturnRefund, Some(29900)).await;
    let channel = Arc::new(FlakyChannel {
        inner: OutboxChannel::new(),
        failures_left: Mutex::new(1),
        keys: Mutex::new(Vec::new()),
    });
    let deps = deps(&store, channel.clone());
    let step = || {
        input(
            &id,
            NotifyMilestone::ReturnRequested,
            Some(WaitKind::ReturnParcel),
        )
    };

    let error = handle(step(), &deps).await.unwrap_err();
    let retried = handle(step(), &deps).await.unwrap();

    assert_eq!(error.name(), "Retryable");
    assert_eq!(retried.sent, 1);
    let keys = channel.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
    let names = events(store.as_ref(), &id).await;
    let count = |name: &str| names.iter().filter(|n| **n == name).count();
    assert_eq!(count("return_requested"), 1);
    assert_eq!(count("notification_sent"), 1);
}

#[tokio::test]
async fn a_chinese_speaking_customer_is_written_to_in_chinese() {
    let store = Arc::new(MemoryStore::new());
    let outbox = OutboxChannel::new();
    let mut json = request_json("evt_zh");
    json["customer"]["locale"] = json!("zh-CN");
    let id = open(&store, request_from(json)).await;

    handle(
        input(&id, NotifyMilestone::Acknowledged, None),
        &deps(&store, Arc::new(outbox.clone())),
    )
    .await
    .unwrap();

    let sent = outbox.for_ticket(&id);
    assert_eq!(sent[0].locale().as_str(), "zh-CN");
    assert!(sent[0].body().contains("您好"), "{}", sent[0].body());
}

#[tokio::test]
async fn a_token_without_what_it_waits_for_is_invalid_input() {
    let store = Arc::new(MemoryStore::new());
    let id = proposed(&store).await;
    let mut step = input(&id, NotifyMilestone::Proposal, None);
    step.task_token = TaskToken::new(TOKEN);

    let error = handle(step, &deps(&store, Arc::new(OutboxChannel::new())))
        .await
        .unwrap_err();

    assert_eq!(error.name(), "InvalidInput");
}

#[tokio::test]
async fn waiting_for_something_the_status_does_not_allow_is_a_policy_violation() {
    let store = Arc::new(MemoryStore::new());
    let outbox = OutboxChannel::new();
    let id = open(&store, request_from(request_json("evt_wrong_wait"))).await;

    let error = handle(
        input(&id, NotifyMilestone::Acknowledged, Some(WaitKind::Decision)),
        &deps(&store, Arc::new(outbox.clone())),
    )
    .await
    .unwrap_err();

    assert_eq!(error.name(), "PolicyViolation");
    assert!(outbox.messages().is_empty());
    assert!(load(store.as_ref(), &id).await.waiting.is_none());
}

/// The wait's step runs again (a retry after its message failed, a re-run after a crash) with a
/// new token, but the answer came in the meantime against the first token: the step neither
/// waits again nor sends anything, and tells the workflow to take the recorded answer.
#[tokio::test]
async fn a_wait_entered_again_after_its_answer_came_is_already_answered() {
    let store = Arc::new(MemoryStore::new());
    let outbox = OutboxChannel::new();
    let deps = deps(&store, Arc::new(outbox.clone()));
    let id = proposed(&store).await;
    handle(
        input(&id, NotifyMilestone::Proposal, Some(WaitKind::Decision)),
        &deps,
    )
    .await
    .unwrap();
    advance(
        store.as_ref(),
        &id,
        vec![TicketEvent::OptionAccepted {
            option_id: "opt-1".into(),
            kind: ResolutionKind::Refund,
            by_default: false,
        }],
        |ticket| ticket.waiting = None,
    )
    .await;
    let before = events(store.as_ref(), &id).await;

    let mut again = input(&id, NotifyMilestone::Proposal, Some(WaitKind::Decision));
    again.task_token = TaskToken::new("second-token");
    let error = handle(again, &deps).await.unwrap_err();

    assert_eq!(error.name(), "AlreadyAnswered", "{error}");
    assert_eq!(outbox.for_ticket(&id).len(), 1);
    assert_eq!(events(store.as_ref(), &id).await, before);
    assert!(load(store.as_ref(), &id).await.waiting.is_none());
}

/// The same when the wait's own milestone no longer applies: the return instructions' step
/// re-run after the warehouse reported the parcel.
#[tokio::test]
async fn return_instructions_run_again_after_the_parcel_came_are_already_answered() {
    let store = Arc::new(MemoryStore::new());
    let outbox = OutboxChannel::new();
    let deps = deps(&store, Arc::new(outbox.clone()));
    let id = in_progress(&store, ResolutionKind::ReturnRefund, Some(29900)).await;
    let step = || {
        input(
            &id,
            NotifyMilestone::ReturnRequested,
            Some(WaitKind::ReturnParcel),
        )
    };
    handle(step(), &deps).await.unwrap();
    advance(
        store.as_ref(),
        &id,
        vec![TicketEvent::ReturnReceived {
            units: 1,
            all_restockable: true,
        }],
        |ticket| ticket.waiting = None,
    )
    .await;

    let error = handle(step(), &deps).await.unwrap_err();

    assert_eq!(error.name(), "AlreadyAnswered", "{error}");
    assert_eq!(outbox.for_ticket(&id).len(), 1);
    let names = events(store.as_ref(), &id).await;
    assert_eq!(
        names.iter().filter(|n| **n == "return_requested").count(),
        1
    );
}

/// Two refunds the customer was not told about (execute-refund sends nothing itself): the next
/// message owes one `refund_issued` per refund, each naming its own amount, oldest first.
#[tokio::test]
async fn each_owed_refund_message_names_its_own_refund() {
    let store = Arc::new(MemoryStore::new());
    let outbox = OutboxChannel::new();
    let deps = deps(&store, Arc::new(outbox.clone()));
    let id = refunded_twice(&store).await;

    handle(input(&id, NotifyMilestone::Resolved, None), &deps)
        .await
        .unwrap();

    let sent = outbox.for_ticket(&id);
    let milestones: Vec<String> = sent
        .iter()
        .map(|m| json!(m.milestone()).as_str().unwrap().to_owned())
        .collect();
    assert_eq!(milestones, ["refund_issued", "refund_issued", "resolved"]);
    assert!(sent[0].body().contains("120.00"), "{}", sent[0].body());
    assert!(!sent[0].body().contains("179.00"), "{}", sent[0].body());
    assert!(sent[1].body().contains("179.00"), "{}", sent[1].body());
}

/// A ticket with two refunds the customer has not been told of yet (owed messages).
async fn refunded_twice(store: &Arc<MemoryStore>) -> TicketId {
    let id = in_progress(store, ResolutionKind::Refund, Some(29900)).await;
    let cny = "CNY".parse().unwrap();
    for (n, minor) in [(1, 12000), (2, 17900)] {
        let amount = Money::new(minor, cny);
        let event = TicketEvent::RefundIssued {
            amount,
            refund_id: format!("re_{n}"),
        };
        advance(store.as_ref(), &id, vec![event], |ticket| {
            ticket.refunds.push(RefundRecord {
                idempotency_key: format!("{}:refund_{n}", ticket.id),
                amount,
                provider_refund_id: format!("re_{n}"),
                at: now(),
            });
        })
        .await;
    }
    id
}

#[tokio::test]
async fn owed_messages_and_the_own_message_are_recorded_in_one_save() {
    let store = Arc::new(MemoryStore::new());
    let outbox = OutboxChannel::new();
    let deps = deps(&store, Arc::new(outbox.clone()));
    let id = refunded_twice(&store).await;
    let before = load(store.as_ref(), &id).await.version;

    handle(input(&id, NotifyMilestone::Resolved, None), &deps)
        .await
        .unwrap();

    assert_eq!(outbox.for_ticket(&id).len(), 3);
    let names = events(store.as_ref(), &id).await;
    let sent = names.iter().filter(|n| **n == "notification_sent").count();
    assert_eq!(sent, 3, "{names:?}");
    // The milestone's own save (`resolved`), then one save for the three messages.
    assert_eq!(load(store.as_ref(), &id).await.version, before + 2);
}

/// A channel that fails retryably the first time it is given `milestone`'s message.
struct FailsOnceOn {
    milestone: &'static str,
    failed: Mutex<bool>,
    inner: OutboxChannel,
}

#[async_trait]
impl NotificationChannel for FailsOnceOn {
    fn name(&self) -> &'static str {
        "fails-once"
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<Delivery, NotifyError> {
        let fail_now = {
            let mut failed = self.failed.lock().unwrap();
            let now = !*failed && json!(msg.milestone()) == json!(self.milestone);
            *failed |= now;
            now
        };
        if fail_now {
            return Err(NotifyError::Retryable {
                channel: "fails-once",
                reason: "503".into(),
            });
        }
        self.inner.send(msg).await
    }
}

#[tokio::test]
async fn owed_messages_sent_before_a_failed_one_are_recorded_and_not_sent_again() {
    let store = Arc::new(MemoryStore::new());
    let outbox = OutboxChannel::new();
    let channel = Arc::new(FailsOnceOn {
        milestone: "resolved",
        failed: Mutex::new(false),
        inner: outbox.clone(),
    });
    let deps = deps(&store, channel);
    let id = refunded_twice(&store).await;

    let error = handle(input(&id, NotifyMilestone::Resolved, None), &deps)
        .await
        .unwrap_err();
    let names = events(store.as_ref(), &id).await;
    let recorded = names.iter().filter(|n| **n == "notification_sent").count();
    let retried = handle(input(&id, NotifyMilestone::Resolved, None), &deps)
        .await
        .unwrap();

    assert_eq!(error.name(), "Retryable");
    assert_eq!(recorded, 2, "the two refund messages went out: {names:?}");
    assert_eq!(retried.sent, 1);
    let milestones: Vec<String> = outbox
        .for_ticket(&id)
        .iter()
        .map(|m| json!(m.milestone()).as_str().unwrap().to_owned())
        .collect();
    assert_eq!(milestones, ["refund_issued", "refund_issued", "resolved"]);
    let names = events(store.as_ref(), &id).await;
    assert_eq!(
        names.iter().filter(|n| **n == "notification_sent").count(),
        3
    );
}

#[tokio::test]
async fn the_step_input_reads_the_contracts_json() {
    let value = json!({"ticket_id": "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB", "milestone": "proposal",
                       "wait_for": "decision", "task_token": TOKEN});
    let parsed: NotifyInput = aftersales_service::handlers::steps::parse_input(value).unwrap();
    assert_eq!(parsed.milestone, NotifyMilestone::Proposal);
    assert_eq!(parsed.wait_for, Some(WaitKind::Decision));
    for milestone in NotifyMilestone::ALL {
        let value =
            json!({"ticket_id": "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB", "milestone": milestone.as_str()});
        let parsed: NotifyInput = aftersales_service::handlers::steps::parse_input(value).unwrap();
        assert_eq!(parsed.milestone, milestone);
    }
}

#[tokio::test]
async fn the_default_option_becomes_the_chosen_resolution() {
    let store = Arc::new(MemoryStore::new());
    let id = proposed(&store).await;

    handle(
        input(&id, NotifyMilestone::DefaultOptionAccepted, None),
        &deps(&store, Arc::new(OutboxChannel::new())),
    )
    .await
    .unwrap();

    let ticket = load(store.as_ref(), &id).await;
    let chosen = ticket.chosen.expect("chosen");
    let top = &ticket.proposal.unwrap().options[0];
    assert_eq!(chosen.option_id.as_deref(), Some(top.id.as_str()));
    assert_eq!((chosen.kind, chosen.amount), (top.kind, top.amount));
    assert!(matches!(
        trail(store.as_ref(), &id).await.last().unwrap().event,
        TicketEvent::OptionAccepted {
            by_default: true,
            ..
        }
    ));
}

#[tokio::test]
async fn a_ticket_sent_to_a_person_from_in_progress_is_escalated_first() {
    let store = Arc::new(MemoryStore::new());
    let id = in_progress(&store, ResolutionKind::Refund, Some(29900)).await;

    handle(
        input(&id, NotifyMilestone::UnderReview, Some(WaitKind::Agent)),
        &deps(&store, Arc::new(OutboxChannel::new())),
    )
    .await
    .unwrap();

    let ticket = load(store.as_ref(), &id).await;
    assert_eq!(ticket.status.as_str(), "under_review");
    assert_eq!(ticket.waiting.unwrap().kind, WaitKind::Agent);
    let names = events(store.as_ref(), &id).await;
    assert_eq!(
        names[names.len() - 2..],
        ["escalated_to_agent", "notification_sent"]
    );
}

/// What each milestone counts when its invocation is the first (`docs/metrics.md`).
fn counted(milestone: NotifyMilestone) -> Vec<&'static str> {
    use NotifyMilestone as M;
    match milestone {
        M::EvidenceRequested | M::UnderReview | M::Proposal => vec!["TimeToFirstResponse"],
        M::Rejected => vec!["TimeToFirstResponse", "TicketsClosed"],
        M::Resolved => vec!["TimeToResolution", "TicketsClosed", "TicketsResolved"],
        M::ClosedUnanswered => vec!["TicketsClosed"],
        _ => vec![],
    }
}

#[tokio::test]
async fn each_milestone_counts_its_business_metrics_once_and_a_rerun_counts_nothing() {
    for milestone in NotifyMilestone::ALL {
        let store = Arc::new(MemoryStore::new());
        let (id, wait, _) = given(&store, milestone).await;
        let deps = deps(&store, Arc::new(OutboxChannel::new()));

        let (out, emitted) = captured(handle(input(&id, milestone, wait), &deps)).await;
        out.unwrap_or_else(|e| panic!("{milestone}: {e}"));
        assert_eq!(emitted.names(), counted(milestone), "{milestone}");

        let (again, emitted) = captured(handle(input(&id, milestone, wait), &deps)).await;
        again.unwrap_or_else(|e| panic!("{milestone} again: {e}"));
        assert!(emitted.is_empty(), "{milestone}: {:?}", emitted.names());
    }
}

#[tokio::test]
async fn the_first_answer_counts_the_seconds_since_the_ticket_was_received() {
    let store = Arc::new(MemoryStore::new());
    let id = proposed(&store).await;
    let received = load(store.as_ref(), &id).await.received_at;
    let deps = deps(&store, Arc::new(OutboxChannel::new()));

    let (out, emitted) = captured(handle(
        input(&id, NotifyMilestone::Proposal, Some(WaitKind::Decision)),
        &deps,
    ))
    .await;

    out.unwrap();
    let seconds = now().duration_since(received).as_secs();
    assert!(seconds > 0);
    assert_eq!(
        emitted.value("TimeToFirstResponse"),
        (json!(seconds), "Seconds".into())
    );
    assert_eq!(
        emitted.dimension_sets("TimeToFirstResponse"),
        json!([["Stack"]])
    );
}

#[tokio::test]
async fn an_answer_after_an_earlier_evidence_request_is_not_a_first_response() {
    let store = Arc::new(MemoryStore::new());
    let id = proposed(&store).await;
    let earlier = TicketEvent::NotificationSent {
        milestone: "evidence_requested".into(),
    };
    advance(store.as_ref(), &id, vec![earlier], |_| {}).await;
    let deps = deps(&store, Arc::new(OutboxChannel::new()));

    let (out, emitted) = captured(handle(
        input(&id, NotifyMilestone::Proposal, Some(WaitKind::Decision)),
        &deps,
    ))
    .await;

    out.unwrap();
    assert!(emitted.is_empty(), "{:?}", emitted.names());
}

#[tokio::test]
async fn a_resolution_counts_its_time_and_closes_the_ticket_as_resolved_by_kind() {
    let store = Arc::new(MemoryStore::new());
    let (id, wait, _) = given(&store, NotifyMilestone::Resolved).await;
    let deps = deps(&store, Arc::new(OutboxChannel::new()));

    let (out, emitted) = captured(handle(input(&id, NotifyMilestone::Resolved, wait), &deps)).await;

    out.unwrap();
    let resolution = json!([["Stack"], ["Stack", "Resolution"]]);
    assert_eq!(emitted.dimension_sets("TimeToResolution"), resolution);
    assert_eq!(emitted.dimension_sets("TicketsResolved"), resolution);
    assert_eq!(
        emitted.dimension_sets("TicketsClosed"),
        json!([["Stack"], ["Stack", "Outcome"]])
    );
    let document = emitted.document_of("TicketsClosed");
    assert_eq!(document["Outcome"], "resolved");
    assert_eq!(document["Resolution"], "refund");
    assert_eq!(emitted.value("TicketsResolved"), (json!(1), "Count".into()));
    assert_eq!(emitted.value("TimeToResolution").1, "Seconds");
}

#[tokio::test]
async fn rejections_and_unanswered_closes_count_their_outcome() {
    for (milestone, outcome) in [
        (NotifyMilestone::Rejected, "rejected"),
        (NotifyMilestone::ClosedUnanswered, "closed_unanswered"),
    ] {
        let store = Arc::new(MemoryStore::new());
        let (id, wait, _) = given(&store, milestone).await;
        let deps = deps(&store, Arc::new(OutboxChannel::new()));

        let (out, emitted) = captured(handle(input(&id, milestone, wait), &deps)).await;

        out.unwrap();
        assert_eq!(emitted.document_of("TicketsClosed")["Outcome"], outcome);
    }
}
