//! The `notify` step: record the milestone's ticket event (when it has one), store the task
//! token the workflow now waits on, and tell the customer in their language.
//!
//! Order of effects, so that retries repeat nothing and a fast answer always finds the token:
//! 1. one conditional save: the milestone's event and `waiting` (with the token), before sending;
//! 2. send through every channel with the key `<ticket>:notify:<milestone>:<seq>` (`seq`: the
//!    milestone event's audit sequence, or the ticket's when it records none), which channels
//!    dedup;
//! 3. record `notification_sent`. A re-run that finds it (since the ticket entered its
//!    current status) sends nothing again and only refreshes the token.

use std::sync::Arc;

use aftersales_domain::lifecycle::{Actor, AuditEvent, TicketEvent, TicketStatus, WaitKind};
use aftersales_domain::proposal::{BasisReason, ReturnShipping};
use aftersales_domain::ticket::{ChosenResolution, TaskToken, Ticket, Waiting};
use aftersales_domain::{Locale, Money, Policy, ResolutionKind, TicketId};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::answer::{self, RecordedAnswer};
use super::error::StepError;
use super::ticket_change::{self, Change, SAVE_ATTEMPTS};
use super::wire_code;
use crate::adapters::notify::{
    EmailAddress, FanOut, MessageContext, Milestone, NotifyError, OptionSummary, OutgoingMessage,
    Recipient, RenderError, RenderedMessage, ReturnPostage, ReturnShipment, render,
};
use crate::adapters::payment::RefundRequest;
use crate::clock::Clock;
use crate::metrics::{self, BusinessEvent, Outcome};
use crate::signature::{WebhookSecret, sign};
use crate::store::{StoreError, TicketStore};

pub const STEP: &str = "notify";

/// The reason recorded with `escalated_to_agent` when the workflow sends a ticket to a person
/// (a refused refund, a return that did not come back restockable).
pub const WORKFLOW_ESCALATION: &str = "workflow_escalation";
/// The reason recorded with `follow_up_requested` when the supervisor's SLA passed too.
pub const REVIEW_OVERDUE: &str = "review_overdue";

/// A milestone the workflow reaches: most tell the customer (a [`Milestone`] message); the
/// internal ones only record their event and park the new token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyMilestone {
    Acknowledged,
    EvidenceRequested,
    EvidenceReminder,
    UnderReview,
    Proposal,
    DecisionReminder,
    RefundIssued,
    ReturnRequested,
    ReturnReminder,
    ReturnReceived,
    ExchangeArranged,
    RepairArranged,
    PartsSent,
    CouponIssued,
    PriceAdjusted,
    Resolved,
    Rejected,
    ClosedUnanswered,
    Survey,
    SurveyReminder,
    FollowUp,
    /// Internal: the agent-review SLA passed; a supervisor decides now.
    EscalatedToSupervisor,
    /// Internal: the supervisor's SLA passed too; flagged for a person's follow-up.
    ReviewOverdue,
    /// Internal: the decision deadline passed; the proposal's first option is taken.
    DefaultOptionAccepted,
}

impl NotifyMilestone {
    pub const ALL: [NotifyMilestone; 24] = [
        NotifyMilestone::Acknowledged,
        NotifyMilestone::EvidenceRequested,
        NotifyMilestone::EvidenceReminder,
        NotifyMilestone::UnderReview,
        NotifyMilestone::Proposal,
        NotifyMilestone::DecisionReminder,
        NotifyMilestone::RefundIssued,
        NotifyMilestone::ReturnRequested,
        NotifyMilestone::ReturnReminder,
        NotifyMilestone::ReturnReceived,
        NotifyMilestone::ExchangeArranged,
        NotifyMilestone::RepairArranged,
        NotifyMilestone::PartsSent,
        NotifyMilestone::CouponIssued,
        NotifyMilestone::PriceAdjusted,
        NotifyMilestone::Resolved,
        NotifyMilestone::Rejected,
        NotifyMilestone::ClosedUnanswered,
        NotifyMilestone::Survey,
        NotifyMilestone::SurveyReminder,
        NotifyMilestone::FollowUp,
        NotifyMilestone::EscalatedToSupervisor,
        NotifyMilestone::ReviewOverdue,
        NotifyMilestone::DefaultOptionAccepted,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            NotifyMilestone::ReturnReminder => "return_reminder",
            NotifyMilestone::SurveyReminder => "survey_reminder",
            NotifyMilestone::EscalatedToSupervisor => "escalated_to_supervisor",
            NotifyMilestone::ReviewOverdue => "review_overdue",
            NotifyMilestone::DefaultOptionAccepted => "default_option_accepted",
            other => match other.message() {
                Some(message) => message.as_str(),
                None => "internal",
            },
        }
    }

    /// The message the customer gets, if any. The two reminders without their own template
    /// repeat the original message (with the same deadline).
    pub const fn message(self) -> Option<Milestone> {
        use NotifyMilestone as N;
        Some(match self {
            N::Acknowledged => Milestone::Acknowledged,
            N::EvidenceRequested => Milestone::EvidenceRequested,
            N::EvidenceReminder => Milestone::EvidenceReminder,
            N::UnderReview => Milestone::UnderReview,
            N::Proposal => Milestone::Proposal,
            N::DecisionReminder => Milestone::DecisionReminder,
            N::RefundIssued => Milestone::RefundIssued,
            N::ReturnRequested | N::ReturnReminder => Milestone::ReturnRequested,
            N::ReturnReceived => Milestone::ReturnReceived,
            N::ExchangeArranged => Milestone::ExchangeArranged,
            N::RepairArranged => Milestone::RepairArranged,
            N::PartsSent => Milestone::PartsSent,
            N::CouponIssued => Milestone::CouponIssued,
            N::PriceAdjusted => Milestone::PriceAdjusted,
            N::Resolved => Milestone::Resolved,
            N::Rejected => Milestone::Rejected,
            N::ClosedUnanswered => Milestone::ClosedUnanswered,
            N::Survey | N::SurveyReminder => Milestone::Survey,
            N::FollowUp => Milestone::FollowUp,
            N::EscalatedToSupervisor | N::ReviewOverdue | N::DefaultOptionAccepted => return None,
        })
    }
}

impl std::fmt::Display for NotifyMilestone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyInput {
    pub ticket_id: TicketId,
    pub milestone: NotifyMilestone,
    /// With `task_token`: what the waiting state waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<WaitKind>,
    /// The `.waitForTaskToken` state's token (`$$.Task.Token`). Never logged or shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_token: Option<TaskToken>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyOutput {
    pub ticket_id: TicketId,
    pub milestone: NotifyMilestone,
    /// Channels that accepted the message in this invocation.
    pub sent: u32,
    /// True when an earlier invocation had sent it already: nothing was sent again.
    pub replayed: bool,
    /// The decision a state routes on: the default option taken (`default_option_accepted`),
    /// or the answer recorded for the wait named by `wait_for` without a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<RecordedAnswer>,
}

/// The link in the survey message: the storefront's survey page for one ticket.
#[derive(Clone)]
pub struct SurveyLink {
    /// `https://…` with `{ticket_id}` where the ticket id goes.
    pub template: String,
    /// Signs `t` and the ticket id (`&sig=t=…,v1=…`, as request signatures), so the page
    /// can tell the link is ours and for this ticket.
    pub secret: Option<WebhookSecret>,
}

impl SurveyLink {
    pub fn for_ticket(&self, id: &TicketId, now: Timestamp) -> String {
        let base = self.template.replace("{ticket_id}", id.as_str());
        match &self.secret {
            Some(secret) => {
                let signature = sign(secret, now, id.as_str().as_bytes());
                let separator = if base.contains('?') { '&' } else { '?' };
                format!("{base}{separator}sig={}", url_escape(&signature))
            }
            None => base,
        }
    }
}

fn url_escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '=' => "%3D".to_owned(),
            ',' => "%2C".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// Why the ticket cannot wait for `kind`. `AlreadyAnswered` when the answer to that wait is on
/// the ticket already: it came as the previous wait's deadline fired, or against the token of an
/// earlier attempt of this step (a retry, a re-run after a crash). The workflow catches that and
/// goes on with the recorded answer (`wait_for` alone); anything else is a `PolicyViolation`.
fn cannot_wait(ticket: &Ticket, trail: &[AuditEvent], kind: WaitKind) -> StepError {
    match answer::answered_wait(trail, kind) {
        Some(answer) => StepError::AlreadyAnswered(format!(
            "ticket {} already has its {} answer; it no longer waits for {kind}",
            ticket.id, answer.kind
        )),
        None => StepError::policy(format!(
            "ticket {} is {}; it cannot wait for {kind}",
            ticket.id, ticket.status
        )),
    }
}

/// The steps that end a wait without its answer (`closed_unanswered`, the decision's
/// `default_option_accepted`) find the answer recorded as the last deadline fired:
/// `AlreadyAnswered`, naming the wait, which the workflow routes to the state that takes it.
fn answered_at_the_last_deadline(
    ticket: &Ticket,
    trail: &[AuditEvent],
    milestone: NotifyMilestone,
) -> Option<StepError> {
    let kinds: &[WaitKind] = match milestone {
        NotifyMilestone::ClosedUnanswered => &[
            WaitKind::Evidence,
            WaitKind::Decision,
            WaitKind::ReturnParcel,
        ],
        NotifyMilestone::DefaultOptionAccepted => &[WaitKind::Decision],
        _ => return None,
    };
    if ticket.status.is_terminal() || kinds.iter().any(|kind| kind.fits(ticket.status)) {
        return None; // closed by an earlier attempt, or still waiting: nothing came
    }
    answer::last_answered_wait(trail, kinds).map(|kind| cannot_wait(ticket, trail, kind))
}

pub struct NotifyDeps {
    pub store: Arc<dyn TicketStore>,
    pub channels: FanOut,
    pub policy: Arc<Policy>,
    pub clock: Arc<dyn Clock>,
    /// Where customers send returns (the `return_requested` message).
    pub return_address: Option<String>,
    pub survey_link: Option<SurveyLink>,
}

pub async fn handle(input: NotifyInput, deps: &NotifyDeps) -> Result<NotifyOutput, StepError> {
    let wait = match (input.wait_for, input.task_token.clone()) {
        (Some(kind), Some(token)) => Some((kind, token)),
        (None, None) => None,
        (Some(kind), None) => {
            return take_answer(&input.ticket_id, input.milestone, kind, deps).await;
        }
        (None, Some(_)) => {
            return Err(StepError::invalid(
                "a task_token comes with wait_for (what the state waits for)",
            ));
        }
    };
    let store = deps.store.as_ref();
    let now = deps.clock.now();
    let actor = Actor::system(STEP);

    let milestone = input.milestone;
    if milestone == NotifyMilestone::FollowUp && !low_score(store, &input.ticket_id, deps).await? {
        // Entered after every answered survey: only a low score gets the apology.
        return Ok(output(input.ticket_id, milestone, 0, false));
    }
    let message = milestone.message();
    let sent_note = TicketEvent::NotificationSent {
        milestone: milestone.as_str().to_owned(),
    };
    let mut prepared = None;
    for _ in 0..SAVE_ATTEMPTS {
        let ticket = ticket_change::load(store, &input.ticket_id).await?;
        let trail = store.audit_trail(&ticket.id).await?;
        let current = since_current_status(&trail, ticket.status);
        if let Some((kind @ WaitKind::ReturnParcel, _)) = &wait
            && !kind.fits(ticket.status)
            && answer::parcel_in_for_current_decision(&trail).is_some()
        {
            // The return instructions' step run again (a retry, a re-run after a crash) after
            // the parcel came in: requesting the return again would ask for it twice.
            return Err(cannot_wait(&ticket, &trail, *kind));
        }
        let mut change = Change::new(ticket.clone(), now, actor.clone());
        if milestone == NotifyMilestone::Acknowledged {
            change.ticket.acknowledgement_owed = false;
        }

        if message.is_some() && current.iter().any(|e| e.event == sent_note) {
            // Sent before: keep the newest token if the ticket still waits for it.
            if let Some((kind, token)) = &wait {
                if !kind.fits(ticket.status) {
                    return Err(cannot_wait(&ticket, &trail, *kind));
                }
                change.ticket.waiting = Some(Waiting {
                    kind: *kind,
                    token: token.clone(),
                    since: now,
                });
            }
            match ticket_change::save(store, &ticket, change).await {
                Ok(_) => return Ok(output(ticket.id, milestone, 0, true)),
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }

        if let Some(late) = answered_at_the_last_deadline(&ticket, &trail, milestone) {
            return Err(late);
        }
        let text = match message {
            Some(message) => Some(render_for(&ticket, &current, message, None, deps, now)?),
            None => None,
        };
        let mut seq = ticket.audit_seq;
        let mut recorded_before = false;
        let mut recorded_now = None;
        if let Some(event) = milestone_event(&ticket, &current, milestone)? {
            match current.iter().find(|e| e.event == event) {
                Some(recorded) => {
                    seq = recorded.seq;
                    recorded_before = true;
                }
                None => {
                    if let TicketEvent::OptionAccepted {
                        option_id, kind, ..
                    } = &event
                    {
                        change.ticket.chosen = Some(default_choice(&ticket, option_id, *kind));
                    }
                    seq = match change.record(event.clone()) {
                        Ok(seq) => seq,
                        // The wait's own milestone no longer applies (a return requested of a
                        // ticket whose parcel is in): its answer may be on the ticket already.
                        Err(refused) => {
                            return Err(match &wait {
                                Some((kind, _))
                                    if answer::answered_wait(&trail, *kind).is_some() =>
                                {
                                    cannot_wait(&ticket, &trail, *kind)
                                }
                                _ => refused,
                            });
                        }
                    };
                    recorded_now = Some(event);
                    if change
                        .ticket
                        .waiting_for()
                        .is_some_and(|kind| !kind.fits(change.ticket.status))
                    {
                        change.ticket.waiting = None;
                    }
                }
            }
        }
        if let Some((kind, token)) = &wait {
            if !kind.fits(change.ticket.status) {
                return Err(cannot_wait(&change.ticket, &trail, *kind));
            }
            change.ticket.waiting = Some(Waiting {
                kind: *kind,
                token: token.clone(),
                since: now,
            });
        }
        match ticket_change::save(store, &ticket, change).await {
            Ok(saved) => {
                if let Some(event) = &recorded_now {
                    count_closing(&saved, event, now);
                }
                let owed = owed_messages(&saved, &trail, milestone);
                prepared = Some((saved, seq, text, recorded_before, owed, current));
                break;
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    let Some((ticket, seq, text, recorded_before, owed, current)) = prepared else {
        return Err(ticket_change::conflict(&input.ticket_id));
    };
    // Owed messages first, then the milestone's own; what was sent is recorded in one save at
    // the end (also when a later send failed, so a retry sends only what is still unsent).
    let mut sent_owed: Vec<Owed> = Vec::new();
    let mut failed = None;
    for owed in &owed {
        match deliver_owed(&ticket, &current, owed, deps, now).await {
            Ok(()) => sent_owed.push(*owed),
            Err(error) => {
                failed = Some(error);
                break;
            }
        }
    }
    let own = match (message, text, &failed) {
        (Some(message), Some(text), None) => Some((message, text)),
        _ => None,
    };
    let mut deliveries = 0;
    if let Some((message, text)) = own {
        let locale = locale_for(&ticket, &deps.policy);
        let outgoing = OutgoingMessage::new(
            ticket.id.clone(),
            message,
            seq,
            locale,
            recipient(&ticket)?,
            text,
        );
        match deps.channels.send(&outgoing).await.into_result() {
            Ok(sent) => deliveries = sent.len(),
            Err(error) => failed = Some(notify_error(error)),
        }
    }
    let own_sent = message.is_some() && failed.is_none();
    let first_answer = record_sent(
        store,
        &ticket.id,
        now,
        &actor,
        &sent_owed,
        own_sent.then_some(&sent_note),
    )
    .await?;
    if let Some(error) = failed {
        return Err(error);
    }
    if message.is_none() {
        tracing::info!(ticket_id = %ticket.id, %milestone, seq, "internal milestone recorded");
        let mut out = output(ticket.id.clone(), milestone, 0, recorded_before);
        if milestone == NotifyMilestone::DefaultOptionAccepted {
            out.answer = ticket.chosen.as_ref().map(default_answer);
        }
        return Ok(out);
    }
    // Counted by the invocation that recorded the message as sent, so a re-run counts nothing.
    if let Some(first_answer) = first_answer {
        count_sent(&ticket, milestone, first_answer, now);
    }
    tracing::info!(ticket_id = %ticket.id, %milestone, seq, channels = deliveries, "customer notified");
    let sent = u32::try_from(deliveries).unwrap_or(u32::MAX);
    Ok(output(ticket.id, milestone, sent, false))
}

fn output(
    ticket_id: TicketId,
    milestone: NotifyMilestone,
    sent: u32,
    replayed: bool,
) -> NotifyOutput {
    NotifyOutput {
        ticket_id,
        milestone,
        sent,
        replayed,
        answer: None,
    }
}

/// `wait_for` without a token: the waiting state named by `milestone` found the ticket
/// answered (the answer came as the previous wait's deadline fired). Answers what `respond`
/// sent the wait, rebuilt from the recorded event; sends and records nothing.
async fn take_answer(
    id: &TicketId,
    milestone: NotifyMilestone,
    kind: WaitKind,
    deps: &NotifyDeps,
) -> Result<NotifyOutput, StepError> {
    let trail = deps.store.audit_trail(id).await?;
    if trail.is_empty() {
        return Err(StepError::NotFound(format!("ticket {id} does not exist")));
    }
    // A decision wait may also have been answered by an agent (a declined proposal).
    let kinds: &[WaitKind] = match kind {
        WaitKind::Decision | WaitKind::Agent => &[WaitKind::Decision, WaitKind::Agent],
        _ => std::slice::from_ref(&kind),
    };
    let answer = answer::newest_answer(&trail, kinds).ok_or_else(|| {
        StepError::policy(format!(
            "ticket {id} has no recorded {kind} answer to go on with"
        ))
    })?;
    tracing::info!(ticket_id = %id, %milestone, answer = %answer.kind, "recorded answer taken");
    let mut out = output(id.clone(), milestone, 0, false);
    out.answer = Some(answer);
    Ok(out)
}

/// The decision the policy's default took, routed like a customer's choice.
fn default_answer(chosen: &ChosenResolution) -> RecordedAnswer {
    RecordedAnswer {
        kind: "decision".to_owned(),
        outcome: Some("accepted".to_owned()),
        option_id: chosen.option_id.clone(),
        resolution: Some(chosen.kind),
        all_restockable: None,
        units: None,
        items: None,
        score: None,
    }
}

/// True when the ticket's survey score is at or below the policy's follow-up threshold.
async fn low_score(
    store: &dyn TicketStore,
    id: &TicketId,
    deps: &NotifyDeps,
) -> Result<bool, StepError> {
    let trail = store.audit_trail(id).await?;
    let score = trail.iter().rev().find_map(|e| match e.event {
        TicketEvent::SurveyAnswered { score } => Some(score),
        _ => None,
    });
    Ok(score.is_some_and(|s| s <= deps.policy.survey.follow_up_at_or_below))
}

/// A message the customer is owed for what a step without channels did (`accept`'s
/// acknowledgement, execute-refund's refund, the warehouse's receipt), sent before the
/// milestone's own. Its key uses the audit sequence of the event it is about, so a retry sends
/// it under the same key and `notification_sent` records it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owed {
    pub milestone: NotifyMilestone,
    pub seq: u32,
    /// The refund a `refund_issued` or `price_adjusted` message is about (each refund's own).
    pub amount: Option<Money>,
}

/// What the customer has not been told yet, oldest first; `own` is sent anyway, so it is not
/// owed twice.
pub fn owed_messages(ticket: &Ticket, trail: &[AuditEvent], own: NotifyMilestone) -> Vec<Owed> {
    let noted_after = |at: usize, milestone: NotifyMilestone| {
        trail[at + 1..].iter().any(|e| {
            matches!(&e.event, TicketEvent::NotificationSent { milestone: m } if m == milestone.as_str())
        })
    };
    let mut owed = Vec::new();
    if ticket.acknowledgement_owed
        && own != NotifyMilestone::Acknowledged
        && let Some(first) = trail.first()
        && !noted_after(0, NotifyMilestone::Acknowledged)
    {
        owed.push(Owed {
            milestone: NotifyMilestone::Acknowledged,
            seq: first.seq,
            amount: None,
        });
    }
    for (at, entry) in trail.iter().enumerate() {
        let mut amount = None;
        let milestone = match &entry.event {
            TicketEvent::RefundIssued {
                refund_id,
                amount: refunded,
            } => {
                amount = Some(*refunded);
                let price_adjustment =
                    RefundRequest::idempotency_key(&ticket.id, "price_adjustment");
                if ticket.refunds.iter().any(|r| {
                    r.provider_refund_id == *refund_id && r.idempotency_key == price_adjustment
                }) {
                    NotifyMilestone::PriceAdjusted
                } else {
                    NotifyMilestone::RefundIssued
                }
            }
            TicketEvent::ReturnReceived { .. } => NotifyMilestone::ReturnReceived,
            _ => continue,
        };
        if milestone != own && !noted_after(at, milestone) {
            owed.push(Owed {
                milestone,
                seq: entry.seq,
                amount,
            });
        }
    }
    owed
}

/// Sends one owed message; [`record_sent`] records it.
async fn deliver_owed(
    ticket: &Ticket,
    current: &[AuditEvent],
    owed: &Owed,
    deps: &NotifyDeps,
    now: Timestamp,
) -> Result<(), StepError> {
    let Some(message) = owed.milestone.message() else {
        return Ok(());
    };
    let text = render_for(ticket, current, message, owed.amount, deps, now)?;
    let outgoing = OutgoingMessage::new(
        ticket.id.clone(),
        message,
        owed.seq,
        locale_for(ticket, &deps.policy),
        recipient(ticket)?,
        text,
    );
    deps.channels
        .send(&outgoing)
        .await
        .into_result()
        .map_err(notify_error)?;
    tracing::info!(ticket_id = %ticket.id, milestone = %owed.milestone, seq = owed.seq, "owed message sent");
    Ok(())
}

/// Records, in one save, `notification_sent` for each owed message sent (clearing the
/// acknowledgement flag) and for the milestone's own message (`own`), each unless a re-run
/// recorded it already. Returns, when `own` was recorded now, whether no first answer had been
/// sent before it (for the first-response metric).
async fn record_sent(
    store: &dyn TicketStore,
    id: &TicketId,
    now: Timestamp,
    actor: &Actor,
    owed: &[Owed],
    own: Option<&TicketEvent>,
) -> Result<Option<bool>, StepError> {
    if owed.is_empty() && own.is_none() {
        return Ok(None);
    }
    let (_, first_answer) =
        ticket_change::update_with_trail(store, id, now, actor, true, |change, trail| {
            for owed in owed {
                if owed.milestone == NotifyMilestone::Acknowledged {
                    change.ticket.acknowledgement_owed = false;
                }
                let note = TicketEvent::NotificationSent {
                    milestone: owed.milestone.as_str().to_owned(),
                };
                if !trail.iter().any(|e| e.seq > owed.seq && e.event == note) {
                    change.record(note)?;
                }
            }
            let Some(own) = own else {
                return Ok(None);
            };
            let current = since_current_status(trail, change.ticket.status);
            if current.iter().any(|e| e.event == *own) {
                return Ok(None);
            }
            change.record(own.clone())?;
            Ok(Some(!trail.iter().any(answered_before)))
        })
        .await?;
    Ok(first_answer)
}

/// The milestones whose message is a first answer to the customer (after the acknowledgement).
pub const FIRST_ANSWERS: [NotifyMilestone; 4] = [
    NotifyMilestone::EvidenceRequested,
    NotifyMilestone::UnderReview,
    NotifyMilestone::Proposal,
    NotifyMilestone::Rejected,
];

/// True for a `notification_sent` of a first answer.
fn answered_before(entry: &AuditEvent) -> bool {
    matches!(&entry.event, TicketEvent::NotificationSent { milestone }
        if FIRST_ANSWERS.iter().any(|m| m.as_str() == milestone))
}

/// The metrics of a message this invocation sent (`docs/metrics.md`).
fn count_sent(ticket: &Ticket, milestone: NotifyMilestone, first_answer: bool, now: Timestamp) {
    if first_answer && FIRST_ANSWERS.contains(&milestone) {
        metrics::emit(
            now,
            &BusinessEvent::FirstResponse {
                after: now.duration_since(ticket.received_at),
            },
        );
    }
    if milestone == NotifyMilestone::Rejected {
        metrics::emit(
            now,
            &BusinessEvent::ClosedWithout {
                outcome: Outcome::Rejected,
            },
        );
    }
}

/// The metrics of a closing event this invocation recorded.
fn count_closing(ticket: &Ticket, event: &TicketEvent, now: Timestamp) {
    match event {
        TicketEvent::Resolved { kind } => metrics::emit(
            now,
            &BusinessEvent::Resolved {
                resolution: *kind,
                after: now.duration_since(ticket.received_at),
            },
        ),
        TicketEvent::ClosedUnanswered { .. } => metrics::emit(
            now,
            &BusinessEvent::ClosedWithout {
                outcome: Outcome::ClosedUnanswered,
            },
        ),
        _ => {}
    }
}

/// The proposal's option the policy's default takes, as the ticket's chosen resolution.
fn default_choice(ticket: &Ticket, option_id: &str, kind: ResolutionKind) -> ChosenResolution {
    let amount = ticket
        .proposal
        .as_ref()
        .and_then(|p| p.options.iter().find(|o| o.id.as_str() == option_id))
        .and_then(|o| o.amount);
    ChosenResolution {
        option_id: Some(option_id.to_owned()),
        kind,
        amount,
        chosen_by: Actor::system(STEP),
        exchange: None,
    }
}

/// The audit entries since the ticket entered `status` (the entry that entered it included).
fn since_current_status(trail: &[AuditEvent], status: TicketStatus) -> Vec<AuditEvent> {
    let start = trail
        .iter()
        .rposition(|e| e.status != status)
        .map_or(0, |i| i + 1);
    trail
        .get(start..)
        .map(<[AuditEvent]>::to_vec)
        .unwrap_or_default()
}

/// The ticket event a milestone records, if any (table in `docs/workflow-contract.md`).
/// Milestones about something another step recorded (a proposal, a refund, a rejection)
/// record only `notification_sent`.
pub fn milestone_event(
    ticket: &Ticket,
    current: &[AuditEvent],
    milestone: NotifyMilestone,
) -> Result<Option<TicketEvent>, StepError> {
    use NotifyMilestone as N;
    Ok(Some(match milestone {
        N::Acknowledged
        | N::EvidenceRequested
        | N::Proposal
        | N::RefundIssued
        | N::ReturnReceived
        | N::Rejected
        | N::Survey
        | N::FollowUp => return Ok(None),
        // The workflow sends a ticket to a person from other statuses too (a refused refund).
        N::UnderReview if ticket.status == TicketStatus::UnderReview => return Ok(None),
        N::UnderReview => TicketEvent::EscalatedToAgent {
            reason: WORKFLOW_ESCALATION.to_owned(),
        },
        N::EvidenceReminder => TicketEvent::ReminderSent {
            waiting_for: WaitKind::Evidence,
        },
        N::DecisionReminder => TicketEvent::ReminderSent {
            waiting_for: WaitKind::Decision,
        },
        N::ReturnReminder => TicketEvent::ReminderSent {
            waiting_for: WaitKind::ReturnParcel,
        },
        N::SurveyReminder => TicketEvent::ReminderSent {
            waiting_for: WaitKind::Survey,
        },
        N::ReturnRequested => TicketEvent::ReturnRequested,
        N::ExchangeArranged => TicketEvent::ExchangeArranged,
        N::RepairArranged => TicketEvent::RepairArranged,
        N::PartsSent => TicketEvent::PartsSent,
        N::CouponIssued => TicketEvent::CouponIssued {
            value: milestone_amount(ticket, Milestone::CouponIssued)?,
        },
        N::PriceAdjusted => TicketEvent::PriceAdjusted {
            amount: milestone_amount(ticket, Milestone::PriceAdjusted)?,
        },
        N::Resolved => TicketEvent::Resolved {
            kind: resolution_kind(ticket)?,
        },
        N::ClosedUnanswered => {
            if let Some(closed) = current
                .iter()
                .find(|e| matches!(e.event, TicketEvent::ClosedUnanswered { .. }))
            {
                return Ok(Some(closed.event.clone()));
            }
            TicketEvent::ClosedUnanswered {
                waiting_for: unanswered_wait(ticket)?,
            }
        }
        N::EscalatedToSupervisor => TicketEvent::EscalatedToSupervisor,
        N::ReviewOverdue => TicketEvent::FollowUpRequested {
            reason: REVIEW_OVERDUE.to_owned(),
        },
        N::DefaultOptionAccepted => {
            if let Some(accepted) = current
                .iter()
                .find(|e| matches!(e.event, TicketEvent::OptionAccepted { .. }))
            {
                return Ok(Some(accepted.event.clone()));
            }
            let top = ticket
                .proposal
                .as_ref()
                .and_then(|p| p.options.first())
                .ok_or_else(|| {
                    StepError::policy(format!(
                        "ticket {} has no proposal to default to",
                        ticket.id
                    ))
                })?;
            TicketEvent::OptionAccepted {
                option_id: top.id.to_string(),
                kind: top.kind,
                by_default: true,
            }
        }
    }))
}

fn resolution_kind(ticket: &Ticket) -> Result<ResolutionKind, StepError> {
    ticket
        .chosen
        .as_ref()
        .map(|c| c.kind)
        .or(ticket.resolution)
        .ok_or_else(|| StepError::policy(format!("ticket {} has no chosen resolution", ticket.id)))
}

fn unanswered_wait(ticket: &Ticket) -> Result<WaitKind, StepError> {
    if let Some(kind) = ticket.waiting_for() {
        return Ok(kind);
    }
    match ticket.status {
        TicketStatus::AwaitingEvidence => Ok(WaitKind::Evidence),
        TicketStatus::Proposed => Ok(WaitKind::Decision),
        TicketStatus::AwaitingReturn => Ok(WaitKind::ReturnParcel),
        other => Err(StepError::policy(format!(
            "ticket {} is {other}; only a ticket waiting for the customer closes unanswered",
            ticket.id
        ))),
    }
}

/// The amount a money milestone mentions: what was refunded (refund, price adjustment) or the
/// coupon's value.
fn milestone_amount(ticket: &Ticket, milestone: Milestone) -> Result<Money, StepError> {
    let step = match milestone {
        Milestone::PriceAdjusted => Some("price_adjustment"),
        _ => None,
    };
    let refunded = step.and_then(|step| {
        let key = RefundRequest::idempotency_key(&ticket.id, step);
        ticket
            .refunds
            .iter()
            .find(|r| r.idempotency_key == key)
            .map(|r| r.amount)
    });
    let amount = match milestone {
        Milestone::RefundIssued => ticket.refunds.last().map(|r| r.amount),
        Milestone::CouponIssued => ticket
            .chosen
            .as_ref()
            .and_then(|c| c.amount)
            .or_else(|| ticket.proposal.as_ref().and_then(|p| p.goodwill_coupon)),
        _ => refunded.or_else(|| ticket.chosen.as_ref().and_then(|c| c.amount)),
    };
    amount.ok_or_else(|| {
        StepError::policy(format!(
            "ticket {} has no amount for the {milestone} message",
            ticket.id
        ))
    })
}

/// The customer's language when the merchant writes in it, otherwise the merchant's default.
fn locale_for(ticket: &Ticket, policy: &Policy) -> Locale {
    let wanted = ticket.request.customer.locale;
    if policy.locales.supported.contains(&wanted) {
        wanted
    } else {
        policy.locales.default
    }
}

fn recipient(ticket: &Ticket) -> Result<Recipient, StepError> {
    let customer = &ticket.request.customer;
    // A malformed address is left out (the storefront still gets the message by customer id).
    let email = customer
        .email
        .as_deref()
        .and_then(|e| EmailAddress::new(e).ok());
    Recipient::new(email, Some(customer.id.clone()))
        .map_err(|e| StepError::invalid(format!("ticket {}: {e}", ticket.id)))
}

/// `amount`: what a money message mentions when it is about one refund in particular (an owed
/// message); otherwise the milestone's amount as the ticket has it.
fn render_for(
    ticket: &Ticket,
    current: &[AuditEvent],
    milestone: Milestone,
    amount: Option<Money>,
    deps: &NotifyDeps,
    now: Timestamp,
) -> Result<RenderedMessage, StepError> {
    let locale = locale_for(ticket, &deps.policy);
    let policy = &deps.policy;
    let mut ctx = MessageContext::new(ticket.id.clone());
    ctx.first_name = ticket
        .request
        .customer
        .name
        .as_deref()
        .and_then(|n| n.split_whitespace().next())
        .map(str::to_owned);
    ctx.time_zone = Some(policy.merchant.time_zone.time_zone().clone());
    let entered = current.first().map_or(now, |e| e.at);
    let after = |from: Timestamp, d: SignedDuration| from.checked_add(d).unwrap_or(from);
    let deadlines = &policy.deadlines;
    match milestone {
        Milestone::Acknowledged => ctx.due = Some(ticket.first_response_due),
        Milestone::EvidenceRequested | Milestone::EvidenceReminder => {
            ctx.due = Some(after(
                entered,
                deadlines.evidence.deadline.as_signed_duration(),
            ));
        }
        Milestone::Proposal | Milestone::DecisionReminder => {
            ctx.due = Some(after(
                entered,
                deadlines.customer_decision.deadline.as_signed_duration(),
            ));
            ctx.options = option_summaries(ticket);
        }
        Milestone::ReturnRequested => {
            // The reminder repeats the first message, with the deadline counted from then.
            let from = if ticket.status == TicketStatus::AwaitingReturn {
                entered
            } else {
                now
            };
            ctx.due = Some(after(
                from,
                deadlines.return_parcel.deadline.as_signed_duration(),
            ));
            ctx.return_shipment = Some(return_shipment(ticket, deps)?);
        }
        Milestone::ExchangeArranged => {
            let currency = ticket.request.order.currency;
            let named = ticket.chosen.as_ref().and_then(|c| c.exchange.as_ref());
            ctx.price_difference =
                Some(named.map_or(Money::zero(currency), |e| e.price_difference));
        }
        Milestone::RefundIssued | Milestone::CouponIssued | Milestone::PriceAdjusted => {
            ctx.amount = Some(match amount {
                Some(amount) => amount,
                None => milestone_amount(ticket, milestone)?,
            });
        }
        Milestone::Rejected => ctx.reasons = rejection_reasons(ticket, locale),
        Milestone::Survey => {
            let link = deps
                .survey_link
                .as_ref()
                .ok_or_else(|| StepError::policy("no survey page is configured (SURVEY_URL)"))?;
            ctx.link = Some(link.for_ticket(&ticket.id, now));
        }
        _ => {}
    }
    render(milestone, locale, &ctx).map_err(|e| render_error(&ticket.id, e))
}

fn option_summaries(ticket: &Ticket) -> Vec<OptionSummary> {
    ticket
        .proposal
        .iter()
        .flat_map(|p| p.options.iter())
        .filter(|o| o.kind != ResolutionKind::Reject)
        .map(|o| OptionSummary {
            kind: o.kind,
            amount: o.amount,
            customer_cost: o.customer_cost,
        })
        .collect()
}

fn return_shipment(ticket: &Ticket, deps: &NotifyDeps) -> Result<ReturnShipment, StepError> {
    let address = deps
        .return_address
        .clone()
        .filter(|a| !a.trim().is_empty())
        .ok_or_else(|| StepError::policy("no return address is configured (RETURN_ADDRESS)"))?;
    let shipping = ticket.chosen.as_ref().and_then(|chosen| {
        let id = chosen.option_id.as_deref()?;
        ticket
            .proposal
            .as_ref()?
            .options
            .iter()
            .find(|o| o.id.as_str() == id)
            .map(|o| o.return_shipping.clone())
    });
    let postage = match shipping {
        Some(ReturnShipping::CustomerPaidLabel { fee }) => ReturnPostage::LabelFeeDeducted { fee },
        Some(ReturnShipping::CustomerArranged) => ReturnPostage::CustomerArranged,
        Some(ReturnShipping::Prepaid { .. } | ReturnShipping::NotNeeded) | None => {
            ReturnPostage::Prepaid
        }
    };
    Ok(ReturnShipment { address, postage })
}

/// Why the request was turned down, one line per reason, in the customer's language.
fn rejection_reasons(ticket: &Ticket, locale: Locale) -> Vec<String> {
    let mut codes: Vec<String> = Vec::new();
    for option in ticket.proposal.iter().flat_map(|p| p.options.iter()) {
        if let BasisReason::Rejected { reasons } = &option.basis.reason {
            for reason in reasons {
                let code = wire_code(&reason.reason);
                if !codes.contains(&code) {
                    codes.push(code);
                }
            }
        }
    }
    if codes.is_empty() {
        codes.push("reviewed".to_owned());
    }
    codes
        .iter()
        .map(|c| reason_text(c, locale).to_owned())
        .collect()
}

fn reason_text(code: &str, locale: Locale) -> &'static str {
    let (en, zh) = match code {
        "outside_window" => (
            "The claim period for this item has ended.",
            "该商品的售后申请期限已过。",
        ),
        "final_sale" => (
            "This item was sold as final sale.",
            "该商品为最终销售商品，不支持此类售后。",
        ),
        "fully_refunded" => (
            "This item has already been refunded in full.",
            "该商品已全额退款。",
        ),
        "nothing_left_to_refund" => (
            "The order has already been refunded in full.",
            "该订单已全额退款。",
        ),
        "not_covered" => (
            "This kind of problem is not covered by our after-sales policy.",
            "此类问题不在我们的售后政策范围内。",
        ),
        "not_late" => (
            "The order was delivered within the promised time.",
            "订单已在承诺时间内送达。",
        ),
        "unknown_line" | "no_lines" => (
            "We could not match the request to an item of the order.",
            "我们无法将申请与订单中的商品对应。",
        ),
        _ => (
            "After review, the request does not meet our after-sales policy.",
            "经审核，该申请不符合我们的售后政策。",
        ),
    };
    match locale {
        Locale::En => en,
        Locale::ZhCn => zh,
    }
}

fn render_error(id: &TicketId, error: RenderError) -> StepError {
    StepError::policy(format!("cannot write the message for ticket {id}: {error}"))
}

/// No channel delivered: retry when one may still succeed; otherwise a person must reach the
/// customer another way.
fn notify_error(error: NotifyError) -> StepError {
    if error.is_retryable() {
        StepError::Retryable(error.to_string())
    } else {
        StepError::policy(format!("the customer could not be notified: {error}"))
    }
}
