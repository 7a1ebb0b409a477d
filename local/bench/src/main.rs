//! `aftersales-bench [--quick] [--parts 3,4,1,2,5,6] [--bin-dir DIR] [--out FILE]`: measures,
//! side by side, the function binaries' init time and peak memory under a stand-in Lambda
//! Runtime API, the cost per ticket of the workflow's main paths, the interpreter's speed
//! against aws-local-stepfunctions, the local stack's intake throughput and the functions'
//! package sizes (arm64 zips), then writes docs/performance.md. `scripts/bench.sh` builds what
//! it needs and runs it.

mod cost;
mod intake;
mod interp;
mod paths;
mod report;
mod runtime_api;
mod size;

use std::path::PathBuf;
use std::time::Instant;

/// What the run was asked to do.
pub struct Options {
    pub quick: bool,
    pub parts: Vec<u8>,
    pub root: PathBuf,
    /// The function binaries and bench-hello.
    pub bin_dir: PathBuf,
    /// aftersales-local: the driver's own directory (both are built with the `local` profile).
    pub local_bin_dir: PathBuf,
    pub out: PathBuf,
    pub work: PathBuf,
}

fn usage() -> ! {
    eprintln!(
        "usage: aftersales-bench [--quick] [--parts 3,4,1,2,5,6] [--bin-dir DIR] [--root DIR] [--out FILE]"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."));
    let own_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_default();
    let mut o = Options {
        quick: false,
        parts: vec![3, 4, 1, 2, 5, 6],
        bin_dir: own_dir.clone(),
        local_bin_dir: own_dir,
        out: root.join("docs").join("performance.md"),
        work: std::env::temp_dir().join(format!("aftersales-bench-{}", std::process::id())),
        root,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--parts" => {
                let v = args.next().unwrap_or_else(|| usage());
                o.parts = v.split(',').filter_map(|p| p.trim().parse().ok()).collect();
            }
            "--bin-dir" => o.bin_dir = args.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            "--root" => o.root = args.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            "--out" => o.out = args.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    o
}

#[tokio::main]
async fn main() {
    let o = options();
    if let Err(e) = std::fs::create_dir_all(&o.work) {
        eprintln!("error: cannot create {}: {e}", o.work.display());
        std::process::exit(1);
    }
    let started = Instant::now();
    let mut r = report::Report::new(&o);
    for part in o.parts.clone() {
        let t = Instant::now();
        eprintln!("== part {part} ==");
        let result = match part {
            1 => runtime_api::init_times(&o, &mut r).await,
            2 => runtime_api::memory(&o, &mut r).await,
            3 => report::cost(&o, &mut r).await,
            4 => report::interpreter(&o, &mut r).await,
            5 => intake::throughput(&o, &mut r).await,
            6 => size::package_size(&o, &mut r).await,
            _ => Err(format!("unknown part {part}")),
        };
        if let Err(e) = result {
            eprintln!("part {part} failed: {e}");
            r.failed(part, &e);
        }
        eprintln!("   ({:.1} s)", t.elapsed().as_secs_f64());
    }
    r.total_seconds = started.elapsed().as_secs_f64();
    for line in &r.summary {
        println!("{line}");
    }
    match std::fs::write(&o.out, r.markdown(&o)) {
        Ok(()) => println!("wrote {}", o.out.display()),
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", o.out.display());
            std::process::exit(1);
        }
    }
    let _ = std::fs::remove_dir_all(&o.work);
    if !r.failures.is_empty() {
        std::process::exit(1);
    }
}
