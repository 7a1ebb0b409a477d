//! A moto server (the AWS API emulator) for tests that use the real AWS SDK clients.
//!
//! `scripts/moto.sh` installs moto into `.tools/moto-venv`; [`shared`] starts
//! `moto_server -H 127.0.0.1 -p <free port>` once per test binary and waits until it answers.
//! A missing install fails the test with the command to run: it never skips.
//!
//! The server is stopped when the test binary exits, however it exits: moto runs under a small
//! shell guard that kills it as soon as our end of its stdin pipe closes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use std::sync::Arc;

use aws_types::SdkConfig;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector,
    http_client_fn,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;

/// How long moto may take to answer after it was spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Moto settings for these tests: run state machines for real (so task tokens are checked and
/// executions finish), and never try Docker for Lambda.
const MOTO_CONFIG: &str =
    r#"{"stepfunctions":{"execute_state_machine":true},"lambda":{"use_docker":false}}"#;

/// Why moto could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error("moto server not installed: run scripts/moto.sh (looked for {0})")]
    NotInstalled(PathBuf),
    #[error("cannot find the repository root (scripts/moto.sh) above {0}")]
    NoRepositoryRoot(PathBuf),
    #[error("cannot start moto: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("moto did not answer on {endpoint} within {seconds} s; its log:\n{log}")]
    NotAnswering {
        endpoint: String,
        seconds: u64,
        log: String,
    },
    #[error("moto refused {path}: {status_line}")]
    Refused { path: String, status_line: String },
}

/// A running moto server; dropping it stops the server.
#[derive(Debug)]
pub struct MotoServer {
    addr: SocketAddr,
    endpoint: String,
    guard: Mutex<Option<(Child, ChildStdin)>>,
}

/// The moto server shared by every test in this binary, started on first use and configured
/// for this crate's tests.
///
/// # Panics
/// When moto is not installed or does not start, with a message saying what to do.
pub fn shared() -> &'static MotoServer {
    static SERVER: OnceLock<Result<MotoServer, String>> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        let server = MotoServer::start().map_err(|e| e.to_string())?;
        server
            .post("/moto-api/config", MOTO_CONFIG)
            .map_err(|e| e.to_string())?;
        Ok(server)
    });
    match server {
        Ok(server) => server,
        Err(message) => panic!("{message}"),
    }
}

/// The repository root: the nearest directory above this crate holding `scripts/moto.sh`.
pub fn repository_root() -> Result<PathBuf, MotoError> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .find(|dir| dir.join("scripts").join("moto.sh").is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| MotoError::NoRepositoryRoot(manifest_dir.to_path_buf()))
}

impl MotoServer {
    /// Starts a new moto server on a free loopback port and waits until it answers.
    pub fn start() -> Result<MotoServer, MotoError> {
        let binary = repository_root()?
            .join(".tools")
            .join("moto-venv")
            .join("bin")
            .join("moto_server");
        if !binary.is_file() {
            return Err(MotoError::NotInstalled(binary));
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::env::temp_dir().join(format!("aftersales-moto-{port}.log"));
        // fd 3 keeps our pipe for the watcher: background jobs get /dev/null as stdin otherwise.
        let script = r#"
            exec 3<&0
            "$0" -H 127.0.0.1 -p "$1" </dev/null >"$2" 2>&1 &
            moto=$!
            ( read -r _ <&3; kill "$moto" 2>/dev/null ) &
            wait "$moto"
        "#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&binary)
            .arg(port.to_string())
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take().ok_or_else(|| {
            MotoError::Spawn(std::io::Error::other("the guard shell has no stdin"))
        })?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = MotoServer {
            addr,
            endpoint: format!("http://{addr}"),
            guard: Mutex::new(Some((child, stdin))),
        };

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if matches!(server.get("/moto-api/"), Ok(status) if status.contains(" 200")) {
                return Ok(server);
            }
            if Instant::now() > deadline || server.exited() {
                return Err(MotoError::NotAnswering {
                    endpoint: server.endpoint.clone(),
                    seconds: STARTUP_TIMEOUT.as_secs(),
                    log: std::fs::read_to_string(&log).unwrap_or_default(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An SDK configuration that talks to this server in us-east-1 with static test credentials,
    /// built as the functions build theirs from Lambda's environment
    /// ([`crate::runtime::AwsEnvironment`]).
    pub async fn sdk_config(&self) -> SdkConfig {
        super::aws_environment(&self.endpoint).sdk_config()
    }

    /// Like [`MotoServer::sdk_config`], but every client built from it sends its requests to
    /// moto one at a time, process-wide (see [`one_at_a_time`]).
    pub async fn serialised_sdk_config(&self) -> SdkConfig {
        self.sdk_config()
            .await
            .into_builder()
            .http_client(one_at_a_time())
            .build()
    }

    /// POSTs a JSON body to the moto API (e.g. `/moto-api/config`).
    pub fn post(&self, path: &str, json: &str) -> Result<(), MotoError> {
        let request = format!(
            "POST {path} HTTP/1.0\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
            self.addr,
            json.len()
        );
        let status_line = self.exchange(&request)?;
        if status_line.contains(" 200") || status_line.contains(" 201") {
            Ok(())
        } else {
            Err(MotoError::Refused {
                path: path.to_owned(),
                status_line,
            })
        }
    }

    fn get(&self, path: &str) -> Result<String, MotoError> {
        self.exchange(&format!(
            "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.addr
        ))
    }

    /// Sends one HTTP/1.0 request and returns the response's status line.
    fn exchange(&self, request: &str) -> Result<String, MotoError> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(request.as_bytes())?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let text = String::from_utf8_lossy(&response);
        Ok(text.lines().next().unwrap_or_default().to_owned())
    }

    fn exited(&self) -> bool {
        let mut guard = self.guard.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some((child, _)) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let mut guard = self.guard.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((mut child, stdin)) = guard.take() {
            drop(stdin); // the watcher reads EOF and kills moto
            let _ = child.wait();
        }
    }
}

/// A plain-HTTP client (moto listens on loopback without TLS) that lets one request at a time
/// reach moto, across every client of this process that uses it.
///
/// Moto applies neither `TransactWriteItems` nor `StartExecution` atomically across its request
/// threads: it checks each condition and writes item by item, and undoes a cancelled transaction
/// by restoring a table snapshot taken when it began, which also erases writes that other
/// requests made meanwhile. AWS serialises conflicting requests; so tests of concurrent callers
/// send moto one request at a time. The races under test stay: the callers still interleave
/// between requests, read stale state and lose conditional writes.
pub fn one_at_a_time() -> SharedHttpClient {
    static TURN: OnceLock<Arc<tokio::sync::Mutex<()>>> = OnceLock::new();
    let inner = aws_smithy_http_client::Builder::new().build_http();
    http_client_fn(move |settings, components| {
        SharedHttpConnector::new(OneAtATime {
            inner: inner.http_connector(settings, components),
            turn: Arc::clone(TURN.get_or_init(Arc::default)),
        })
    })
}

#[derive(Debug)]
struct OneAtATime {
    inner: SharedHttpConnector,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl HttpConnector for OneAtATime {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let turn = Arc::clone(&self.turn);
        HttpConnectorFuture::new(async move {
            let _turn = turn.lock_owned().await;
            inner.call(request).await
        })
    }
}
