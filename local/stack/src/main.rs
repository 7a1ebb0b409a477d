//! `aftersales-local`: see the crate docs and `local/stack/README.md`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use aftersales_local::serve::{self, Options};
use aftersales_local::store::Reader;
use aftersales_local::{demo, inspect, process};
use clap::{Parser, Subcommand};

/// mimalloc, as in the benchmark driver: the interpreter and the handlers allocate many small,
/// short-lived JSON values per state and request, and glibc's malloc/free took about half of
/// the interpreter benchmark's samples (docs/performance.md). `serve` and `demo` turn
/// transparent huge pages off first ([`workflow_runtime`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "aftersales-local",
    version,
    about = "The after-sales system on one machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API on 127.0.0.1 and run the workflows.
    Serve {
        #[arg(long, default_value_t = 8080)]
        port: u16,
        #[arg(long, default_value = "./.aftersales")]
        data_dir: PathBuf,
        /// Make workflow waits N times faster.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        time_scale: u32,
        /// The merchant policy (TOML, docs/policy.md); the documented default otherwise.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The workflow definition (default: this source tree's workflows/after-sales.asl.json).
        #[arg(long)]
        workflow: Option<PathBuf>,
    },
    /// Run the bundled sample requests through every main path and print the summary.
    Demo {
        #[arg(long, default_value = "./.aftersales-demo")]
        data_dir: PathBuf,
        /// Make workflow waits N times faster (waits for people stay minutes long).
        #[arg(long, default_value_t = demo::DEFAULT_TIME_SCALE,
              value_parser = clap::value_parser!(u32).range(1..))]
        time_scale: u32,
    },
    /// Workflow runs, as the Step Functions console shows them.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// The department feedback queues.
    Queues {
        #[command(subcommand)]
        command: QueuesCommand,
    },
    /// The notification outbox.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
}

#[derive(Subcommand)]
enum RunsCommand {
    /// Every run: ticket id, status, current state, started, updated.
    List {
        #[arg(long, default_value = "./.aftersales")]
        data_dir: PathBuf,
    },
    /// How many runs are in each status and current state (cheap: reads no whole run).
    Count {
        #[arg(long, default_value = "./.aftersales")]
        data_dir: PathBuf,
    },
    /// One run's states, input/output (personal data masked), errors and wait, plus the
    /// ticket's audit timeline.
    Show {
        ticket_id: String,
        #[arg(long, default_value = "./.aftersales")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum QueuesCommand {
    /// The messages of one department's queue (quality, logistics, warehouse, service).
    Show {
        department: String,
        #[arg(long, default_value = "./.aftersales")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// The customer notifications the local stack recorded instead of sending.
    Show {
        #[arg(long, default_value = "./.aftersales")]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli.command) {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth reporting.
            let _ = stdout.write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn read(dir: &std::path::Path) -> Result<Reader, String> {
    Reader::open_read_only(dir).map_err(|e| e.to_string())
}

/// The runtime of a command that runs workflows (`serve`, `demo`), in a process with
/// transparent huge pages off.
fn workflow_runtime() -> Result<tokio::runtime::Runtime, String> {
    process::without_transparent_huge_pages();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn run(command: Command) -> Result<String, String> {
    match command {
        Command::Serve {
            port,
            data_dir,
            time_scale,
            policy,
            workflow,
        } => {
            workflow_runtime()?.block_on(serve::serve(Options {
                port,
                data_dir,
                time_scale,
                policy,
                workflow: workflow.unwrap_or_else(serve::default_workflow),
            }))?;
            Ok(String::new())
        }
        Command::Demo {
            data_dir,
            time_scale,
        } => workflow_runtime()?.block_on(demo::run(data_dir, time_scale)),
        Command::Runs {
            command: RunsCommand::List { data_dir },
        } => inspect::runs_list(&read(&data_dir)?),
        Command::Runs {
            command: RunsCommand::Count { data_dir },
        } => inspect::runs_count(&read(&data_dir)?),
        Command::Runs {
            command:
                RunsCommand::Show {
                    ticket_id,
                    data_dir,
                },
        } => inspect::runs_show(&read(&data_dir)?, &ticket_id),
        Command::Queues {
            command:
                QueuesCommand::Show {
                    department,
                    data_dir,
                },
        } => inspect::queue(&read(&data_dir)?, &department),
        Command::Outbox {
            command: OutboxCommand::Show { data_dir },
        } => inspect::outbox(&read(&data_dir)?),
    }
}
