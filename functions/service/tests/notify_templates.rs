//! Milestone messages: every template present and well-formed in every locale, and exact
//! renderings of the messages customers see most.

use aftersales_domain::{Locale, Money, ResolutionKind, TicketId};
use aftersales_service::adapters::notify::{
    MessageContext, Milestone, OptionSummary, Placeholder, RenderError, ReturnPostage,
    ReturnShipment, TemplateCatalog, TemplateError, render,
};
use jiff::Timestamp;
use jiff::tz::TimeZone;

const TICKET: &str = "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB";
const EN_TOML: &str = include_str!("../templates/en.toml");
const LOCALES: [Locale; 2] = [Locale::En, Locale::ZhCn];

fn ticket() -> TicketId {
    TICKET.parse().unwrap()
}

fn cny(minor: i64) -> Money {
    Money::new(minor, "CNY".parse().unwrap())
}

fn due() -> Timestamp {
    "2026-11-20T09:30:00Z".parse().unwrap()
}

fn shanghai() -> TimeZone {
    TimeZone::get("Asia/Shanghai").unwrap()
}

/// A context that provides every value any milestone uses.
fn full_context() -> MessageContext {
    MessageContext {
        first_name: Some("Li".into()),
        amount: Some(cny(60800)),
        due: Some(due()),
        time_zone: Some(shanghai()),
        options: vec![
            OptionSummary {
                kind: ResolutionKind::Refund,
                amount: Some(cny(29900)),
                customer_cost: None,
            },
            OptionSummary {
                kind: ResolutionKind::Exchange,
                amount: None,
                customer_cost: None,
            },
        ],
        reasons: vec!["The return window closed on 2026-11-17.".into()],
        link: Some("https://shop.example/survey/tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB?sig=abc".into()),
        return_shipment: Some(ReturnShipment {
            address: "Returns, 88 Harbour Road, Shanghai 200000".into(),
            postage: ReturnPostage::Prepaid,
        }),
        price_difference: Some(cny(0)),
        ..MessageContext::new(ticket())
    }
}

/// An exchange for another variant tells the customer what it changes, in either direction.
#[test]
fn an_exchange_message_says_what_the_price_difference_means_for_the_customer() {
    let body = |minor: i64, locale: Locale| {
        let ctx = MessageContext {
            price_difference: Some(cny(minor)),
            ..MessageContext::new(ticket())
        };
        render(Milestone::ExchangeArranged, locale, &ctx)
            .unwrap()
            .body
    };
    assert!(body(5000, Locale::En).contains("the difference of 50.00 CNY is yours to pay"));
    assert!(body(-5000, Locale::En).contains("we refund you the difference of 50.00 CNY"));
    assert!(body(0, Locale::En).contains("there is nothing to pay"));
    assert!(body(5000, Locale::ZhCn).contains("补付差价 50.00 CNY"));
    assert!(body(-5000, Locale::ZhCn).contains("差价 50.00 CNY 将原路退还"));
    let without = MessageContext::new(ticket());
    assert!(render(Milestone::ExchangeArranged, Locale::En, &without).is_err());
}

#[test]
fn milestones_have_snake_case_wire_names() {
    let names: Vec<&str> = Milestone::ALL.iter().map(|m| m.as_str()).collect();
    assert_eq!(
        names,
        [
            "acknowledged",
            "evidence_requested",
            "evidence_reminder",
            "under_review",
            "proposal",
            "decision_reminder",
            "refund_issued",
            "return_requested",
            "return_received",
            "exchange_arranged",
            "repair_arranged",
            "parts_sent",
            "coupon_issued",
            "price_adjusted",
            "resolved",
            "rejected",
            "closed_unanswered",
            "survey",
            "follow_up",
        ]
    );
    for milestone in Milestone::ALL {
        let json = serde_json::to_string(milestone).unwrap();
        assert_eq!(json, format!("\"{milestone}\""));
        assert_eq!(
            serde_json::from_str::<Milestone>(&json).unwrap(),
            *milestone
        );
        assert_eq!(milestone.as_str().parse::<Milestone>().unwrap(), *milestone);
    }
}

#[test]
fn built_in_catalogs_load_for_every_locale() {
    for locale in LOCALES {
        if let Err(e) = TemplateCatalog::builtin(locale) {
            panic!("{locale} templates: {e}");
        }
    }
}

#[test]
fn every_milestone_renders_in_every_locale_with_no_placeholder_left() {
    let ctx = full_context();
    for locale in LOCALES {
        for milestone in Milestone::ALL {
            let message = render(*milestone, locale, &ctx)
                .unwrap_or_else(|e| panic!("{locale} {milestone}: {e}"));
            for (part, text) in [("subject", &message.subject), ("body", &message.body)] {
                assert!(
                    !text.contains('{') && !text.contains('}'),
                    "{locale} {milestone} {part} still has a brace: {text}"
                );
                assert!(
                    !text.trim().is_empty(),
                    "{locale} {milestone} {part} is empty"
                );
            }
            assert!(
                message.subject.contains(TICKET),
                "{locale} {milestone}: the subject must name the ticket"
            );
            assert!(!message.subject.contains('\n'), "{locale} {milestone}");
        }
    }
}

#[test]
fn chinese_messages_use_full_width_punctuation() {
    let ctx = MessageContext {
        reasons: vec!["超出退货期限".into()],
        return_shipment: Some(ReturnShipment {
            address: "上海市黄浦区海港路88号 售后部".into(),
            postage: ReturnPostage::CustomerArranged,
        }),
        ..full_context()
    };
    let link = ctx.link.clone().unwrap();
    for milestone in Milestone::ALL {
        let message = render(*milestone, Locale::ZhCn, &ctx).unwrap();
        let text = format!("{}\n{}", message.subject, message.body).replace(&link, "");
        for ascii in [',', '!', '?', ';', '(', ')'] {
            assert!(
                !text.contains(ascii),
                "{milestone}: ASCII '{ascii}' in Chinese text: {text}"
            );
        }
    }
}

#[test]
fn acknowledgement_in_english_names_the_customer_and_the_due_time_in_utc() {
    let ctx = MessageContext {
        first_name: Some("Li".into()),
        due: Some(due()),
        ..MessageContext::new(ticket())
    };
    let message = render(Milestone::Acknowledged, Locale::En, &ctx).unwrap();
    assert_eq!(
        message.subject,
        "We have received your request tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB"
    );
    assert_eq!(
        message.body,
        "Hello Li,\n\
         \n\
         Thank you for contacting us. We have received your after-sales request and opened \
         ticket tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB.\n\
         \n\
         We will get back to you by 20 Nov 2026, 09:30 (UTC). Please quote the ticket number if \
         you contact us about it.\n\
         \n\
         Kind regards,\n\
         Customer Service"
    );
}

#[test]
fn acknowledgement_in_chinese_greets_politely_and_gives_beijing_time() {
    let ctx = MessageContext {
        due: Some(due()),
        time_zone: Some(shanghai()),
        ..MessageContext::new(ticket())
    };
    let message = render(Milestone::Acknowledged, Locale::ZhCn, &ctx).unwrap();
    assert_eq!(
        message.subject,
        "我们已收到您的售后申请（工单号 tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB）"
    );
    assert_eq!(
        message.body,
        "亲爱的顾客，您好！\n\
         \n\
         感谢您联系我们。您的售后申请已收到，工单号为 tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB。\n\
         \n\
         我们将在 2026年11月20日 17:30（北京时间）前给您答复，请您留意消息。\
         后续咨询时请提供此工单号，以便我们快速为您查询。\n\
         \n\
         祝您生活愉快！\n\
         客服中心"
    );
}

#[test]
fn refund_message_in_english_states_the_amount_with_its_currency() {
    let ctx = MessageContext {
        amount: Some(cny(60800)),
        ..MessageContext::new(ticket())
    };
    let message = render(Milestone::RefundIssued, Locale::En, &ctx).unwrap();
    assert_eq!(
        message.subject,
        "Refund of 608.00 CNY issued (tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB)"
    );
    assert_eq!(
        message.body,
        "Hello,\n\
         \n\
         We have issued a refund of 608.00 CNY for your request tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB. \
         It goes back to your original payment method; depending on your bank or payment \
         provider, it may take a few working days to appear.\n\
         \n\
         Kind regards,\n\
         Customer Service"
    );
}

#[test]
fn refund_message_in_chinese_states_the_amount_with_its_currency() {
    let ctx = MessageContext {
        first_name: Some("小明".into()),
        amount: Some(cny(60800)),
        ..MessageContext::new(ticket())
    };
    let message = render(Milestone::RefundIssued, Locale::ZhCn, &ctx).unwrap();
    assert_eq!(
        message.subject,
        "退款 608.00 CNY 已发起（工单号 tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB）"
    );
    assert_eq!(
        message.body,
        "亲爱的小明，您好！\n\
         \n\
         您的售后申请（工单号 tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB）的退款 608.00 CNY 已发起，\
         款项将原路退回至您的支付账户。具体到账时间以银行或支付机构为准，一般需要几个工作日，\
         请您留意查收。\n\
         \n\
         祝您生活愉快！\n\
         客服中心"
    );
}

#[test]
fn proposal_lists_options_numbered_with_amounts_and_costs() {
    let ctx = MessageContext {
        options: vec![
            OptionSummary {
                kind: ResolutionKind::ReturnRefund,
                amount: Some(cny(59800)),
                customer_cost: Some(cny(1000)),
            },
            OptionSummary {
                kind: ResolutionKind::PriceAdjustment,
                amount: Some(cny(9000)),
                customer_cost: Some(cny(0)),
            },
            OptionSummary {
                kind: ResolutionKind::Exchange,
                amount: None,
                customer_cost: None,
            },
        ],
        due: Some(due()),
        ..MessageContext::new(ticket())
    };
    let en = render(Milestone::Proposal, Locale::En, &ctx).unwrap();
    assert!(
        en.body.contains(
            "\n\n1. Return and refund: 598.00 CNY (your cost: 10.00 CNY)\n\
             2. Partial refund: 90.00 CNY\n\
             3. Exchange\n\n"
        ),
        "{}",
        en.body
    );
    let zh = render(Milestone::Proposal, Locale::ZhCn, &ctx).unwrap();
    assert!(
        zh.body.contains(
            "\n\n1. 退货退款：598.00 CNY（需您承担 10.00 CNY）\n\
             2. 部分退款：90.00 CNY\n\
             3. 换货\n\n"
        ),
        "{}",
        zh.body
    );
}

#[test]
fn due_time_uses_the_customer_time_zone_offset_when_given() {
    let ctx = MessageContext {
        due: Some(due()),
        time_zone: Some(TimeZone::get("Asia/Tokyo").unwrap()),
        ..MessageContext::new(ticket())
    };
    let en = render(Milestone::DecisionReminder, Locale::En, &ctx).unwrap();
    assert!(
        en.body.contains("by 20 Nov 2026, 18:30 (UTC+09:00);"),
        "{}",
        en.body
    );
    let zh = render(Milestone::DecisionReminder, Locale::ZhCn, &ctx).unwrap();
    assert!(
        zh.body
            .contains("请在 2026年11月20日 18:30（UTC+09:00）前从"),
        "{}",
        zh.body
    );

    let utc = MessageContext {
        time_zone: None,
        ..ctx
    };
    let zh = render(Milestone::DecisionReminder, Locale::ZhCn, &utc).unwrap();
    assert!(
        zh.body.contains("请在 2026年11月20日 09:30（UTC）前从"),
        "{}",
        zh.body
    );
}

#[test]
fn return_instructions_say_where_to_send_and_who_pays() {
    let ctx = MessageContext {
        due: Some(due()),
        return_shipment: Some(ReturnShipment {
            address: "Returns Dept.\n88 Harbour Road\nShanghai 200000".into(),
            postage: ReturnPostage::LabelFeeDeducted { fee: cny(1200) },
        }),
        ..MessageContext::new(ticket())
    };
    let en = render(Milestone::ReturnRequested, Locale::En, &ctx).unwrap();
    assert!(
        en.body.contains(
            "to:\n\nReturns Dept.\n88 Harbour Road\nShanghai 200000\n\n\
             We will send you a return label; its fee of 12.00 CNY will be deducted from your \
             refund.\n\n"
        ),
        "{}",
        en.body
    );
    let zh = render(Milestone::ReturnRequested, Locale::ZhCn, &ctx).unwrap();
    assert!(
        zh.body
            .contains("我们将为您提供退货运单，运费 12.00 CNY 将从退款中扣除。"),
        "{}",
        zh.body
    );
}

#[test]
fn rejection_lists_each_reason_on_its_own_line() {
    let ctx = MessageContext {
        reasons: vec![
            "The item is marked final sale.".into(),
            "The return window\nclosed on 17 Nov.".into(),
        ],
        ..MessageContext::new(ticket())
    };
    let en = render(Milestone::Rejected, Locale::En, &ctx).unwrap();
    assert!(
        en.body.contains(
            "reasons:\n\n- The item is marked final sale.\n- The return window closed on 17 Nov.\n\n"
        ),
        "{}",
        en.body
    );
}

#[test]
fn a_customer_name_with_braces_is_inserted_literally() {
    let ctx = MessageContext {
        first_name: Some("{ticket_id}".into()),
        ..MessageContext::new(ticket())
    };
    let message = render(Milestone::Resolved, Locale::En, &ctx).unwrap();
    assert!(
        message.body.starts_with("Hello {ticket_id},\n"),
        "{}",
        message.body
    );
}

#[test]
fn a_blank_first_name_falls_back_to_the_generic_greeting() {
    let ctx = MessageContext {
        first_name: Some("   ".into()),
        ..MessageContext::new(ticket())
    };
    let message = render(Milestone::Resolved, Locale::ZhCn, &ctx).unwrap();
    assert!(
        message.body.starts_with("亲爱的顾客，您好！\n"),
        "{}",
        message.body
    );
}

#[test]
fn a_missing_value_is_reported_with_the_placeholder() {
    let ctx = MessageContext::new(ticket());
    for (milestone, placeholder) in [
        (Milestone::RefundIssued, Placeholder::Amount),
        (Milestone::Acknowledged, Placeholder::Due),
        (Milestone::Proposal, Placeholder::Options),
        (Milestone::Rejected, Placeholder::Reasons),
        (Milestone::Survey, Placeholder::Link),
        (Milestone::ReturnRequested, Placeholder::ReturnAddress),
    ] {
        assert_eq!(
            render(milestone, Locale::En, &ctx),
            Err(RenderError::MissingValue {
                milestone,
                placeholder
            })
        );
    }
}

#[test]
fn a_catalog_without_a_milestone_is_refused() {
    let start = EN_TOML.find("[milestones.follow_up]").unwrap();
    let without = &EN_TOML[..start];
    assert_eq!(
        TemplateCatalog::from_toml(without).unwrap_err(),
        TemplateError::MissingTemplate(Milestone::FollowUp)
    );
}

#[test]
fn a_template_for_an_unknown_milestone_is_refused() {
    let text = format!("{EN_TOML}\n[milestones.shipped]\nsubject = \"x\"\nbody = \"y\"\n");
    assert_eq!(
        TemplateCatalog::from_toml(&text).unwrap_err(),
        TemplateError::UnknownMilestone("shipped".into())
    );
}

#[test]
fn a_template_using_a_value_its_milestone_does_not_provide_is_refused() {
    let text = EN_TOML.replacen(
        "Your request {ticket_id} has been resolved. Thank",
        "Your request {ticket_id} has been resolved ({amount}). Thank",
        1,
    );
    assert_ne!(text, EN_TOML);
    assert_eq!(
        TemplateCatalog::from_toml(&text).unwrap_err(),
        TemplateError::UnexpectedPlaceholder {
            at: "milestones.resolved.body".into(),
            placeholder: Placeholder::Amount
        }
    );
}

#[test]
fn a_template_with_an_unknown_placeholder_is_refused() {
    let text = EN_TOML.replacen(
        "subject = \"Your request {ticket_id} has been resolved\"",
        "subject = \"Your request {ticket_id} has been resolved {coupon_code}\"",
        1,
    );
    assert_ne!(text, EN_TOML);
    assert_eq!(
        TemplateCatalog::from_toml(&text).unwrap_err(),
        TemplateError::UnknownPlaceholder {
            at: "milestones.resolved.subject".into(),
            name: "coupon_code".into()
        }
    );
}

#[test]
fn a_template_that_omits_a_value_its_milestone_is_about_is_refused() {
    let text = EN_TOML
        .replacen(
            "subject = \"Refund of {amount} issued ({ticket_id})\"",
            "subject = \"Refund issued ({ticket_id})\"",
            1,
        )
        .replacen(
            "We have issued a refund of {amount} for",
            "We have issued a refund for",
            1,
        );
    assert_eq!(
        TemplateCatalog::from_toml(&text).unwrap_err(),
        TemplateError::UnusedPlaceholder {
            milestone: Milestone::RefundIssued,
            placeholder: Placeholder::Amount
        }
    );
}

#[test]
fn an_unclosed_brace_is_refused_and_doubled_braces_are_literal() {
    let unclosed = EN_TOML.replacen(
        "subject = \"Your request {ticket_id} has been resolved\"",
        "subject = \"Your request {ticket_id has been resolved\"",
        1,
    );
    assert!(matches!(
        TemplateCatalog::from_toml(&unclosed).unwrap_err(),
        TemplateError::UnbalancedBrace { at, .. } if at == "milestones.resolved.subject"
    ));

    let literal = EN_TOML.replacen(
        "subject = \"Your request {ticket_id} has been resolved\"",
        "subject = \"Your request {ticket_id} has been resolved {{ok}}\"",
        1,
    );
    let catalog = TemplateCatalog::from_toml(&literal).unwrap();
    let message = catalog
        .render(Milestone::Resolved, &MessageContext::new(ticket()))
        .unwrap();
    assert_eq!(
        message.subject,
        "Your request tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB has been resolved {ok}"
    );
}
