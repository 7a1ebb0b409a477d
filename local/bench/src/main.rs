//! `aftersales-bench [--quick] [--parts 3,4,1,2,5,6] [--bin-dir DIR] [--root DIR] [--out FILE]`: measures,
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

const USAGE: &str = "usage: aftersales-bench [--quick] [--parts 3,4,1,2,5,6] [--bin-dir DIR] [--root DIR] [--out FILE]";

fn options() -> Options {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."));
    let own_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        std::process::exit(0)
    }
    match parse(args.into_iter(), root, own_dir) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            std::process::exit(2)
        }
    }
}

/// The options from the command line `args`, defaulting to this source tree (`root`) and the
/// driver's own directory. Paths are made absolute: the parts run tools in other directories
/// (node resolves the package against `root`), and `--out` defaults to `--root`'s docs.
fn parse(
    mut args: impl Iterator<Item = String>,
    root: PathBuf,
    own_dir: PathBuf,
) -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        parts: vec![3, 4, 1, 2, 5, 6],
        bin_dir: own_dir.clone(),
        local_bin_dir: own_dir,
        out: PathBuf::new(),
        work: std::env::temp_dir().join(format!("aftersales-bench-{}", std::process::id())),
        root,
    };
    let mut out = None;
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--quick" => o.quick = true,
            "--parts" => {
                let list = value()?;
                o.parts = list
                    .split(',')
                    .map(|part| match part.trim().parse::<u8>() {
                        Ok(n @ 1..=6) => Ok(n),
                        _ => Err(format!("--parts: no part {part:?} (the parts are 1 to 6)")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--bin-dir" => o.bin_dir = absolute("--bin-dir", value()?)?,
            "--root" => o.root = absolute("--root", value()?)?,
            "--out" => out = Some(absolute("--out", value()?)?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    o.out = out.unwrap_or_else(|| o.root.join("docs").join("performance.md"));
    Ok(o)
}

fn absolute(flag: &str, path: String) -> Result<PathBuf, String> {
    std::path::absolute(&path).map_err(|e| format!("{flag} {path}: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Options, String> {
        parse(
            args.iter().map(|a| a.to_string()),
            PathBuf::from("/src/tree"),
            PathBuf::from("/build/local"),
        )
    }

    #[test]
    fn relative_directories_become_absolute_and_out_follows_root() {
        let o = parsed(&["--root", "here", "--bin-dir", "bins", "--parts", "4, 5"]).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(o.root, cwd.join("here"));
        assert_eq!(o.bin_dir, cwd.join("bins"));
        assert_eq!(o.out, cwd.join("here/docs/performance.md"));
        assert_eq!(o.local_bin_dir, PathBuf::from("/build/local"));
        assert_eq!(o.parts, vec![4, 5]);
        assert!(!o.quick);

        let o = parsed(&["--quick", "--out", "/tmp/p.md"]).unwrap();
        assert!(o.quick);
        assert_eq!(o.root, PathBuf::from("/src/tree"));
        assert_eq!(o.out, PathBuf::from("/tmp/p.md"));
        assert_eq!(o.parts, vec![3, 4, 1, 2, 5, 6]);
    }

    #[test]
    fn a_bad_argument_is_an_error_naming_it() {
        let error = |args: &[&str]| parsed(args).err().unwrap();
        assert_eq!(
            error(&["--parts", "1,7"]),
            "--parts: no part \"7\" (the parts are 1 to 6)"
        );
        assert_eq!(
            error(&["--parts", "x"]),
            "--parts: no part \"x\" (the parts are 1 to 6)"
        );
        assert_eq!(error(&["--root"]), "--root needs a value");
        assert_eq!(error(&["--out", ""]), "--out needs a value");
        assert_eq!(error(&["--fast"]), "unknown argument \"--fast\"");
    }
}
