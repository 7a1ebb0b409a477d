//! The `survey` step: root cause to the owning department (no personal data), low scores
//! followed up, unanswered surveys closed.

mod metrics_support;
mod steps_support;

use std::sync::Arc;

use aftersales_domain::lifecycle::{TicketEvent, TicketStatus};
use aftersales_domain::ticket::SurveyResult;
use aftersales_domain::{Department, ResolutionKind, TicketId};
use aftersales_service::adapters::feedback::InMemoryFeedbackPublisher;
use aftersales_service::handlers::steps::diagnose::{self, DiagnoseDeps, DiagnoseInput};
use aftersales_service::handlers::steps::survey::{SurveyAction, SurveyDeps, SurveyInput, handle};
use aftersales_service::store::MemoryStore;
use metrics_support::captured;
use serde_json::json;
use steps_support::*;

fn deps(store: &Arc<MemoryStore>, feedback: &Arc<InMemoryFeedbackPublisher>) -> SurveyDeps {
    SurveyDeps {
        store: store.clone(),
        feedback: feedback.clone(),
        policy: policy(),
        clock: clock(),
    }
}

fn input(id: &TicketId, action: SurveyAction) -> SurveyInput {
    SurveyInput {
        ticket_id: id.clone(),
        action,
    }
}

/// A diagnosed quality defect, refunded and resolved; `score` is what `respond` stored.
async fn resolved(store: &Arc<MemoryStore>, request_id: &str, score: Option<u8>) -> TicketId {
    let id = open(store, request_from(request_json(request_id))).await;
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
    let events = vec![
        TicketEvent::EscalatedToAgent {
            reason: "test".into(),
        },
        TicketEvent::AgentDecided {
            resolution: ResolutionKind::Refund,
        },
        TicketEvent::Resolved {
            kind: ResolutionKind::Refund,
        },
    ];
    advance(store.as_ref(), &id, events, |ticket| {
        ticket.resolution = Some(ResolutionKind::Refund);
        ticket.survey = score.map(|score| SurveyResult {
            score: Some(score),
            at: now(),
        });
    })
    .await;
    id
}

#[tokio::test]
async fn a_low_score_asks_for_a_follow_up_and_sends_one_anonymous_root_cause() {
    let store = Arc::new(MemoryStore::new());
    let feedback = Arc::new(InMemoryFeedbackPublisher::new());
    let id = resolved(&store, "evt_low", Some(2)).await;

    let out = handle(input(&id, SurveyAction::Record), &deps(&store, &feedback))
        .await
        .unwrap();

    assert!(out.low_score);
    assert_eq!(out.department, Department::Quality);
    let messages = feedback.messages(Department::Quality);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].dedup_id, id.to_string());
    let body = messages[0].body.to_string();
    for personal in [EMAIL, PHONE, NAME, DESCRIPTION, "Li", "cdn.example.com"] {
        assert!(!body.contains(personal), "'{personal}' leaked into {body}");
    }
    assert_eq!(messages[0].body["problem_kind"], "quality_defect");
    assert_eq!(messages[0].body["responsibility"], "merchant");
    assert_eq!(messages[0].body["resolution"], "refund");
    assert_eq!(messages[0].body["survey"]["score"], 2);
    for other in [
        Department::Logistics,
        Department::Warehouse,
        Department::Service,
    ] {
        assert!(feedback.messages(other).is_empty());
    }
    let names = events(store.as_ref(), &id).await;
    assert_eq!(
        names[names.len() - 3..],
        ["survey_answered", "feedback_sent", "follow_up_requested"]
    );
    assert_eq!(load(store.as_ref(), &id).await.status, TicketStatus::Closed);
}

#[tokio::test]
async fn a_good_score_sends_feedback_without_a_follow_up() {
    let store = Arc::new(MemoryStore::new());
    let feedback = Arc::new(InMemoryFeedbackPublisher::new());
    let id = resolved(&store, "evt_good", Some(5)).await;

    let out = handle(input(&id, SurveyAction::Record), &deps(&store, &feedback))
        .await
        .unwrap();

    assert!(!out.low_score);
    assert_eq!(feedback.messages(Department::Quality).len(), 1);
    let names = events(store.as_ref(), &id).await;
    assert!(!names.contains(&"follow_up_requested"));
    assert_eq!(
        names[names.len() - 2..],
        ["survey_answered", "feedback_sent"]
    );
}

#[tokio::test]
async fn an_answer_respond_already_closed_is_not_recorded_again() {
    let store = Arc::new(MemoryStore::new());
    let feedback = Arc::new(InMemoryFeedbackPublisher::new());
    let id = resolved(&store, "evt_closed", Some(1)).await;
    let answered = TicketEvent::SurveyAnswered { score: 1 };
    advance(store.as_ref(), &id, vec![answered], |_| {}).await;

    let out = handle(input(&id, SurveyAction::Record), &deps(&store, &feedback))
        .await
        .unwrap();

    assert!(out.low_score);
    let names = events(store.as_ref(), &id).await;
    assert_eq!(names.iter().filter(|n| **n == "survey_answered").count(), 1);
    assert_eq!(
        names[names.len() - 2..],
        ["feedback_sent", "follow_up_requested"]
    );
}

#[tokio::test]
async fn no_answer_closes_the_waiting_survey_as_unanswered_and_still_sends_the_root_cause() {
    let store = Arc::new(MemoryStore::new());
    let feedback = Arc::new(InMemoryFeedbackPublisher::new());
    let id = resolved(&store, "evt_silent", None).await;

    let out = handle(input(&id, SurveyAction::NoAnswer), &deps(&store, &feedback))
        .await
        .unwrap();

    assert!(!out.low_score);
    let messages = feedback.messages(Department::Quality);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body["survey"]["answered"], false);
    let names = events(store.as_ref(), &id).await;
    assert_eq!(
        names[names.len() - 2..],
        ["survey_unanswered", "feedback_sent"]
    );
    let ticket = load(store.as_ref(), &id).await;
    assert_eq!(ticket.status, TicketStatus::Closed);
    assert!(ticket.waiting.is_none());
}

#[tokio::test]
async fn a_rerun_sends_one_message_and_records_each_event_once() {
    let store = Arc::new(MemoryStore::new());
    let feedback = Arc::new(InMemoryFeedbackPublisher::new());
    let id = resolved(&store, "evt_twice", Some(2)).await;
    let deps = deps(&store, &feedback);

    let first = handle(input(&id, SurveyAction::Record), &deps)
        .await
        .unwrap();
    let second = handle(input(&id, SurveyAction::Record), &deps)
        .await
        .unwrap();

    assert_eq!(first, second);
    assert_eq!(feedback.messages(Department::Quality).len(), 1);
    let names = events(store.as_ref(), &id).await;
    for name in ["survey_answered", "feedback_sent", "follow_up_requested"] {
        assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name}");
    }
}

#[tokio::test]
async fn recording_without_any_answer_is_invalid_input() {
    let store = Arc::new(MemoryStore::new());
    let feedback = Arc::new(InMemoryFeedbackPublisher::new());
    let id = resolved(&store, "evt_no_score", None).await;

    let error = handle(input(&id, SurveyAction::Record), &deps(&store, &feedback))
        .await
        .unwrap_err();

    assert_eq!(error.name(), "InvalidInput");
    assert!(feedback.messages(Department::Quality).is_empty());
}

/// The score was stored as the survey's last deadline fired: "no answer" is refused as
/// `AlreadyAnswered` (the workflow records the answer instead); nothing is published.
#[tokio::test]
async fn no_answer_for_a_ticket_holding_a_score_is_already_answered() {
    let store = Arc::new(MemoryStore::new());
    let feedback = Arc::new(InMemoryFeedbackPublisher::new());
    let id = resolved(&store, "evt_late_score", Some(2)).await;

    let error = handle(input(&id, SurveyAction::NoAnswer), &deps(&store, &feedback))
        .await
        .unwrap_err();

    assert_eq!(error.name(), "AlreadyAnswered", "{error}");
    assert!(feedback.messages(Department::Quality).is_empty());
    assert!(
        !events(store.as_ref(), &id)
            .await
            .contains(&"survey_unanswered")
    );
}

#[tokio::test]
async fn a_low_score_counts_the_score_by_root_cause_and_department_and_one_follow_up() {
    let store = Arc::new(MemoryStore::new());
    let feedback = Arc::new(InMemoryFeedbackPublisher::new());
    let id = resolved(&store, "evt_metrics_low", Some(2)).await;
    let deps = deps(&store, &feedback);

    let (out, emitted) = captured(handle(input(&id, SurveyAction::Record), &deps)).await;

    out.unwrap();
    assert_eq!(emitted.names(), ["SurveyScore", "LowScoreFollowUps"]);
    assert_eq!(emitted.value("SurveyScore"), (json!(2), "None".into()));
    assert_eq!(
        emitted.dimension_sets("SurveyScore"),
        json!([["Stack"], ["Stack", "RootCause"], ["Stack", "Department"]])
    );
    let score = emitted.document_of("SurveyScore");
    assert_eq!(score["RootCause"], "quality_defect");
    assert_eq!(score["Department"], "quality");
    assert_eq!(
        emitted.value("LowScoreFollowUps"),
        (json!(1), "Count".into())
    );
    assert_eq!(
        emitted.dimension_sets("LowScoreFollowUps"),
        json!([["Stack", "RootCause"]])
    );

    let (again, emitted) = captured(handle(input(&id, SurveyAction::Record), &deps)).await;
    again.unwrap();
    assert!(
        emitted.is_empty(),
        "a re-run counts nothing: {:?}",
        emitted.names()
    );
}

#[tokio::test]
async fn a_good_score_counts_no_follow_up() {
    let store = Arc::new(MemoryStore::new());
    let feedback = Arc::new(InMemoryFeedbackPublisher::new());
    let id = resolved(&store, "evt_metrics_good", Some(5)).await;

    let (out, emitted) = captured(handle(
        input(&id, SurveyAction::Record),
        &deps(&store, &feedback),
    ))
    .await;

    out.unwrap();
    assert_eq!(emitted.names(), ["SurveyScore"]);
    assert_eq!(emitted.value("SurveyScore").0, json!(5));
}

#[tokio::test]
async fn an_unanswered_survey_is_counted_once_without_a_score() {
    let store = Arc::new(MemoryStore::new());
    let feedback = Arc::new(InMemoryFeedbackPublisher::new());
    let id = resolved(&store, "evt_metrics_silent", None).await;
    let deps = deps(&store, &feedback);

    let (out, emitted) = captured(handle(input(&id, SurveyAction::NoAnswer), &deps)).await;

    out.unwrap();
    assert_eq!(emitted.names(), ["SurveysUnanswered"]);
    assert_eq!(
        emitted.dimension_sets("SurveysUnanswered"),
        json!([["Stack"]])
    );
    let (again, emitted) = captured(handle(input(&id, SurveyAction::NoAnswer), &deps)).await;
    again.unwrap();
    assert!(emitted.is_empty());
}
