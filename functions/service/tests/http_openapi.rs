//! `docs/openapi.yaml` against the handlers: every route, every status a handler answers with
//! on that route (observed by calling it), and every error code is documented.

mod http_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use aftersales_domain::lifecycle::WaitKind;
use aftersales_domain::{Policy, TicketId};
use aftersales_service::adapters::workflow::InMemoryWorkflow;
use aftersales_service::clock::FixedClock;
use aftersales_service::handlers::http::ErrorCode;
use aftersales_service::handlers::{accept, respond};
use aftersales_service::store::MemoryStore;
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use http_support::*;
use jiff::SignedDuration;
use serde_json::json;

fn openapi() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The status codes documented under each path (`paths:` → `  /route:` → `'NNN':`).
fn documented_statuses(yaml: &str) -> BTreeMap<String, BTreeSet<u16>> {
    let mut out: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    let mut in_paths = false;
    let mut route = None;
    for line in yaml.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line == "paths:";
            route = None;
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(key) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && key.starts_with('/')
        {
            route = Some(key.to_owned());
            out.entry(key.to_owned()).or_default();
            continue;
        }
        if let Some(route) = &route {
            let trimmed = line.trim();
            if let Some(code) = trimmed
                .strip_prefix('\'')
                .and_then(|t| t.strip_suffix("':"))
                .and_then(|c| c.parse::<u16>().ok())
            {
                out.get_mut(route).unwrap().insert(code);
            }
        }
    }
    out
}

/// The error codes listed in the `Error` schema's enum.
fn documented_codes(yaml: &str) -> BTreeSet<String> {
    let start = yaml.find("    Error:\n").expect("an Error schema");
    let section = &yaml[start..];
    let enum_at = section.find("enum:\n").expect("an enum of codes");
    section[enum_at + 6..]
        .lines()
        .map_while(|l| l.trim().strip_prefix("- ").map(str::to_owned))
        .collect()
}

fn error_code(response: &ApiGatewayV2httpResponse) -> Option<String> {
    let body = body(response);
    body["error"]["code"].as_str().map(str::to_owned)
}

/// Calls the handlers with requests that provoke each outcome; returns (route, status, code).
async fn observed() -> Vec<(String, u16, Option<String>)> {
    let store = Arc::new(MemoryStore::new());
    let workflow = Arc::new(InMemoryWorkflow::new());
    let clock = Arc::new(FixedClock::at(now()));
    let accept_deps = accept::Deps {
        store: store.clone(),
        workflow: workflow.clone(),
        clock: clock.clone(),
        policy: Arc::new(Policy::default_policy()),
        secrets: secrets(),
    };
    let respond_deps = respond::Deps {
        store: store.clone(),
        workflow: workflow.clone(),
        clock,
        secrets: secrets(),
    };
    let mut seen = Vec::new();
    let mut note = |route: &str, response: ApiGatewayV2httpResponse| {
        let code = error_code(&response);
        seen.push((route.to_owned(), response.status_code as u16, code));
    };

    let route = accept::ROUTE;
    let request = serde_json::to_vec(&request_json("evt_doc")).unwrap();
    let old = now().checked_sub(SignedDuration::from_secs(301)).unwrap();
    let mut other = request_json("evt_doc");
    other["channel"] = json!("app");
    let mut big = request_json("evt_big");
    big["padding"] = json!("x".repeat(300 * 1024));
    for event in [
        signed_post(route, &request_json("evt_doc")),
        signed_post(route, &request_json("evt_doc")),
        signed_post(route, &other),
        event(
            "POST",
            route,
            json!({"content-type": "application/json"}),
            Some(&request),
        ),
        signed_at("POST", route, &request, "application/json", old),
        signed_at("POST", route, b"{", "application/json", now()),
        signed_post(route, &json!({"request_id": "evt_x"})),
        signed_post(route, &big),
        signed_at("POST", route, &request, "text/plain", now()),
        signed_get(route),
    ] {
        note(route, accept::handle(event, &accept_deps).await);
    }
    note(
        "(unknown)",
        accept::handle(signed_post("/v2/requests", &json!({})), &accept_deps).await,
    );

    let waiting = ticket_waiting(store.as_ref(), "evt_doc_wait", WaitKind::Survey, "tok").await;
    workflow.open_task("tok");
    let unknown = TicketId::generate(now(), 1);
    let status_of = |id: &TicketId| format!("/v1/tickets/{id}");
    let responses_of = |id: &TicketId| format!("/v1/tickets/{id}/responses");
    for event in [
        signed_get(&status_of(&waiting.id)),
        signed_get(&status_of(&unknown)),
        event("GET", &status_of(&waiting.id), json!({}), None),
        signed_post(&status_of(&waiting.id), &json!({})),
    ] {
        note(
            respond::STATUS_ROUTE,
            respond::handle(event, &respond_deps).await,
        );
    }
    let survey = json!({"kind": "survey", "score": 4});
    let path = responses_of(&waiting.id);
    for event in [
        signed_post(&path, &json!({"kind": "decision", "option_id": "opt-1"})),
        signed_post(&path, &survey),
        signed_post(&path, &survey),
        signed_post(&path, &json!({"kind": "survey", "score": 9})),
        signed_at("POST", &path, b"[", "application/json", now()),
        signed_at(
            "POST",
            &path,
            &serde_json::to_vec(&big).unwrap(),
            "application/json",
            now(),
        ),
        signed_at("POST", &path, b"{}", "text/plain", now()),
        event(
            "POST",
            &path,
            json!({"content-type": "application/json"}),
            Some(b"{}"),
        ),
        signed_post(&responses_of(&unknown), &survey),
        signed_get(&path),
    ] {
        note(
            respond::RESPONSES_ROUTE,
            respond::handle(event, &respond_deps).await,
        );
    }
    seen
}

#[tokio::test]
async fn every_route_and_every_status_a_handler_answers_with_is_documented() {
    let yaml = openapi();
    let documented = documented_statuses(&yaml);
    let routes: BTreeSet<&str> = documented.keys().map(String::as_str).collect();
    assert_eq!(
        routes,
        BTreeSet::from([
            accept::ROUTE,
            respond::STATUS_ROUTE,
            respond::RESPONSES_ROUTE
        ])
    );
    let seen = observed().await;
    let statuses: BTreeSet<u16> = seen.iter().map(|(_, s, _)| *s).collect();
    // The calls above provoke every outcome but the 5xx ones.
    assert_eq!(
        statuses,
        BTreeSet::from([200, 202, 400, 401, 404, 405, 409, 413, 415])
    );
    for (route, status, code) in &seen {
        if route == "(unknown)" {
            assert_eq!((*status, code.as_deref()), (404, Some("not_found")));
            continue;
        }
        assert!(
            documented[route].contains(status),
            "{route} answers {status} ({code:?}) but docs/openapi.yaml does not list it"
        );
    }
}

#[test]
fn every_error_code_is_documented_with_its_status() {
    let yaml = openapi();
    let codes = documented_codes(&yaml);
    let ours: BTreeSet<String> = ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    assert_eq!(codes, ours);
    let documented = documented_statuses(&yaml);
    for code in ErrorCode::ALL {
        assert!(
            documented.values().any(|s| s.contains(&code.status())),
            "{code} ({}) is on no route",
            code.status()
        );
    }
    // 5xx can come from any route: every route lists them.
    for statuses in documented.values() {
        assert!(statuses.contains(&500) && statuses.contains(&503));
    }
}

#[test]
fn the_request_schema_the_openapi_file_refers_to_exists() {
    let yaml = openapi();
    assert!(yaml.contains("$ref: './schema/request.schema.json'"));
    let schema =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema/request.schema.json");
    assert!(schema.is_file());
}
