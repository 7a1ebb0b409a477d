//! The request rules beyond a field's type: text limits, contact formats, evidence URLs and
//! the cross-field consistency of order, payment and problem. Checked in document order; the
//! first broken rule is the error.

use std::collections::HashMap;

use super::error::RequestError;
use super::{Customer, Order, Problem, ServiceRequest};
use crate::ids::LineId;
use crate::money::Money;

/// Longest `problem.description`, in characters (Unicode scalar values).
pub const MAX_DESCRIPTION_CHARS: usize = 4000;
/// Longest `order.lines[*].title`, in characters.
pub const MAX_TITLE_CHARS: usize = 500;
/// Longest `customer.name`, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest `customer.email`, in characters (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest `customer.phone`, in characters.
pub const MAX_PHONE_CHARS: usize = 40;
/// Longest evidence URL, in characters.
pub const MAX_URL_CHARS: usize = 2048;

type Checked = Result<(), RequestError>;

fn refuse(field: impl Into<String>, message: impl Into<String>) -> Checked {
    Err(RequestError::invalid_field(field, message))
}

pub(super) fn check(request: &ServiceRequest) -> Checked {
    if request.submitted_at < request.order.placed_at {
        return refuse(
            "submitted_at",
            "is before order.placed_at: a request cannot precede its order",
        );
    }
    check_customer(&request.customer)?;
    check_order(&request.order)?;
    check_problem(&request.problem, &request.order)
}

fn check_length(field: &str, text: &str, max: usize) -> Checked {
    let len = text.chars().count();
    if len > max {
        return refuse(
            field,
            format!("must be at most {max} characters (got {len})"),
        );
    }
    Ok(())
}

fn check_customer(customer: &Customer) -> Checked {
    if let Some(name) = &customer.name {
        check_length("customer.name", name, MAX_NAME_CHARS)?;
    }
    if let Some(email) = &customer.email {
        check_length("customer.email", email, MAX_EMAIL_CHARS)?;
        let well_formed = email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        }) && !email.chars().any(char::is_whitespace);
        if !well_formed {
            return refuse(
                "customer.email",
                "must be an email address: one '@' with text on both sides and no spaces",
            );
        }
    }
    if let Some(phone) = &customer.phone {
        check_length("customer.phone", phone, MAX_PHONE_CHARS)?;
        let allowed = phone
            .chars()
            .all(|c| c.is_ascii_digit() || " +().-/".contains(c));
        if !allowed || !phone.chars().any(|c| c.is_ascii_digit()) {
            return refuse(
                "customer.phone",
                "must be a phone number: digits, spaces and + - ( ) . / only, with at least one digit",
            );
        }
    }
    Ok(())
}

fn check_order(order: &Order) -> Checked {
    if order
        .delivered_at
        .is_some_and(|delivered| delivered < order.placed_at)
    {
        return refuse(
            "order.delivered_at",
            "is before order.placed_at: an order cannot arrive before it was placed",
        );
    }
    if order.lines.is_empty() {
        return refuse("order.lines", "must list at least one line");
    }

    let mut first_seen: HashMap<&LineId, usize> = HashMap::new();
    for (i, line) in order.lines.iter().enumerate() {
        if let Some(first) = first_seen.insert(&line.line_id, i) {
            return refuse(
                format!("order.lines[{i}].line_id"),
                format!(
                    "line '{}' appears more than once in the order (first at order.lines[{first}])",
                    line.line_id
                ),
            );
        }
        let title = format!("order.lines[{i}].title");
        if line.title.trim().is_empty() {
            return refuse(title, "must not be blank");
        }
        check_length(&title, &line.title, MAX_TITLE_CHARS)?;
    }

    let total = order_total(order).map_err(|()| {
        RequestError::invalid_field(
            "order.lines",
            "the order total (quantity × unit_price over the lines, plus shipping_paid) \
             does not fit in 64-bit minor units",
        )
    })?;
    let paid = order.payment.paid.in_currency(order.currency);
    if paid.minor > total.minor {
        return refuse(
            "order.payment.paid",
            format!("{paid} is more than the order total of {total} (lines plus shipping_paid)"),
        );
    }
    let priced = order.lines.iter().any(|l| l.unit_price.minor() > 0);
    if priced && paid.is_zero() {
        return refuse(
            "order.payment.paid",
            "must be more than 0: the order has priced lines",
        );
    }
    Ok(())
}

/// Σ quantity × unit_price + shipping_paid, refusing overflow.
fn order_total(order: &Order) -> Result<Money, ()> {
    let lines = order.lines.iter().map(|line| {
        line.unit_price
            .in_currency(order.currency)
            .checked_mul(i64::from(line.quantity.get()))
    });
    let shipping = std::iter::once(Ok(order.shipping_paid.in_currency(order.currency)));
    lines
        .chain(shipping)
        .try_fold(Money::zero(order.currency), |sum, item| {
            item.and_then(|m| sum.checked_add(m))
        })
        .map_err(|_| ())
}

fn check_problem(problem: &Problem, order: &Order) -> Checked {
    check_length(
        "problem.description",
        &problem.description,
        MAX_DESCRIPTION_CHARS,
    )?;
    if problem.lines.is_empty() {
        return refuse("problem.lines", "must name at least one affected line");
    }

    let mut first_seen: HashMap<&LineId, usize> = HashMap::new();
    for (i, affected) in problem.lines.iter().enumerate() {
        let Some(ordered) = order.line(&affected.line_id) else {
            return refuse(
                format!("problem.lines[{i}].line_id"),
                format!("line '{}' is not in the order", affected.line_id),
            );
        };
        if let Some(first) = first_seen.insert(&affected.line_id, i) {
            return refuse(
                format!("problem.lines[{i}].line_id"),
                format!(
                    "line '{}' is listed more than once (first at problem.lines[{first}])",
                    affected.line_id
                ),
            );
        }
        if affected.quantity > ordered.quantity {
            return refuse(
                format!("problem.lines[{i}].quantity"),
                format!(
                    "quantity {} is more than the {} ordered",
                    affected.quantity.get(),
                    ordered.quantity.get()
                ),
            );
        }
    }

    for (i, evidence) in problem.evidence.iter().enumerate() {
        let field = format!("problem.evidence[{i}].url");
        check_length(&field, &evidence.url, MAX_URL_CHARS)?;
        if !is_https_url(&evidence.url) {
            return refuse(
                field,
                "must be an https:// URL with a host, no credentials and no spaces",
            );
        }
    }
    Ok(())
}

/// The parser's side of `HTTPS_URL_PATTERN`: `https://host[/path][?query][#fragment]`.
fn is_https_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..host_end];
    !host.is_empty() && !host.contains('@') && !url.chars().any(char::is_whitespace)
}
