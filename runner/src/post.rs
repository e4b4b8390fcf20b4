//! After the work: the writing of the nightly report ([`publish`]). The
//! renderers of [`crate::report`] make the text; this module decides where
//! it goes.

use crate::cache::write_atomic;
use crate::error::{Context, Result};
use crate::nightly::RunReport;
use crate::report::{self, html, junit, kcidb};
use std::path::{Path, PathBuf};

/// Writes repro.sh ([`report::repro_sh`]) into the directory of every
/// failing run of `r`; the paths written.
pub fn write_repro(r: &RunReport) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for c in r.rec.cells.iter().filter(|c| c.outcome.is_failure()) {
        let dir = crate::results::create_dir_inside(&r.dir, Path::new(&c.id()))?;
        let path = dir.join("repro.sh");
        write_atomic(&path, report::repro_sh(&r.rec, c).as_bytes())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).context(|| format!("chmod {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Writes the nightly report of `reports` into `out`: summary.md,
/// report.html, junit.xml, kcidb.json and nightly.json.
pub fn write_all(reports: &[RunReport], out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).context(|| format!("creating {}", out.display()))?;
    // Where each run is, seen from `out` (report.html links its console logs).
    let run_dirs: Vec<PathBuf> =
        reports.iter().map(|r| relative(&r.dir.join("run.json"), out).parent().map(Path::to_path_buf).unwrap_or_default()).collect();
    let w = |name: &str, bytes: &[u8]| write_atomic(&out.join(name), bytes);
    w("summary.md", report::nightly_summary_md(reports).as_bytes())?;
    w("report.html", html::render(reports, &run_dirs).as_bytes())?;
    w("junit.xml", junit::render(reports)?.as_bytes())?;
    w("kcidb.json", &serde_json::to_vec_pretty(&kcidb::render(reports)).unwrap())?;
    w("nightly.json", report::nightly_json(reports).as_bytes())
}

/// Writes every output of `reports` (repro.sh in each failing run, the
/// report into `out`, else into each RUN_DIR/report) and prints the
/// headline and where the reports went.
pub fn publish(reports: &[RunReport], out: Option<&Path>) -> Result<()> {
    for r in reports {
        write_repro(r)?;
    }
    match out {
        Some(out) => write_all(reports, out)?,
        None => {
            for r in reports {
                write_all(std::slice::from_ref(r), &crate::results::create_dir_inside(&r.dir, Path::new("report"))?)?;
            }
        }
    }
    println!("{}", report::headline(reports));
    for r in reports {
        let dir = out.map(Path::to_path_buf).unwrap_or_else(|| r.dir.join("report"));
        println!("  {} ({}): {}", r.rec.scenario, r.rec.run_id, dir.join("report.html").display());
    }
    Ok(())
}

/// `path` relative to the directory `from` (both made absolute), so links
/// keep working when the results folder is uploaded as an artifact.
pub fn relative(path: &Path, from: &Path) -> PathBuf {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| std::env::current_dir().unwrap_or_default().join(p));
    let (p, f) = (abs(path.parent().unwrap_or(path)).join(path.file_name().unwrap_or_default()), abs(from));
    let pc: Vec<_> = p.components().collect();
    let fc: Vec<_> = f.components().collect();
    let common = pc.iter().zip(&fc).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..fc.len() {
        out.push("..");
    }
    for c in &pc[common..] {
        out.push(c);
    }
    out
}
