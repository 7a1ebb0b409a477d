//! `aftersales-local serve`: open the store, resume parked runs, listen; on SIGTERM or Ctrl-C
//! stop accepting, finish the requests and advances in flight, and close the store cleanly.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aftersales_domain::Policy;
use aftersales_service::clock::SystemClock;
use aftersales_service::handlers::accept;
use aftersales_service::handlers::respond;
use aftersales_service::handlers::steps::notify::SurveyLink;
use aftersales_service::signature::WebhookSecret;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::data_dir::{self, SecretOrigin};
use crate::http::{Handlers, router};
use crate::runner::{IntakeStore, LocalWorkflow, NotifySettings, Runner, load_machine};
use crate::store::LocalStore;

/// How long a stop waits for requests and advances in flight.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// The return address in `return_requested` messages unless `RETURN_ADDRESS` names one.
pub const DEFAULT_RETURN_ADDRESS: &str = "Returns desk, 1 Example Road, Shanghai 200000";
/// The survey page in `survey` messages unless `SURVEY_URL` names one.
pub const DEFAULT_SURVEY_URL: &str = "https://shop.example/after-sales/survey/{ticket_id}";

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

/// What a running stack is started with (`serve` and `demo`).
pub struct Settings {
    /// 0: any free port.
    pub port: u16,
    pub data_dir: PathBuf,
    pub time_scale: u32,
    pub policy: Policy,
    pub workflow: PathBuf,
}

/// The HTTP API and the workflow runner, running on the current tokio runtime.
pub struct Stack {
    pub port: u16,
    pub store: LocalStore,
    pub secrets: Vec<WebhookSecret>,
    pub secret_origin: SecretOrigin,
    /// Runs found parked in the store and resumed.
    pub resumed: usize,
    runner: Arc<Runner>,
    stop_http: oneshot::Sender<()>,
    server: JoinHandle<Result<(), String>>,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Opens the data directory and the store, resumes parked runs and starts listening.
pub async fn start(settings: Settings) -> Result<Stack, String> {
    data_dir::prepare(&settings.data_dir)?;
    let policy = Arc::new(settings.policy);
    let (secrets, secret_origin) = data_dir::webhook_secrets(&settings.data_dir)?;
    let store = LocalStore::open(&settings.data_dir).map_err(|e| e.to_string())?;
    let machine = load_machine(&settings.workflow);
    if let Err(why) = &machine {
        eprintln!("warning: {why}; requests are stored but their runs cannot start");
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", settings.port))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                format!("port {} on 127.0.0.1 is already in use", settings.port)
            }
            _ => format!("cannot listen on 127.0.0.1:{}: {e}", settings.port),
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?
        .port();

    let notify_settings = NotifySettings {
        return_address: Some(env_or("RETURN_ADDRESS", DEFAULT_RETURN_ADDRESS)),
        survey_link: Some(SurveyLink {
            template: env_or("SURVEY_URL", DEFAULT_SURVEY_URL),
            secret: secrets.first().cloned(),
        }),
    };
    let runner = Runner::new(
        store.clone(),
        machine,
        policy.clone(),
        settings.time_scale,
        notify_settings,
    );
    let resumed = runner.recover().await?;
    let workflow = Arc::new(LocalWorkflow(runner.clone()));
    let tickets: Arc<dyn aftersales_service::store::TicketStore> = Arc::new(store.clone());
    let intake: Arc<dyn aftersales_service::store::TicketStore> =
        Arc::new(IntakeStore::new(store.clone(), runner.clone()));
    let handlers = Arc::new(Handlers {
        accept: accept::Deps {
            store: intake,
            workflow: workflow.clone(),
            clock: Arc::new(SystemClock),
            policy,
            secrets: secrets.clone(),
        },
        respond: respond::Deps {
            store: tickets,
            workflow,
            clock: Arc::new(SystemClock),
            secrets: secrets.clone(),
        },
    });
    let (stop_http, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router(handlers))
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .map_err(|e| format!("the server stopped: {e}"))
    });
    Ok(Stack {
        port,
        store,
        secrets,
        secret_origin,
        resumed,
        runner,
        stop_http,
        server,
    })
}

impl Stack {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops accepting connections, lets the requests in flight finish, then lets the runs
    /// being advanced store their state; parked runs stay in the store for the next start.
    /// Every write was committed with fsync when it was answered; the store file is closed
    /// cleanly once the last handle is dropped.
    pub async fn stop(self) -> Result<(), String> {
        let _ = self.stop_http.send(());
        let served = match tokio::time::timeout(STOP_GRACE, self.server).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(format!("the server task failed: {e}")),
            Err(_) => Err(format!(
                "requests still in flight after {} s",
                STOP_GRACE.as_secs()
            )),
        };
        if !self.runner.stop(STOP_GRACE).await {
            eprintln!(
                "warning: runs still advancing after {} s; they resume from their last stored state",
                STOP_GRACE.as_secs()
            );
        }
        served
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

/// Runs until SIGTERM or Ctrl-C, then stops gracefully.
pub async fn serve(options: Options) -> Result<(), String> {
    let stack = start(Settings {
        port: options.port,
        data_dir: options.data_dir.clone(),
        time_scale: options.time_scale,
        policy: load_policy(options.policy.as_ref())?,
        workflow: options.workflow,
    })
    .await?;
    match &stack.secret_origin {
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
    if stack.resumed > 0 {
        eprintln!("resumed {} run(s) from the store", stack.resumed);
    }
    println!("listening on {}", stack.url());
    let signal = stop_signal().await;
    eprintln!("{signal}: stopping (finishing requests and runs in flight)");
    stack.stop().await?;
    eprintln!("stopped; the store is closed");
    Ok(())
}
