//! Every workload, briefly, against the in-process engine (both drivers, splice and copy
//! paths) and direct TCP: every byte verified, and the report holds every field. No speed is
//! asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;
use tandem_bench::cli::Cli;
use tandem_bench::report::{Figures, Report};
use tandem_bench::{runner, svg, table};

fn run(args: &[&str]) -> Report {
    let mut argv = vec!["tandem-bench"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("flags parse");
    let mut plan = runner::plan(&cli).expect("plan");
    // The in-process idle runs go to a fresh `tandem-bench idle-child` each, as `main` does.
    plan.idle_child_exe = Some(env!("CARGO_BIN_EXE_tandem-bench").into());
    runner::execute(&plan, true).expect("run")
}

#[test]
fn compare_in_process_checks_every_byte_and_reports_every_field() {
    let systems =
        "direct,tandem-uring-splice,tandem-uring-copy,tandem-epoll-splice,tandem-epoll-copy";
    let r = run(&[
        "compare",
        "--systems",
        systems,
        "--rounds",
        "1",
        "--bytes",
        "4194304",
        "--multi-pairs",
        "4",
        "--multi-bytes",
        "1048576",
        "--threads",
        "4",
        "--ops",
        "200",
        "--setup-seconds",
        "5",
        "--source-addrs",
        "4",
        "--rate",
        "2000",
        "--messages",
        "200",
        "--idle-pairs",
        "50",
    ]);
    let failed: Vec<_> = r
        .runs
        .iter()
        .filter(|x| matches!(x.figures, Figures::Failed { .. }))
        .collect();
    assert!(failed.is_empty(), "failed runs: {failed:#?}");
    // 5 scenarios × 5 systems × 1 round.
    assert_eq!(r.runs.len(), 25);
    for run in &r.runs {
        match &run.figures {
            Figures::Throughput(t) => {
                assert_eq!(t.corrupt_streams, 0, "{run:?}");
                assert_eq!(t.verified_streams, 2 * t.pairs, "{run:?}");
                assert!(t.gbit_per_s > 0.0);
                assert_eq!(t.relay_cpu.is_some(), run.system.is_relay(), "{run:?}");
                if run.system.is_tandem() {
                    let path = t.path.as_deref().unwrap();
                    let copy = run.system.as_str().ends_with("copy");
                    assert_eq!(path.contains(" 0 pipe leases"), copy, "{path}");
                    assert_eq!(path.contains(" 0 copy fallbacks"), !copy, "{path}");
                }
            }
            Figures::SetupRate(s) => {
                assert_eq!((s.ops_ok, s.errors), (200, 0), "{run:?}");
                assert!(s.concurrency.achieved > 0.0 && s.concurrency.offered == 4.0);
            }
            Figures::Latency(l) => {
                assert_eq!(l.corrected.count, 200);
                assert!(l.corrected.p99_us >= l.corrected.p50_us);
                assert!(l.corrected.max_us >= l.uncorrected.max_us);
            }
            Figures::Idle(i) => {
                assert_eq!(i.pairs_held, 50, "{run:?}");
                assert!(i.after.fds >= i.before.fds + 100, "{run:?}");
            }
            Figures::Failed { .. } => unreachable!(),
        }
    }
    // The summary has a row per scenario and system, with ratios to direct.
    assert_eq!(r.summary.len(), 25);
    assert!(
        r.summary
            .iter()
            .filter(|s| s.system != "direct" && s.scenario != "idle")
            .all(|s| s.vs_direct.is_some())
    );
    assert!(!r.targets.is_empty());

    let v = serde_json::to_value(&r).unwrap();
    for key in [
        "schema",
        "environment",
        "settings",
        "runs",
        "skipped",
        "summary",
        "targets",
    ] {
        assert!(v.get(key).is_some(), "report lacks {key}");
    }
    assert_eq!(v["settings"]["scenarios"].as_array().unwrap().len(), 5);
    let text = table::render(&r);
    assert!(
        text.contains("throughput-1") && text.contains("tandem-epoll-copy"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plot.svg");
    svg::write(&r, &path).unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().contains("<svg"));
}

#[test]
fn a_remote_target_needs_admin_credentials_and_tandem_proxy_needs_a_target() {
    let cli =
        Cli::try_parse_from(["tandem-bench", "throughput", "--target", "127.0.0.1:7000"]).unwrap();
    let err = runner::plan(&cli).unwrap_err().to_string();
    assert!(err.contains("--admin-cert"), "{err}");
    let cli =
        Cli::try_parse_from(["tandem-bench", "throughput", "--systems", "tandem-proxy"]).unwrap();
    let err = runner::plan(&cli).unwrap_err().to_string();
    assert!(err.contains("--target ADDR"), "{err}");
}
