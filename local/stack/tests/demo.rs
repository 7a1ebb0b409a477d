//! `aftersales-local demo` as a process in a temporary directory: every bundled sample reaches
//! its expected final status, and the summary shows each ticket's path, resolution, refund,
//! notifications and department feedback.

use std::process::Stdio;
use std::time::Duration;

use aftersales_local::demo;

const BIN: &str = env!("CARGO_BIN_EXE_aftersales-local");

#[tokio::test]
async fn the_demo_takes_every_sample_to_its_expected_end_and_prints_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo-data");
    let run = tokio::process::Command::new(BIN)
        .args(["demo", "--data-dir"])
        .arg(&data)
        .env_remove("AFTERSALES_WEBHOOK_SECRET")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the demo finishes within 4 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");

    let samples = demo::samples().unwrap();
    assert!(samples.len() >= 8);
    assert!(
        stdout.contains(&format!(
            "{0}/{0} tickets reached their expected status.",
            samples.len()
        )),
        "{stdout}"
    );
    for sample in &samples {
        assert!(stdout.contains(&sample.title), "{}: {stdout}", sample.name);
        assert!(
            stdout.contains(&format!(
                "(expected {}, {}: ok)",
                sample.expect.status, sample.expect.outcome
            )),
            "{}: {stdout}",
            sample.name
        );
    }
    assert!(!stdout.contains("UNEXPECTED"), "{stdout}");
    for shown in [
        "ExecuteRefund",
        "AwaitReturnParcel",
        "ArrangeExchange",
        "ArrangeRepair",
        "SendParts",
        "NotifyRejected",
        "RequestEvidence",
        "ReviewByAgent",
        "FollowUp",
        "HTTP 202, then 200",
        "Feedback messages per department",
    ] {
        assert!(stdout.contains(shown), "{shown} in:\n{stdout}");
    }
    for department in ["quality", "logistics", "warehouse", "service"] {
        assert!(
            !stdout.contains(&format!("{department} 0")),
            "{department} got feedback: {stdout}"
        );
    }

    // The data stays readable for the operator commands.
    let listed = std::process::Command::new(BIN)
        .args(["runs", "list", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(listed.lines().count(), 1 + samples.len(), "{listed}");
    assert!(!listed.contains("RUNNING"), "{listed}");
}
