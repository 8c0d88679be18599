//! `tandem-bench`: parses flags, runs the plan, prints the table, writes JSON and SVG.

use std::process::ExitCode;

use clap::Parser;
use tandem_bench::cli::Cli;
use tandem_bench::report::Figures;
use tandem_bench::{runner, svg, table};

fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if cli.command == tandem_bench::cli::Command::Broker {
        return broker(&cli);
    }
    if cli.command == tandem_bench::cli::Command::Ratelimit {
        return ratelimit(&cli);
    }
    let mut plan = runner::plan(&cli)?;
    plan.idle_child_exe = std::env::current_exe().ok();
    if cli.command == tandem_bench::cli::Command::IdleChild {
        let out = cli
            .common
            .json
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("idle-child needs --json"))?;
        runner::idle_child(&plan, out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let report = runner::execute(&plan, cli.common.no_progress)?;
    print!("{}", table::render(&report));
    if let Some(path) = &cli.common.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
        println!("json: {}", path.display());
    }
    if let Some(path) = &cli.common.svg {
        svg::write(&report, path)?;
        println!("svg: {}", path.display());
    }
    let corrupt = report.runs.iter().any(|r| match &r.figures {
        Figures::Throughput(t) => t.corrupt_streams > 0,
        _ => false,
    });
    if corrupt {
        eprintln!("integrity check FAILED: relayed bytes differ from the bytes sent");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `tandem-bench ratelimit`: its own report (schema `tandem-bench-ratelimit/1`).
fn ratelimit(cli: &Cli) -> anyhow::Result<ExitCode> {
    use tandem_bench::workload::ratelimit::{RateLimitSettings, render, run};
    let report = run(&RateLimitSettings::from_cli(cli));
    print!("{}", render(&report));
    if let Some(path) = &cli.common.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
        println!("json: {}", path.display());
    }
    let failed = report
        .rows
        .iter()
        .any(|r| r.error.is_some() || r.within == Some(false));
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `tandem-bench broker`: its own report (schema `tandem-bench-broker/1`).
fn broker(cli: &Cli) -> anyhow::Result<ExitCode> {
    use tandem_bench::workload::broker::{BrokerSettings, phases, report};
    let settings = BrokerSettings::from_cli(cli)?;
    let r = phases::run(&settings)?;
    print!("{}", report::render(&r));
    if let Some(path) = &cli.common.json {
        std::fs::write(path, serde_json::to_vec_pretty(&r)?)?;
        println!("json: {}", path.display());
    }
    if let Some(path) = &cli.common.svg {
        report::write_svg(&r, path)?;
        println!("svg: {}", path.display());
    }
    Ok(if r.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
