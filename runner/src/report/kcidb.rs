//! kcidb.json: the runs as KCIDB v5 I/O objects — one checkout per run, one
//! build per variant (the kernel kregress built), one test per cell run —
//! so a KernelCI dashboard can ingest them (`kcidb-submit`). Statuses map
//! one to one (kregress's outcomes are KCIDB's); throughput goes into
//! `number {value, unit}`. IDs are `kregress:`-prefixed, as KCIDB requires
//! each origin to prefix its own.

use crate::nightly::RunReport;
use serde_json::{json, Value};

pub(crate) const ORIGIN: &str = "kregress";
pub(crate) const VERSION: (u64, u64) = (5, 3);

/// KCIDB path components are dot-separated: keep dots out of the parts.
fn part(s: &str) -> String {
    s.replace('.', "_")
}

pub(crate) fn render(reports: &[RunReport]) -> Value {
    let (mut checkouts, mut builds, mut tests) = (Vec::new(), Vec::new(), Vec::new());
    for r in reports {
        let checkout_id = format!("{ORIGIN}:{}", r.rec.run_id);
        let mut checkout = json!({
            "id": checkout_id, "origin": ORIGIN, "tree_name": r.rec.scenario,
            "start_time": r.rec.started,
            "misc": {"scenario_file": r.rec.scenario_file, "baseline": r.baseline.as_ref().map(|b| &b.run_id)},
        });
        // One checkout per run; a single commit is named when every variant has the same.
        let commits: Vec<&str> = r.rec.kernels.values().map(|k| k.commit.as_str()).collect();
        if let Some(c) = commits.first().filter(|c| commits.iter().all(|x| x == *c) && c.len() == 40) {
            checkout["git_commit_hash"] = json!(c);
        }
        checkouts.push(checkout);
        let mut variants: Vec<&str> = Vec::new();
        for c in &r.rec.cells {
            if !variants.contains(&c.variant.as_str()) {
                variants.push(&c.variant);
            }
        }
        for v in &variants {
            let k = r.rec.kernels.get(*v);
            // A variant whose cells are all ERROR "kernel build failed" did not build.
            let built = k.is_some() || r.rec.cells.iter().any(|c| c.variant == *v && c.title.as_deref() != Some("kernel build failed"));
            let mut b = json!({
                "id": format!("{checkout_id}:{v}"), "origin": ORIGIN, "checkout_id": checkout_id,
                "architecture": "x86_64", "config_name": v, "status": if built { "PASS" } else { "FAIL" },
                "misc": {"variant": v},
            });
            if let Some(k) = k {
                b["misc"]["config_sha256"] = json!(k.config_sha256);
                b["misc"]["kernel_key"] = json!(k.key);
            }
            builds.push(b);
        }
        for c in &r.rec.cells {
            let path = ["kregress", r.rec.scenario.as_str(), &c.backend, &c.fs, &c.mapping, &c.workload].map(part).join(".");
            let mut t = json!({
                "id": format!("{checkout_id}:{}", c.key().id()), "origin": ORIGIN,
                "build_id": format!("{checkout_id}:{}", c.variant),
                "path": path,
                "status": c.outcome.as_str(), "duration": c.seconds,
                "environment": {"comment": format!("QEMU, pmem backend {}, run {}", c.backend, c.run)},
                "misc": {"run": c.run, "kind": c.kind, "problems": c.problems, "timing": c.timing, "metrics": c.metrics,
                         "time_base": if c.timing == crate::scenario::Timing::Icount { "virtual (icount: guest time = instructions executed)" } else { "host wall clock" }},
            });
            if let Some(title) = &c.title {
                t["comment"] = json!(title);
            }
            // KCIDB has one number per test: the first metric (fast GUP for the
            // dio workloads); every metric is in misc.
            if let Some((k, v)) = c.metrics.iter().next() {
                t["number"] = json!({"value": v, "unit": c.timing.unit(crate::results::metric_unit(k))});
            }
            tests.push(t);
        }
    }
    json!({"version": {"major": VERSION.0, "minor": VERSION.1}, "checkouts": checkouts, "builds": builds, "tests": tests})
}
