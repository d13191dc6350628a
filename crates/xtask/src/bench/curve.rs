//! `cargo xtask bench --curve 100,1000,5000`: one run per N, each on a stack of its own, then the
//! cost per object side by side, and how each grows against the smallest N.

use std::collections::BTreeSet;

use anyhow::Context as _;

use super::{Args, Check, Report, Table, check_invariants, measure, round2};

/// Per-object cost within this factor of the smallest N's counts as linear growth.
const LINEAR: f64 = 1.25;

/// Runs the bench at each N of `args.curve` and prints every report, then the curve.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut sizes = args.curve.clone();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.contains(&0) {
        anyhow::bail!("--curve sizes must be at least 1");
    }
    let mut reports = Vec::new();
    for n in sizes {
        eprintln!("==> curve: N = {n}");
        let run = Args {
            n,
            curve: Vec::new(),
            json: None,
            ..args.clone()
        };
        let report = measure(&run).with_context(|| format!("the run at N = {n} failed"))?;
        print!("{}", report.table());
        reports.push(report);
    }
    print!("{}", table(&reports));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&reports)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("failed to write {}", path.display()))?;
        eprintln!("Wrote {}", path.display());
    }
    let all: Vec<Check> = reports
        .iter()
        .flat_map(|r| {
            r.invariants.iter().map(|c| Check {
                name: format!("{} (N = {})", c.name, r.n),
                ..c.clone()
            })
        })
        .collect();
    check_invariants(&all)
}

/// CPU seconds per object of one process (all processes for `None`), in milliseconds.
fn cpu_ms_per_object(r: &Report, process: Option<&str>) -> f64 {
    let cpu = &r.resources.cpu_convergence_s;
    let seconds: f64 = match process {
        Some(p) => cpu.get(p).copied().unwrap_or(0.0),
        None => cpu.values().sum(),
    };
    round2(seconds * 1000.0 / (2 * r.n) as f64)
}

/// How a per-object figure at this N compares with the smallest N's.
fn growth(value: f64, first: f64) -> String {
    if first <= 0.0 {
        return "-".to_owned();
    }
    let ratio = value / first;
    if ratio <= LINEAR {
        format!("x{ratio:.2} (linear)")
    } else {
        format!("x{ratio:.2} (grows faster than N)")
    }
}

/// The curve: one section per measure, one row per N.
fn table(reports: &[Report]) -> String {
    let mut t = Table::default();
    let Some(first) = reports.first() else {
        return String::new();
    };
    t.section(&format!(
        "Cost curve (GatewayConnections + PromptAgents per N, emulator latency {} ms, resync {} s, probe interval {} s, credentials {}); \"x\" compares a per-object figure with N = {}",
        first.latency_ms,
        first.resync_s,
        first.probe_interval_s,
        first.probes.credentials.name(),
        first.n
    ));
    let processes: BTreeSet<&str> = reports
        .iter()
        .flat_map(|r| r.resources.cpu_convergence_s.keys().map(String::as_str))
        .collect();
    for r in reports {
        let per_object_wall = r.convergence.wall_s * 1000.0 / (2 * r.n) as f64;
        let first_wall = first.convergence.wall_s * 1000.0 / (2 * first.n) as f64;
        let label = format!("N = {}", r.n);
        t.row(
            &format!("{label}: apply -> all Ready"),
            &format!(
                "{:.1} s, {:.2} ms per object {}; the apiserver alone {:.1} s",
                r.convergence.wall_s,
                per_object_wall,
                growth(per_object_wall, first_wall),
                r.baseline.wall_s
            ),
        );
        let all = cpu_ms_per_object(r, None);
        let by_process: Vec<String> = processes
            .iter()
            .map(|p| format!("{p} {:.2}", cpu_ms_per_object(r, Some(p))))
            .collect();
        t.row(
            &format!("{label}: CPU ms per object"),
            &format!(
                "{all:.2} {} = {}",
                growth(all, cpu_ms_per_object(first, None)),
                by_process.join(", ")
            ),
        );
        let alone = r.baseline.cpu_total() * 1000.0 / r.baseline.objects.max(1) as f64;
        t.row(
            &format!("{label}: apiserver alone, CPU ms per object"),
            &format!("{alone:.2} (every process of the stack)"),
        );
        t.row(
            &format!("{label}: writes / reconciles per object"),
            &format!(
                "{:.2} (audit log) / {:.2}",
                r.apiserver.converging.per_object_mean, r.apiserver.reconciles_per_object_mean
            ),
        );
        let kib_per_object = r.resources.operator_steady_rss_mib * 1024.0 / (2 * r.n + 1) as f64;
        t.row(
            &format!("{label}: operator RSS"),
            &format!(
                "peak {:.1} MiB, steady {:.1} MiB ({kib_per_object:.1} KiB per object)",
                r.resources.operator_peak_rss_mib, r.resources.operator_steady_rss_mib
            ),
        );
        if let Some(restart) = &r.restart {
            t.row(
                &format!("{label}: operator restart"),
                &format!(
                    "steady after {:.1} s, {} Foundry writes, {:.2} Foundry reads per object",
                    restart.steady_s, restart.foundry_writes, restart.foundry_reads_per_object
                ),
            );
        }
    }
    t.finish()
}
