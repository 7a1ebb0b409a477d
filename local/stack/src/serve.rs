//! `aftersales-local serve`: open the store, resume parked runs, listen.

use std::path::PathBuf;
use std::sync::Arc;

use aftersales_domain::Policy;
use aftersales_service::clock::SystemClock;
use aftersales_service::handlers::{accept, respond};

use crate::data_dir::{self, SecretOrigin};
use crate::http::{Handlers, router};
use crate::runner::{LocalWorkflow, Runner, load_machine};
use crate::store::LocalStore;

pub struct Options {
    pub port: u16,
    pub data_dir: PathBuf,
    pub time_scale: u32,
    pub policy: Option<PathBuf>,
    pub workflow: PathBuf,
}

/// The workflow file in this source tree, used unless `--workflow` names another.
pub fn default_workflow() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../workflows/after-sales.asl.json"
    ))
}

pub fn load_policy(path: Option<&PathBuf>) -> Result<Policy, String> {
    let Some(path) = path else {
        return Ok(Policy::default_policy());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("the policy {} cannot be read: {e}", path.display()))?;
    Policy::from_toml_str(&text)
        .map_err(|e| format!("the policy {} is invalid: {e}", path.display()))
}

/// Runs until the process is stopped; returns only on a start-up error.
pub async fn serve(options: Options) -> Result<(), String> {
    data_dir::prepare(&options.data_dir)?;
    let policy = Arc::new(load_policy(options.policy.as_ref())?);
    let (secrets, origin) = data_dir::webhook_secrets(&options.data_dir)?;
    let store = LocalStore::open(&options.data_dir).map_err(|e| e.to_string())?;
    let machine = load_machine(&options.workflow);
    if let Err(why) = &machine {
        eprintln!("warning: {why}; requests are stored but their runs cannot start");
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                format!("port {} on 127.0.0.1 is already in use", options.port)
            }
            _ => format!("cannot listen on 127.0.0.1:{}: {e}", options.port),
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?
        .port();

    let runner = Runner::new(store.clone(), machine, policy.clone(), options.time_scale);
    let resumed = runner.recover().await?;
    let workflow = Arc::new(LocalWorkflow(runner));
    let tickets: Arc<dyn aftersales_service::store::TicketStore> = Arc::new(store);
    let handlers = Arc::new(Handlers {
        accept: accept::Deps {
            store: tickets.clone(),
            workflow: workflow.clone(),
            clock: Arc::new(SystemClock),
            policy,
            secrets: secrets.clone(),
        },
        respond: respond::Deps {
            store: tickets,
            workflow,
            clock: Arc::new(SystemClock),
            secrets,
        },
    });
    match origin {
        SecretOrigin::Generated(value) => eprintln!(
            "webhook secret (generated, kept in {}): {value}",
            options.data_dir.join(data_dir::SECRET_FILE).display()
        ),
        SecretOrigin::File => eprintln!(
            "webhook secret: from {}",
            options.data_dir.join(data_dir::SECRET_FILE).display()
        ),
        SecretOrigin::Environment => {
            eprintln!("webhook secret: from {}", data_dir::SECRET_ENV);
        }
    }
    if resumed > 0 {
        eprintln!("resumed {resumed} run(s) from the store");
    }
    println!("listening on http://127.0.0.1:{port}");
    axum::serve(listener, router(handlers))
        .await
        .map_err(|e| format!("the server stopped: {e}"))
}
