//! `aftersales-local serve` as a process: start-up errors, signed requests over HTTP, and runs
//! that survive `kill -9`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use aftersales_service::signature::{WebhookSecret, sign};
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_aftersales-local");
const SECRET: &str = "whsec_local_stack_test";

/// A run that waits an hour (3.6 s at `--time-scale 1000`) and then succeeds.
const WAITING_WORKFLOW: &str = r#"{
  "StartAt": "AwaitParcel",
  "States": {
    "AwaitParcel": {"Type": "Wait", "Seconds": 3600, "Next": "Done"},
    "Done": {"Type": "Succeed"}
  }
}"#;

struct Server {
    child: Child,
    url: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn command(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("AFTERSALES_WEBHOOK_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts `serve` and waits for its `listening on` line.
async fn start(data_dir: &Path, extra: &[&str]) -> Server {
    let port = free_port().to_string();
    let mut args = vec!["serve", "--port", &port];
    args.extend_from_slice(extra);
    let mut child = command(data_dir, &args).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("serve printed nothing within 30 s")
        .unwrap()
        .expect("serve exited before listening");
    assert_eq!(line, format!("listening on http://127.0.0.1:{port}"));
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

fn workflow_file(dir: &Path) -> String {
    let path = dir.join("waiting.asl.json");
    std::fs::write(&path, WAITING_WORKFLOW).unwrap();
    path.display().to_string()
}

fn body(request_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "request_id": request_id, "channel": "web", "submitted_at": "2026-11-20T09:30:00Z",
        "customer": {"id": "C-1001", "name": "Li Lei", "email": "li@example.com", "locale": "en"},
        "order": {"id": "ORD-5521", "currency": "CNY", "placed_at": "2026-11-01T10:00:00Z",
                  "delivered_at": "2026-11-03T15:20:00Z", "shipping_paid": 1000,
                  "lines": [{"line_id": "L1", "sku": "KB-87", "title": "Keyboard",
                             "category": "electronics", "quantity": 2, "unit_price": 29900,
                             "final_sale": false}],
                  "payment": {"provider": "stripe", "reference": "pi_3N", "paid": 60800}},
        "problem": {"kind": "damaged_in_transit", "description": "cracked case",
                    "lines": [{"line_id": "L1", "quantity": 1}],
                    "evidence": [{"kind": "photo", "url": "https://example.com/p.jpg"}]},
        "expected_resolution": "refund"
    }))
    .unwrap()
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, Value) {
    let secret = WebhookSecret::new(SECRET).unwrap();
    let signature = sign(&secret, Timestamp::now(), &body);
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-aftersales-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let secret = WebhookSecret::new(SECRET).unwrap();
    let response = client
        .get(url)
        .header(
            "x-aftersales-signature",
            sign(&secret, Timestamp::now(), b""),
        )
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn runs(data_dir: &Path, args: &[&str]) -> String {
    let out = command(data_dir, args).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn a_request_is_accepted_once_and_its_run_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = workflow_file(dir.path());
    let flags = ["--time-scale", "1000", "--workflow", workflow.as_str()];
    let mut server = start(dir.path(), &flags).await;
    let client = aftersales_service::runtime::tls::client_builder()
        .build()
        .unwrap();
    let requests = format!("{}/v1/requests", server.url);

    let (status, first) = post(&client, &requests, body("evt_kill9")).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = post(&client, &requests, body("evt_kill9")).await;
    assert_eq!((status, &again), (200, &first));
    let ticket = first["ticket_id"].as_str().unwrap().to_owned();
    let (status, shown) = get(&client, &format!("{}/v1/tickets/{ticket}", server.url)).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["ticket_id"], ticket.as_str());

    tokio::time::sleep(Duration::from_millis(500)).await;
    let listed = runs(dir.path(), &["runs", "list"]).await;
    assert!(
        listed.contains(&ticket) && listed.contains("RUNNING"),
        "{listed}"
    );
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    let listed = runs(dir.path(), &["runs", "list"]).await;
    assert!(listed.contains(&ticket), "readable after kill -9: {listed}");

    let server = start(dir.path(), &flags).await;
    let (status, _) = get(&client, &format!("{}/v1/tickets/{ticket}", server.url)).await;
    assert_eq!(status, 200, "the ticket survived");
    let mut shown = String::new();
    for _ in 0..100 {
        shown = runs(dir.path(), &["runs", "show", &ticket]).await;
        if shown.contains("SUCCEEDED") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(shown.contains("status:     SUCCEEDED"), "{shown}");
    assert!(shown.contains("AwaitParcel"), "{shown}");
    assert!(!shown.contains("li@example.com"), "personal data is masked");
}

#[tokio::test]
async fn a_bad_signature_is_401_and_an_unknown_route_404() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = workflow_file(dir.path());
    let server = start(dir.path(), &["--workflow", workflow.as_str()]).await;
    let client = aftersales_service::runtime::tls::client_builder()
        .build()
        .unwrap();
    let response = client
        .post(format!("{}/v1/requests", server.url))
        .header("content-type", "application/json")
        .header("x-aftersales-signature", "t=1,v1=00")
        .body(body("evt_bad"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let (status, answer) = get(&client, &format!("{}/v2/nothing", server.url)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test]
async fn a_generated_secret_is_kept_in_the_data_directory_readable_by_the_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = workflow_file(dir.path());
    let port = free_port().to_string();
    let mut child = command(
        dir.path(),
        &["serve", "--port", &port, "--workflow", &workflow],
    )
    .env_remove("AFTERSALES_WEBHOOK_SECRET")
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(line.starts_with("listening on "));
    let file = dir.path().join("webhook-secret");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("whsec_")
    );
}

async fn fails_with(data_dir: &Path, args: &[&str], words: &str) {
    let out = tokio::time::timeout(Duration::from_secs(30), command(data_dir, args).output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or("");
    assert!(line.contains(words), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}

#[tokio::test]
async fn a_busy_port_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    fails_with(dir.path(), &["serve", "--port", &port], "already in use").await;
}

#[tokio::test]
async fn a_corrupt_store_file_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("store.redb"), b"not a store".repeat(500)).unwrap();
    let port = free_port().to_string();
    fails_with(
        dir.path(),
        &["serve", "--port", &port],
        "not a readable store file",
    )
    .await;
}

#[tokio::test]
async fn an_unwritable_data_directory_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"").unwrap();
    let port = free_port().to_string();
    fails_with(
        &blocker.join("data"),
        &["serve", "--port", &port],
        "not writable",
    )
    .await;
}

#[tokio::test]
async fn a_request_runs_the_real_workflow_with_the_step_handlers_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--time-scale", "10"]).await;
    let client = aftersales_service::runtime::tls::client_builder()
        .build()
        .unwrap();
    let (status, accepted) = post(
        &client,
        &format!("{}/v1/requests", server.url),
        recent_body("evt_real"),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let ticket = accepted["ticket_id"].as_str().unwrap().to_owned();

    let mut shown = Value::Null;
    for _ in 0..100 {
        shown = get(&client, &format!("{}/v1/tickets/{ticket}", server.url))
            .await
            .1;
        if shown["status"] == "proposed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown["status"], "proposed", "{shown}");
    assert!(
        shown["proposal"]["options"]
            .as_array()
            .is_some_and(|o| !o.is_empty())
    );
    // The run is stored when its advance has parked, a moment after the step saved the ticket.
    let mut run = String::new();
    for _ in 0..100 {
        run = runs(dir.path(), &["runs", "show", &ticket]).await;
        if run.contains("waiting:    task in state AwaitCustomerDecision") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for state in ["Diagnose", "Propose", "AwaitCustomerDecision"] {
        assert!(run.contains(state), "{state} in {run}");
    }
    let outbox = runs(dir.path(), &["outbox", "show"]).await;
    assert!(
        outbox.contains(&ticket),
        "the acknowledgement is in the outbox: {outbox}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_of_duplicate_deliveries_makes_one_ticket_and_one_run_per_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = workflow_file(dir.path());
    let server = start(dir.path(), &["--workflow", workflow.as_str()]).await;
    let client = aftersales_service::runtime::tls::client_builder()
        .build()
        .unwrap();
    let url = format!("{}/v1/requests", server.url);
    let deliveries: Vec<_> = (0..1000)
        .map(|n| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                post(&client, &url, body(&format!("evt_storm_{}", n % 100))).await
            })
        })
        .collect();
    let mut tickets = std::collections::BTreeMap::new();
    for delivery in deliveries {
        let (status, answer) = delivery.await.unwrap();
        assert!(status == 200 || status == 202, "{status} {answer}");
        let ticket = answer["ticket_id"].as_str().unwrap().to_owned();
        *tickets.entry(ticket).or_insert(0) += 1;
    }
    assert_eq!(tickets.len(), 100);
    assert_eq!(tickets.values().sum::<i32>(), 1000);
    let listed = runs(dir.path(), &["runs", "list"]).await;
    assert_eq!(
        listed.lines().count(),
        1 + 100,
        "a header and one run per ticket"
    );
    assert!(tickets.keys().all(|t| listed.contains(t.as_str())));
}

/// A request delivered two days ago: within every return window, so the policy proposes options.
fn recent_body(request_id: &str) -> Vec<u8> {
    let mut request: Value = serde_json::from_slice(&body(request_id)).unwrap();
    let now = Timestamp::now();
    let days_ago = |n: i64| (now - jiff::SignedDuration::from_hours(24 * n)).to_string();
    request["submitted_at"] = json!(now.to_string());
    // One order per request: several requests on one order line are a duplicate claim,
    // which diagnosis sends to an agent.
    request["order"]["id"] = json!(format!("ORD-{request_id}"));
    request["order"]["placed_at"] = json!(days_ago(5));
    request["order"]["delivered_at"] = json!(days_ago(2));
    serde_json::to_vec(&request).unwrap()
}

/// The default policy with the survey sent one minute after the resolution, so that with
/// `--time-scale 60` a run reaches its survey in a second while people have 48 minutes or more.
fn quick_survey_policy(dir: &Path) -> String {
    let text = aftersales_domain::policy::DEFAULT_POLICY_TOML.replace(
        "delay_after_resolution = \"24h\"",
        "delay_after_resolution = \"1m\"",
    );
    assert!(text.contains("delay_after_resolution = \"1m\""));
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Polls the ticket until `done` holds (30 s at most).
async fn ticket_until(
    client: &reqwest::Client,
    url: &str,
    ticket: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut shown = Value::Null;
    for _ in 0..600 {
        shown = get(client, &format!("{url}/v1/tickets/{ticket}")).await.1;
        if done(&shown) {
            return shown;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the ticket never got there: {shown}");
}

#[tokio::test]
async fn runs_waiting_for_people_survive_kill_9_and_finish_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let policy = quick_survey_policy(dir.path());
    let flags = ["--time-scale", "60", "--policy", policy.as_str()];
    let mut server = start(dir.path(), &flags).await;
    let client = aftersales_service::runtime::tls::client_builder()
        .build()
        .unwrap();
    let mut tickets = Vec::new();
    for n in 0..3 {
        let (status, accepted) = post(
            &client,
            &format!("{}/v1/requests", server.url),
            recent_body(&format!("evt_restart_{n}")),
        )
        .await;
        assert_eq!(status, 202, "{accepted}");
        tickets.push(accepted["ticket_id"].as_str().unwrap().to_owned());
    }
    for ticket in &tickets {
        ticket_until(&client, &server.url, ticket, |t| {
            t["waiting_for"] == "decision"
        })
        .await;
    }

    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    let server = start(dir.path(), &flags).await;

    for ticket in &tickets {
        answer_until_closed(&client, &server.url, ticket).await;
    }
    for ticket in &tickets {
        assert_run_succeeded(dir.path(), ticket).await;
    }
}

/// Answers the ticket waiting for the customer's decision as its customer, warehouse and
/// survey would, until it is closed.
async fn answer_until_closed(client: &reqwest::Client, url: &str, ticket: &str) {
    let shown = ticket_until(client, url, ticket, |t| t["waiting_for"] == "decision").await;
    let option = shown["proposal"]["options"][0]["id"].as_str().unwrap();
    let responses = format!("{url}/v1/tickets/{ticket}/responses");
    let decision = json!({"kind": "decision", "option_id": option});
    let (status, answer) = post(client, &responses, serde_json::to_vec(&decision).unwrap()).await;
    assert_eq!(status, 202, "{answer}");
    loop {
        let shown = ticket_until(client, url, ticket, |t| {
            t["waiting_for"] == "return_parcel"
                || t["waiting_for"] == "survey"
                || t["status"] == "closed"
        })
        .await;
        let answer = match shown["waiting_for"].as_str() {
            Some("return_parcel") => json!({"kind": "return_received", "lines": [
                {"line_id": "L1", "quantity": 1, "disposition": "restock"}]}),
            Some("survey") => json!({"kind": "survey", "score": 5}),
            _ => break,
        };
        let (status, body) = post(client, &responses, serde_json::to_vec(&answer).unwrap()).await;
        assert_eq!(status, 202, "{body}");
    }
}

/// `runs show` reports the ticket's run succeeded through the survey (20 s at most).
async fn assert_run_succeeded(data_dir: &Path, ticket: &str) {
    let mut shown = String::new();
    for _ in 0..200 {
        shown = runs(data_dir, &["runs", "show", ticket]).await;
        if shown.contains("status:     SUCCEEDED") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(shown.contains("status:     SUCCEEDED"), "{shown}");
    for state in [
        "AwaitCustomerDecision",
        "WaitBeforeSurvey",
        "Survey",
        "SendFeedback",
    ] {
        assert!(shown.contains(state), "{state} in {shown}");
    }
}

/// Posts a new request and waits until its ticket waits for the customer's decision; its id.
async fn accepted_until_decision(client: &reqwest::Client, url: &str, request_id: &str) -> String {
    let (status, accepted) = post(
        client,
        &format!("{url}/v1/requests"),
        recent_body(request_id),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let ticket = accepted["ticket_id"].as_str().unwrap().to_owned();
    ticket_until(client, url, &ticket, |t| t["waiting_for"] == "decision").await;
    ticket
}

#[tokio::test]
async fn a_run_stored_whole_by_an_earlier_version_resumes_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let policy = quick_survey_policy(dir.path());
    let flags = ["--time-scale", "60", "--policy", policy.as_str()];
    let mut server = start(dir.path(), &flags).await;
    let client = aftersales_service::runtime::tls::client_builder()
        .build()
        .unwrap();
    let ticket = accepted_until_decision(&client, &server.url, "evt_upgrade").await;
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();

    // The store as versions before the definitions table left it: the run parked on the
    // customer's decision, stored whole, and no definitions table.
    let file = dir.path().join(aftersales_local::store::FILE_NAME);
    let run = {
        let store = aftersales_local::store::LocalStore::open(dir.path()).unwrap();
        store.run(&ticket).await.unwrap().unwrap()
    };
    {
        let executions = redb::TableDefinition::<&str, &str>::new("executions");
        let definitions = redb::TableDefinition::<&str, &str>::new("definitions");
        let db = redb::Database::open(&file).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(executions)
            .unwrap()
            .insert(ticket.as_str(), run.to_json().unwrap().as_str())
            .unwrap();
        assert!(tx.delete_table(definitions).unwrap());
        tx.commit().unwrap();
    }
    let shown = runs(dir.path(), &["runs", "show", &ticket]).await;
    assert!(shown.contains("AwaitCustomerDecision"), "{shown}");

    let server = start(dir.path(), &flags).await;
    answer_until_closed(&client, &server.url, &ticket).await;
    assert_run_succeeded(dir.path(), &ticket).await;
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_closes_the_store_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[]).await;
    let client = aftersales_service::runtime::tls::client_builder()
        .build()
        .unwrap();
    let ticket = accepted_until_decision(&client, &server.url, "evt_sigterm").await;

    let pid = server.child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), server.child.wait())
        .await
        .expect("serve stops within 20 s of SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(server.child.stderr.as_mut().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("SIGTERM: stopping"), "{stderr}");
    assert!(stderr.contains("stopped; the store is closed"), "{stderr}");
    let refused = client
        .get(format!("{}/v1/tickets/{ticket}", server.url))
        .send()
        .await;
    assert!(refused.is_err(), "nothing listens any more");

    // Closed cleanly: a read-only handle opens it without the repair an unclean stop needs.
    redb::Database::builder()
        .open_read_only(dir.path().join(aftersales_local::store::FILE_NAME))
        .expect("the store was closed cleanly");
    let server = start(dir.path(), &[]).await;
    let shown = ticket_until(&client, &server.url, &ticket, |t| {
        t["waiting_for"] == "decision"
    })
    .await;
    assert_eq!(shown["status"], "proposed");
}

/// Each thread of process `pid`: its name and its nice value (field 19 of its stat).
#[cfg(target_os = "linux")]
fn thread_nice(pid: u32) -> Vec<(String, i64)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
        let (open, close) = (stat.find('(').unwrap(), stat.rfind(')').unwrap());
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        threads.push((
            stat[open + 1..close].to_owned(),
            fields[16].parse().unwrap(),
        ));
    }
    threads
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn runs_are_advanced_on_low_priority_threads_and_intake_keeps_its_priority() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    let client = aftersales_service::runtime::tls::client_builder()
        .build()
        .unwrap();
    // A run advanced to its wait: the background runtime has worked.
    accepted_until_decision(&client, &server.url, "evt_priority").await;

    let own = thread_nice(std::process::id())[0].1;
    let threads = thread_nice(server.child.id().unwrap());
    let (advances, others): (Vec<_>, Vec<_>) =
        threads.iter().partition(|(name, _)| name == "run-advances");
    // Its own thread and its workers (a nice value can only be raised without privilege).
    assert!(advances.len() >= 3, "{threads:?}");
    let low = i64::from(aftersales_local::runner::BACKGROUND_NICE).max(own);
    assert!(advances.iter().all(|(_, nice)| *nice == low), "{threads:?}");
    // The HTTP workers and the store writer keep the priority the server started with.
    assert!(
        others.iter().any(|(name, _)| name == "store-writer"),
        "{threads:?}"
    );
    assert!(others.iter().all(|(_, nice)| *nice == own), "{threads:?}");
}

/// The `THP_enabled` line of process `pid`'s status: 0 once it turned transparent huge pages off.
#[cfg(target_os = "linux")]
fn thp_enabled(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .expect("the kernel reports THP_enabled")
        .trim()
        .to_owned()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_server_turns_transparent_huge_pages_off() {
    // A child inherits the flag: the test process has it on, so the server turned it off.
    assert_eq!(thp_enabled(std::process::id()), "1");
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    assert_eq!(thp_enabled(server.child.id().unwrap()), "0");
}
