//! Part 5: intake throughput of `aftersales-local serve` (signed `POST /v1/requests`, durable
//! store) from a small keep-alive HTTP/1.1 load generator on loopback; plus the moto server
//! that part 2 uses.

use crate::Options;
use crate::report::Report;
use crate::runtime_api::SECRET;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// `X-Aftersales-Signature` for `body` at unix time `t` (/work/shared/API.md).
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A valid after-sales request with a unique `request_id`.
pub fn request_body(n: u64) -> Value {
    json!({
        "request_id": format!("evt_bench_{}_{n}", std::process::id()),
        "channel": "web",
        "submitted_at": "2026-11-20T09:30:00Z",
        "customer": {"id": format!("C-{}", n % 997), "name": "Bench Customer", "email": "bench@example.com",
                     "phone": "+8613800000000", "locale": "zh-CN", "tier": "gold"},
        "order": {
            "id": format!("ORD-{n}"), "currency": "CNY",
            "placed_at": "2026-11-01T10:00:00Z", "delivered_at": "2026-11-03T15:20:00Z",
            "shipping_paid": 1000,
            "lines": [{"line_id": "L1", "sku": "KB-87", "title": "Mechanical keyboard", "category": "electronics",
                       "quantity": 2, "unit_price": 29900, "final_sale": false}],
            "payment": {"provider": "stripe", "reference": format!("pi_bench_{n}"), "paid": 60800}
        },
        "problem": {
            "kind": "quality_defect",
            "description": "Two keys stopped working after a week.",
            "lines": [{"line_id": "L1", "quantity": 1}],
            "evidence": [{"kind": "photo", "url": "https://example.com/p.jpg"}]
        },
        "expected_resolution": "refund"
    })
}

/// A moto server on a free loopback port, killed on drop.
pub struct Moto {
    pub endpoint: String,
    pub version: String,
    child: Child,
}

impl Moto {
    pub async fn start(root: &Path, work: &Path) -> Result<Moto, String> {
        let bin = root.join(".tools/moto-venv/bin/moto_server");
        if !bin.exists() {
            return Err(format!(
                "{} missing (scripts/moto.sh installs it)",
                bin.display()
            ));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("free port: {e}"))?
            .port();
        let log = std::fs::File::create(work.join("moto.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start moto: {e}"))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let until = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() > until {
                return Err("moto did not listen within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let version = std::process::Command::new(root.join(".tools/moto-venv/bin/python"))
            .args([
                "-c",
                "import importlib.metadata as m; print(m.version('moto'))",
            ])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Ok(Moto {
            endpoint,
            version,
            child,
        })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

struct Served {
    child: Child,
    port: u16,
}

async fn serve(o: &Options) -> Result<Served, String> {
    let bin = o.bin_dir.join("aftersales-local");
    let data = o.work.join("intake-data");
    let log = std::fs::File::create(o.work.join("serve.log")).map_err(|e| e.to_string())?;
    let mut child = Command::new(&bin)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(&data)
        .current_dir(&o.root)
        .env("AFTERSALES_WEBHOOK_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| "serve did not start within 30 s".to_owned())?
        .map_err(|e| e.to_string())?
        .ok_or("serve exited")?;
    let port = line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| format!("unexpected first line: {line}"))?;
    Ok(Served { child, port })
}

/// Sends requests on one keep-alive connection until `stop`; latencies in µs.
async fn worker(
    port: u16,
    counter: Arc<AtomicU64>,
    stop: Instant,
    record_after: Instant,
) -> Result<(Vec<u32>, u64), String> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut latencies = Vec::new();
    let mut errors = 0;
    while Instant::now() < stop {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let body = request_body(n).to_string();
        let t = jiff::Timestamp::now().as_second();
        let sig = signature(SECRET.as_bytes(), t, body.as_bytes());
        let mut request = String::with_capacity(body.len() + 256);
        let _ = write!(
            request,
            "POST /v1/requests HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nX-Aftersales-Signature: {sig}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let sent = Instant::now();
        write
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut status = String::new();
        reader
            .read_line(&mut status)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?
                == 0
            {
                return Err("connection closed".into());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut buf = vec![0u8; length];
        reader
            .read_exact(&mut buf)
            .await
            .map_err(|e| format!("read body: {e}"))?;
        let elapsed = sent.elapsed();
        if !status.contains(" 202 ") {
            errors += 1;
            if errors == 1 {
                eprintln!(
                    "intake: {} {}",
                    status.trim(),
                    String::from_utf8_lossy(&buf)
                );
            }
        }
        if sent >= record_after {
            latencies.push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
        }
    }
    Ok((latencies, errors))
}

/// Part 5.
pub async fn throughput(o: &Options, r: &mut Report) -> Result<(), String> {
    let (seconds, warmup, connections) = if o.quick {
        (2.0, 0.5, 8)
    } else {
        (20.0, 3.0, 32)
    };
    let mut served = serve(o).await?;
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let record_after = start + Duration::from_secs_f64(warmup);
    let stop = record_after + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        tasks.push(tokio::spawn(worker(
            served.port,
            counter.clone(),
            stop,
            record_after,
        )));
    }
    let mut latencies: Vec<u32> = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.map_err(|e| e.to_string())??;
        latencies.extend(l);
        errors += e;
    }
    let _ = served.child.start_kill();
    let _ = served.child.wait().await;
    latencies.sort_unstable();
    let n = latencies.len();
    if n == 0 {
        return Err("no request completed".into());
    }
    let pct =
        |p: f64| latencies[((p * (n - 1) as f64).round() as usize).min(n - 1)] as f64 / 1000.0;
    let rps = n as f64 / seconds;
    let (p50, p99) = (pct(0.5), pct(0.99));
    let max = latencies[n - 1] as f64 / 1000.0;
    r.summary.push(format!(
        "intake  {rps:.0} req/s  p50 {p50:.2} ms  p99 {p99:.2} ms  ({connections} connections, {errors} non-202)"
    ));
    r.target(
        "Intake throughput, local stack (durable store)",
        "≥ 5,000 req/s, p99 < 10 ms",
        format!("{rps:.0} req/s, p99 {p99:.2} ms"),
        Some(rps >= 5000.0 && p99 < 10.0),
    );
    let mut md = String::new();
    let _ = writeln!(
        md,
        "`aftersales-local serve` (release build, fresh data directory, redb with fsync on every commit) on loopback; the load generator in local/bench/src/intake.rs keeps {connections} keep-alive HTTP/1.1 connections busy, each sending a new signed `POST /v1/requests` (unique `request_id`, a one-line order, {} bytes) as soon as the previous one is answered, for {warmup} s of warm-up and then {seconds} s measured. Every accepted request is a new ticket, its audit event and a new workflow run, committed before the 202. The load generator runs on the same 2 cores as the server.\n",
        request_body(0).to_string().len()
    );
    let _ = writeln!(
        md,
        "| requests/s | p50 ms | p99 ms | max ms | requests | non-202 |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    let _ = writeln!(
        md,
        "| {rps:.0} | {p50:.2} | {p99:.2} | {max:.1} | {n} | {errors} |"
    );
    if rps < 5000.0 || p99 >= 10.0 {
        let _ = writeln!(
            md,
            "\n**Target missed.** The rate is bounded by durable commits, not by HTTP, JSON or signature work: redb commits one write transaction at a time and fsyncs each. Before its 202 an intake commits twice (the ticket with its request claim and audit event, then the new execution, local/stack/src/runner.rs `LocalWorkflow::start`), and the run it starts commits again in the background for each step it takes before parking at the customer's decision (Diagnose, Propose and the notify that parks the decision: the ticket saves and the execution after each advance), all through the same single writer. So each ticket costs several fsyncs on this shared disk, and the 202 waits in the writer's queue behind other tickets' background commits. What would meet it: group commit (one transaction, one fsync, for the writes of all requests waiting at that moment), and persisting a run's background advances in batches."
        );
    }
    r.sections.insert(5, md);
    Ok(())
}

/// One AWS JSON-protocol request to moto (moto does not check signatures; the credential scope
/// names the service).
pub async fn aws_json(
    endpoint: &str,
    service: &str,
    target: &str,
    body: &Value,
) -> Result<Value, String> {
    let hostport = endpoint.trim_start_matches("http://");
    let stream = TcpStream::connect(hostport)
        .await
        .map_err(|e| format!("moto: {e}"))?;
    let (read, mut write) = stream.into_split();
    let body = body.to_string();
    let date = jiff::Timestamp::now().strftime("%Y%m%d").to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: {target}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=bench/{date}/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    write
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("moto: {e}"))?;
    let mut response = String::new();
    BufReader::new(read)
        .read_to_string(&mut response)
        .await
        .map_err(|e| format!("moto: {e}"))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!(
            "moto {target}: {} {body}",
            head.lines().next().unwrap_or_default()
        ));
    }
    Ok(serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The tables (keys and indexes as functions/service/src/store/dynamo/tables.rs), the four
/// department queues and the state machine the functions' environment names.
pub async fn seed(endpoint: &str) -> Result<(), String> {
    let s = |n: &str| json!({"AttributeName": n, "AttributeType": "S"});
    let index = |name: &str, hash: &str, range: &str| {
        json!({"IndexName": name, "KeySchema": [{"AttributeName": hash, "KeyType": "HASH"},
            {"AttributeName": range, "KeyType": "RANGE"}], "Projection": {"ProjectionType": "ALL"}})
    };
    let tickets = json!({"TableName": "aftersales-tickets", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [s("pk"), s("sk"), s("customer_id"), s("created_key"), s("open_key"), s("due_key"), s("order_id")],
        "GlobalSecondaryIndexes": [index("by_customer", "customer_id", "created_key"),
            index("open_by_due", "open_key", "due_key"), index("by_order", "order_id", "created_key")]});
    let ledger = json!({"TableName": "aftersales-ledger", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [s("pk"), s("customer_id"), s("order_id"), s("refund_key")],
        "GlobalSecondaryIndexes": [index("refunds_by_customer", "customer_id", "refund_key"),
            index("refunds_by_order", "order_id", "refund_key")]});
    for table in [tickets, ledger] {
        aws_json(
            endpoint,
            "dynamodb",
            "DynamoDB_20120810.CreateTable",
            &table,
        )
        .await?;
    }
    for q in ["quality", "logistics", "warehouse", "service"] {
        aws_json(
            endpoint,
            "sqs",
            "AmazonSQS.CreateQueue",
            &json!({"QueueName": format!("aftersales-{q}")}),
        )
        .await?;
    }
    let definition =
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}).to_string();
    aws_json(
        endpoint,
        "states",
        "AWSStepFunctions.CreateStateMachine",
        &json!({"name": "aftersales",
        "definition": definition, "roleArn": "arn:aws:iam::123456789012:role/bench"}),
    )
    .await?;
    Ok(())
}
