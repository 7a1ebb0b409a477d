//! Workflow runs in the durable store: each definition is stored once and runs name it by
//! fingerprint; a run keeps its definition when the workflow changes; runs stored whole by
//! earlier versions still read; a definition gone missing is a clear error.

use std::path::{Path, PathBuf};

use aftersales_local::inspect;
use aftersales_local::runner::load_machine;
use aftersales_local::store::{FILE_NAME, LocalStore, Reader};
use aftersales_service::store::StoreError;
use asl::{Execution, StartOptions, StateMachine, VirtualClock};
use jiff::Timestamp;
use redb::{Database, ReadableDatabase, TableDefinition};
use serde_json::json;

const EXECUTIONS: TableDefinition<&str, &str> = TableDefinition::new("executions");
const DEFINITIONS: TableDefinition<&str, &str> = TableDefinition::new("definitions");

fn the_workflow() -> StateMachine {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workflows/after-sales.asl.json");
    load_machine(&path).unwrap()
}

/// A small workflow that parks on a Wait state for `seconds`.
fn holding(seconds: u32) -> StateMachine {
    StateMachine::from_json_str(&format!(
        r#"{{"StartAt":"Hold","States":{{"Hold":{{"Type":"Wait","Seconds":{seconds},"End":true}}}}}}"#
    ))
    .unwrap()
}

fn start(machine: &StateMachine, ticket: &str) -> Execution {
    let options = StartOptions {
        name: Some(ticket.to_owned()),
        ..StartOptions::default()
    };
    let at: Timestamp = "2026-11-20T09:30:00Z".parse().unwrap();
    Execution::start(
        machine,
        json!({"ticket_id": ticket}),
        options,
        &VirtualClock::new(at),
    )
}

/// The raw rows of a table of the closed store file in `dir`.
fn raw_rows(dir: &Path, table: TableDefinition<&str, &str>) -> Vec<(String, String)> {
    let db = Database::open(dir.join(FILE_NAME)).unwrap();
    let tx = db.begin_read().unwrap();
    let Ok(table) = tx.open_table(table) else {
        return Vec::new();
    };
    table
        .range::<&str>(..)
        .unwrap()
        .map(|row| {
            let (k, v) = row.unwrap();
            (k.value().to_owned(), v.value().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn many_runs_share_one_stored_definition_and_their_rows_do_not_copy_it() {
    let dir = tempfile::tempdir().unwrap();
    let machine = the_workflow();
    let definition_size = machine.to_json().len();
    assert!(
        definition_size > 10_000,
        "the real workflow: {definition_size} bytes"
    );
    {
        let store = LocalStore::open(dir.path()).unwrap();
        for n in 0..20 {
            let ticket = format!("T-{n:02}");
            assert!(
                store
                    .insert_run(&ticket, &start(&machine, &ticket))
                    .await
                    .unwrap()
            );
        }
        // a second insert of a run is refused and changes nothing
        let other = start(&holding(5), "T-00");
        assert!(!store.insert_run("T-00", &other).await.unwrap());
        assert_eq!(
            store
                .run("T-00")
                .await
                .unwrap()
                .unwrap()
                .machine()
                .fingerprint(),
            machine.fingerprint()
        );
    }
    let definitions = raw_rows(dir.path(), DEFINITIONS);
    assert_eq!(definitions.len(), 1, "one definition for 20 runs");
    assert_eq!(definitions[0].0, machine.fingerprint());
    assert_eq!(definitions[0].1, machine.to_json());
    let rows = raw_rows(dir.path(), EXECUTIONS);
    assert_eq!(rows.len(), 20);
    for (ticket, row) in &rows {
        assert!(
            row.contains(machine.fingerprint()),
            "{ticket} names its definition"
        );
        assert!(
            !row.contains("\"States\""),
            "{ticket} copies the definition: {row}"
        );
        assert!(
            row.len() * 5 < definition_size,
            "{ticket}'s row is {} bytes beside a {definition_size}-byte definition",
            row.len()
        );
    }
    // read back, in this process and from another (read-only), the runs are whole again
    let reader = Reader::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.definitions().unwrap(), [machine.fingerprint()]);
    let runs = reader.all_runs().unwrap();
    assert_eq!(runs.len(), 20);
    for (ticket, run) in runs {
        assert_eq!(run.info().name, ticket);
        assert_eq!(
            run.to_json().unwrap(),
            start(&machine, &ticket).to_json().unwrap()
        );
    }
}

#[tokio::test]
async fn a_run_keeps_the_definition_it_started_with_when_the_workflow_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (before, after) = (holding(60), holding(90));
    assert_ne!(before.fingerprint(), after.fingerprint());
    {
        let store = LocalStore::open(dir.path()).unwrap();
        store
            .put_run("T-old", &start(&before, "T-old"))
            .await
            .unwrap();
    }
    {
        // the next start of the stack runs the changed workflow
        let store = LocalStore::open(dir.path()).unwrap();
        store
            .put_run("T-new", &start(&after, "T-new"))
            .await
            .unwrap();
        // the old run, advanced and stored again, still names its own definition
        let old = store.run("T-old").await.unwrap().unwrap();
        store.put_run("T-old", &old).await.unwrap();
    }
    let reader = Reader::open_read_only(dir.path()).unwrap();
    let mut stored = reader.definitions().unwrap();
    stored.sort();
    let mut expected = vec![
        before.fingerprint().to_owned(),
        after.fingerprint().to_owned(),
    ];
    expected.sort();
    assert_eq!(stored, expected);
    let old = reader.run("T-old").unwrap().unwrap();
    let new = reader.run("T-new").unwrap().unwrap();
    assert_eq!(old.machine().fingerprint(), before.fingerprint());
    assert_eq!(new.machine().fingerprint(), after.fingerprint());
    assert_eq!(old.machine().source()["States"]["Hold"]["Seconds"], 60);
    assert_eq!(new.machine().source()["States"]["Hold"]["Seconds"], 90);
}

/// Rewrites the closed store in `dir` as the versions before the definitions table wrote it:
/// each run whole (its definition inside), and no definitions table.
fn as_written_by_earlier_versions(dir: &Path, runs: &[(String, Execution)]) {
    let db = Database::open(dir.join(FILE_NAME)).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut table = tx.open_table(EXECUTIONS).unwrap();
        for (ticket, run) in runs {
            table
                .insert(ticket.as_str(), run.to_json().unwrap().as_str())
                .unwrap();
        }
    }
    assert!(tx.delete_table(DEFINITIONS).unwrap());
    tx.commit().unwrap();
}

#[tokio::test]
async fn runs_stored_whole_by_earlier_versions_still_read_and_are_stored_by_reference_next_time() {
    let dir = tempfile::tempdir().unwrap();
    let machine = the_workflow();
    let runs: Vec<(String, Execution)> = ["T-1", "T-2"]
        .iter()
        .map(|t| (t.to_string(), start(&machine, t)))
        .collect();
    drop(LocalStore::open(dir.path()).unwrap());
    as_written_by_earlier_versions(dir.path(), &runs);
    assert!(
        raw_rows(dir.path(), EXECUTIONS)
            .iter()
            .all(|(_, row)| row.contains("\"States\""))
    );

    // read-only, as `runs list` reads beside a running stack: no definitions table at all
    let reader = Reader::open_read_only(dir.path()).unwrap();
    assert!(reader.definitions().unwrap().is_empty());
    let listed = inspect::runs_list(&reader).unwrap();
    assert!(listed.contains("T-1") && listed.contains("T-2"), "{listed}");
    drop(reader);

    {
        let store = LocalStore::open(dir.path()).unwrap();
        let running = store.running_runs().await.unwrap();
        assert_eq!(running.len(), 2);
        let t1 = store.run("T-1").await.unwrap().unwrap();
        assert_eq!(t1.to_json().unwrap(), runs[0].1.to_json().unwrap());
        store.put_run("T-1", &t1).await.unwrap();
    }
    let rows = raw_rows(dir.path(), EXECUTIONS);
    let row = |t: &str| rows.iter().find(|(k, _)| k == t).unwrap().1.clone();
    assert!(
        !row("T-1").contains("\"States\""),
        "stored again by reference"
    );
    assert!(row("T-2").contains("\"States\""), "left as it was");
    assert_eq!(
        raw_rows(dir.path(), DEFINITIONS),
        [(machine.fingerprint().to_owned(), machine.to_json())]
    );
}

#[tokio::test]
async fn a_definition_missing_from_the_store_is_an_error_naming_the_run_and_the_definition() {
    let dir = tempfile::tempdir().unwrap();
    let machine = holding(60);
    {
        let store = LocalStore::open(dir.path()).unwrap();
        store
            .put_run("T-lost", &start(&machine, "T-lost"))
            .await
            .unwrap();
    }
    {
        let db = Database::open(dir.path().join(FILE_NAME)).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(DEFINITIONS)
            .unwrap()
            .remove(machine.fingerprint())
            .unwrap();
        tx.commit().unwrap();
    }
    let store = LocalStore::open(dir.path()).unwrap();
    match store.run("T-lost").await {
        Err(StoreError::Corrupt(why)) => {
            assert!(why.contains("T-lost"), "{why}");
            assert!(why.contains(machine.fingerprint()), "{why}");
            assert!(why.contains("not in the store"), "{why}");
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|r| r.is_some())),
    }
    let listed = inspect::runs_list(&store.reader()).unwrap_err();
    assert!(listed.contains("T-lost"), "{listed}");
}
