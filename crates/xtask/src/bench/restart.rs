//! `cargo xtask bench --restart`: the operator is stopped with every object Ready and idle, and
//! a new process takes its place. What that costs, counted from the outside: Foundry calls
//! (emulator request log; a write is an invariant broken), the new process's requests to the
//! apiserver (audit log; a write to our objects is an invariant broken), and how long until it
//! has reconciled every object once (its metrics).

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use foundry_gateway_testbed::operator::{OperatorOptions, RunningOperator};
use serde::Serialize;

use super::audit::{self, AuditLog, Writes};
use super::world::{Bed, Kind, by_operation, is_write, request_object};
use super::{Check, SETTLE, by_kind, metrics, mib, procfs, round2, round3};

/// Target: steady again this soon after the new process starts.
pub const TARGET_STEADY: Duration = Duration::from_secs(30);

/// What the restart cost.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Restart {
    /// New process started → each GatewayConnection and PromptAgent reconciled once.
    pub steady_s: f64,
    /// Foundry calls by operation, start → steady + settle.
    pub foundry_calls: BTreeMap<String, u64>,
    pub foundry_writes: u64,
    /// Foundry reads about one object, per object (connections and agents).
    pub foundry_reads_per_object: f64,
    /// Foundry reads of lists (per project, not per object).
    pub foundry_list_reads: u64,
    /// The new process's writes to our objects (audit log).
    pub apiserver_writes: Writes,
    /// Its reads, by verb and resource (audit log).
    pub apiserver_reads: BTreeMap<String, u64>,
    /// Its reads per object (GETs of our objects and their Secrets and ConfigMaps, not lists).
    pub apiserver_gets_per_object: f64,
    /// RSS of the new process once steady, and its CPU until then.
    pub rss_mib: f64,
    pub cpu_s: f64,
}

/// Stops `old`, starts an operator with `options` and measures until it is steady. Returns the
/// figures and the new operator.
pub fn measure(
    bed: &Bed,
    old: &mut RunningOperator,
    options: OperatorOptions,
    audit_log: &AuditLog,
    operator_user: &str,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<(Restart, RunningOperator)> {
    old.stop().context("the operator did not stop")?;
    let seq0 = bed.last_request_seq(0)?;
    let audit0 = audit_log.offset();
    eprintln!("Restarting the operator with {} objects Ready", 2 * n);
    let started = Instant::now();
    let operator = bed.start_operator(options)?;
    let pid = operator.pid().context("the new operator has no pid")?;
    let reconciled = || {
        let m = metrics(&operator);
        let by = by_kind(&m, "foundry_gateway_reconciles_total");
        [Kind::Connection, Kind::Agent]
            .iter()
            .all(|k| by.get(k.name()).copied().unwrap_or(0.0) >= n as f64)
    };
    while !reconciled() {
        if started.elapsed() > timeout {
            bail!("the restarted operator did not reconcile every object within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(100));
    }
    let steady_s = started.elapsed().as_secs_f64();
    let sample = procfs::sample(pid).unwrap_or_default();
    eprintln!("Steady again after {steady_s:.1}s");
    thread::sleep(SETTLE);
    let requests = bed.requests_since(seq0)?;
    let audit1 = audit_log.offset();
    let seen = audit_log.requests(operator_user, audit0, audit1)?;
    let objects: BTreeSet<(String, String)> = (0..n)
        .flat_map(|i| {
            [
                (
                    Kind::Connection.resource().plural,
                    super::world::connection_name(i),
                ),
                (Kind::Agent.resource().plural, super::world::agent_name(i)),
            ]
        })
        .collect();
    let object_reads = requests
        .iter()
        .filter(|r| !is_write(r) && request_object(r).is_some())
        .count();
    let list_reads = requests
        .iter()
        .filter(|r| !is_write(r) && request_object(r).is_none())
        .count();
    // The Lease is the process's own, not an object's.
    let gets = seen
        .iter()
        .filter(|r| r.verb == "get" && !r.name.is_empty() && r.resource != "leases")
        .count();
    let restart = Restart {
        steady_s: round2(steady_s),
        foundry_calls: by_operation(&requests),
        foundry_writes: requests.iter().filter(|r| is_write(r)).count() as u64,
        foundry_reads_per_object: round3(object_reads as f64 / (2 * n) as f64),
        foundry_list_reads: list_reads as u64,
        apiserver_writes: Writes::count(&seen, &bed.namespace, &objects),
        apiserver_reads: audit::reads(&seen),
        apiserver_gets_per_object: round3(gets as f64 / (2 * n) as f64),
        rss_mib: mib(sample.rss_kib),
        cpu_s: round2(sample.cpu_seconds),
    };
    Ok((restart, operator))
}

impl Restart {
    /// The invariants a restart must keep: no Foundry write, no write to our objects.
    pub fn invariants(&self) -> Vec<Check> {
        vec![
            Check::invariant(
                "Foundry writes after an operator restart",
                "0",
                self.foundry_writes.to_string(),
                self.foundry_writes == 0,
            ),
            Check::invariant(
                "operator writes to our objects after a restart (audit log)",
                "0",
                format!(
                    "{} {:?}",
                    self.apiserver_writes.total(),
                    self.apiserver_writes.by_request
                ),
                self.apiserver_writes.total() == 0,
            ),
        ]
    }

    /// The targets: steady within [`TARGET_STEADY`], at most one Foundry read per object.
    pub fn targets(&self) -> Vec<Check> {
        vec![
            Check::target(
                "steady again after an operator restart",
                "< 30 s",
                format!("{:.1} s", self.steady_s),
                Some(self.steady_s < TARGET_STEADY.as_secs_f64()),
            ),
            Check::target(
                "Foundry reads per object after an operator restart",
                "<= 1",
                format!(
                    "{:.3} (+ {} list reads)",
                    self.foundry_reads_per_object, self.foundry_list_reads
                ),
                Some(self.foundry_reads_per_object <= 1.0),
            ),
        ]
    }

    /// Rows of the report.
    pub fn rows(&self) -> Vec<(String, String)> {
        vec![
            (
                "new process -> every object reconciled once".to_owned(),
                format!(
                    "{:.2} s (target < {} s)",
                    self.steady_s,
                    TARGET_STEADY.as_secs()
                ),
            ),
            (
                "Foundry calls by operation".to_owned(),
                format!("{:?}", self.foundry_calls),
            ),
            ("Foundry writes".to_owned(), self.foundry_writes.to_string()),
            (
                "Foundry reads per object".to_owned(),
                format!(
                    "{:.3} (+ {} list reads)",
                    self.foundry_reads_per_object, self.foundry_list_reads
                ),
            ),
            (
                "writes to our objects (audit log)".to_owned(),
                format!(
                    "{} {:?}",
                    self.apiserver_writes.total(),
                    self.apiserver_writes.by_request
                ),
            ),
            (
                "other writes (audit log)".to_owned(),
                format!("{:?}", self.apiserver_writes.other),
            ),
            (
                "apiserver reads (audit log)".to_owned(),
                format!(
                    "{:?}, {:.3} GETs per object",
                    self.apiserver_reads, self.apiserver_gets_per_object
                ),
            ),
            (
                "new process: RSS when steady, CPU until then".to_owned(),
                format!("{} MiB, {:.2} CPU-s", self.rss_mib, self.cpu_s),
            ),
        ]
    }
}
