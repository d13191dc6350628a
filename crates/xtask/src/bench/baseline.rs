//! The apiserver's own cost, beside the run: the same objects applied the same way into a
//! namespace no operator serves, before the operator starts, then deleted. What that takes
//! (wall time, CPU of the apiserver, etcd and the client) is the part of a convergence that no
//! operator can save.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

use super::world::{Bed, Kind};
use super::{APPLY_PARALLEL, cpu_delta, cpu_of, round2};

/// Creating the objects alone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Baseline {
    /// Objects applied.
    pub objects: usize,
    /// First apply sent → last apply answered.
    pub wall_s: f64,
    /// CPU seconds by process while applying.
    pub cpu_s: BTreeMap<String, f64>,
}

/// Applies `objects` into `<namespace>-alone` with `processes` watched, then deletes them.
pub fn measure(
    bed: &Bed,
    objects: &[(Kind, String, Value)],
    processes: &[(String, u32)],
) -> anyhow::Result<Baseline> {
    let namespace = format!("{}-alone", bed.namespace);
    bed.rt.block_on(bed.create_namespace(&namespace))?;
    eprintln!(
        "Baseline: applying {} objects into {namespace}, which no operator serves",
        objects.len()
    );
    let cpu0 = cpu_of(processes);
    let started = Instant::now();
    bed.rt
        .block_on(bed.apply_all_in(&namespace, objects.to_vec(), APPLY_PARALLEL))
        .context("the baseline apply failed")?;
    let wall_s = started.elapsed().as_secs_f64();
    let cpu1 = cpu_of(processes);
    for kind in [Kind::Connection, Kind::Agent] {
        bed.rt.block_on(bed.delete_all_in(&namespace, kind))?;
    }
    Ok(Baseline {
        objects: objects.len(),
        wall_s: round2(wall_s),
        cpu_s: cpu_delta(&cpu0, &cpu1),
    })
}

impl Baseline {
    /// CPU seconds of every process together.
    pub fn cpu_total(&self) -> f64 {
        round2(self.cpu_s.values().sum())
    }
}
