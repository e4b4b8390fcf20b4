//! `kregress merge`: one run made of the shards of a sharded run
//! (`kregress run --shard I/N`), structurally the same as the run of the
//! same cells unsharded — run.json with every cell in the scenario's order,
//! the cells' directories (hard links, or copies across filesystems; the
//! shards are never changed) — so that compare, report, nightly and bisect
//! read it unchanged. Shards are input from other machines: the ones that
//! are not parts of one partition of one selection are refused (exit 2,
//! naming what differs), as are overlapping or missing cells (missing ones
//! become MISS with `--partial`).

use crate::error::{bad_input, Context, Result};
use crate::outcome::Outcome;
use crate::results::{self, CellResult, MergeRecord, MergedShard, RunRecord, ShardRecord};
use crate::scenario::{self, Cell, Scenario};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A shard as read from its directory.
struct Shard {
    dir: PathBuf,
    rec: RunRecord,
    part: ShardRecord,
}

/// Reads the shards in `dirs`, checks they are the parts of one sharded run
/// and writes their merged run into `out` (default: a new run under
/// `results_root`). Returns the scenario and the merged run, for the
/// post-run path of `run`.
pub(crate) fn merge(dirs: &[PathBuf], out: Option<&Path>, results_root: &Path, partial: bool) -> Result<(Scenario, RunRecord)> {
    let shards = dirs.iter().map(|d| read_shard(d)).collect::<Result<Vec<_>>>()?;
    check_same(&shards)?;
    let first = &shards[0];
    let s = scenario::load(&first.rec.scenario_file)
        .map_err(|e| bad_input(format!("merge: the shards' scenario {}: {}", first.rec.scenario_file.display(), e.msg)))?;
    let sha = crate::cache::sha256_file(&s.file)?;
    if sha != first.part.scenario_sha256 || s.name != first.rec.scenario {
        return Err(bad_input(format!(
            "merge: {} is not the scenario the shards ran (scenario {}, sha256 {}): check out the same one",
            s.file.display(),
            first.rec.scenario,
            first.part.scenario_sha256
        )));
    }
    let cells = plan(&s, first)?;
    let (merged, missing) = place(&shards, &cells, partial)?;

    // The cells' directories, checked before anything is written.
    let sources: Vec<Option<PathBuf>> = cells
        .iter()
        .zip(&merged)
        .map(|((c, _), (_, from))| from.map(|(k, _)| cell_source(&shards[k].dir, &c.key().id())).transpose().map(Option::flatten))
        .collect::<Result<_>>()?;
    let (run_id, dir) = out_dir(out, results_root, &s.name)?;
    let mut kernels = BTreeMap::new();
    for sh in &shards {
        kernels.extend(sh.rec.kernels.clone());
    }
    let mut rec = RunRecord {
        run_id,
        scenario: s.name.clone(),
        scenario_file: first.rec.scenario_file.clone(),
        results_dir: dir.clone(),
        started: shards.iter().map(|sh| sh.rec.started.clone()).min().unwrap_or_default(),
        host: first.rec.host.clone(),
        kernels,
        only: first.rec.only.clone(),
        cells: vec![],
        shard: None,
        merged: Some(MergeRecord {
            group: first.part.group.clone(),
            count: first.part.count,
            shards: shards
                .iter()
                .map(|sh| MergedShard {
                    index: sh.part.index,
                    run_id: sh.rec.run_id.clone(),
                    dir: sh.dir.clone(),
                    host: sh.rec.host.clone(),
                })
                .collect(),
            missing,
        }),
    };
    let written = write_cells(&mut rec, &shards, &cells, merged, &sources);
    if let Err(e) = written {
        // Nothing half-merged is left: the directory is new or was empty.
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok((s, rec))
}

/// The merged run's cells into `rec` and its directory: each shard's cell
/// linked from `sources`, each missing one a MISS saying why; then run.json.
fn write_cells(rec: &mut RunRecord, shards: &[Shard], cells: &[(Cell, u32)], merged: Placed, sources: &[Option<PathBuf>]) -> Result<()> {
    let (dir, count) = (rec.results_dir.clone(), shards[0].part.count);
    for (((c, _), (owner, from)), src) in cells.iter().zip(merged).zip(sources) {
        let id = c.key().id();
        let cdir = results::create_dir_inside(&dir, Path::new(&id))?;
        let res = match from {
            Some((_, r)) => {
                if let Some(src) = src {
                    link_tree(src, &cdir)?;
                }
                let name = r.console.file_name().map_or("console.log".into(), PathBuf::from);
                CellResult { console: cdir.join(name), ..r.clone() }
            }
            None => {
                let why = match shards.iter().find(|sh| sh.part.index == owner) {
                    Some(sh) => format!("not in shard {owner}/{count} ({}): interrupted?", sh.dir.display()),
                    None => format!("shard {owner}/{count} missing from the merge"),
                };
                CellResult { title: Some(why), ..CellResult::new(c, Outcome::Miss, cdir.join("console.log")) }
            }
        };
        results::save_cell(&cdir, &res)?;
        rec.cells.push(res);
    }
    results::save(rec)
}

/// A shard's directory: a run of `kregress run --shard`.
fn read_shard(dir: &Path) -> Result<Shard> {
    if !dir.join("run.json").is_file() {
        return Err(bad_input(format!("merge: {}: not a run directory (no run.json)", dir.display())));
    }
    let mut rec = results::load(dir)?;
    rec.results_dir = dir.to_path_buf();
    let part = rec
        .shard
        .clone()
        .ok_or_else(|| bad_input(format!("merge: {}: run {} is not a shard (it ran without --shard)", dir.display(), rec.run_id)))?;
    if part.index == 0 || part.index > part.count {
        return Err(bad_input(format!("merge: {}: shard {}/{} is not a shard index", dir.display(), part.index, part.count)));
    }
    Ok(Shard { dir: dir.to_path_buf(), rec, part })
}

/// Every shard against the first: one scenario, one kregress, one group and
/// partition, the same kernel for a variant, and each shard once.
fn check_same(shards: &[Shard]) -> Result<()> {
    let a = &shards[0];
    for b in &shards[1..] {
        let (x, y) = (a.dir.display(), b.dir.display());
        let differ = |what: &str, u: &dyn std::fmt::Display, v: &dyn std::fmt::Display| {
            Err(bad_input(format!("merge: {x} and {y} differ in {what} ({u} vs {v}): not shards of one run")))
        };
        if a.rec.scenario != b.rec.scenario {
            return differ("scenario", &a.rec.scenario, &b.rec.scenario);
        }
        if a.part.scenario_sha256 != b.part.scenario_sha256 {
            return differ("the scenario file's sha256", &a.part.scenario_sha256, &b.part.scenario_sha256);
        }
        if a.part.kregress != b.part.kregress {
            return differ("kregress version", &a.part.kregress, &b.part.kregress);
        }
        if a.part.count != b.part.count {
            return differ("shard count", &a.part.count, &b.part.count);
        }
        if a.part.group != b.part.group {
            return differ("group", &a.part.group, &b.part.group);
        }
        if a.rec.only != b.rec.only || a.part.runs != b.part.runs {
            return differ("selection (--only, --runs)", &describe(&a.rec, &a.part), &describe(&b.rec, &b.part));
        }
        if a.part.plan != b.part.plan {
            return differ("partition (different --timings?)", &a.part.balance, &b.part.balance);
        }
        for (v, k) in &a.rec.kernels {
            if let Some(l) = b.rec.kernels.get(v).filter(|l| l.key != k.key) {
                return differ(&format!("variant {v}'s kernel key"), &k.key, &l.key);
            }
        }
    }
    for (i, a) in shards.iter().enumerate() {
        if let Some(b) = shards[i + 1..].iter().find(|b| b.part.index == a.part.index) {
            return Err(bad_input(format!(
                "merge: {} and {} are both shard {}/{} of group {}: give each shard once",
                a.dir.display(),
                b.dir.display(),
                a.part.index,
                a.part.count,
                a.part.group
            )));
        }
    }
    Ok(())
}

/// `--only X --runs N` as run.json records them, for a message.
fn describe(rec: &RunRecord, part: &ShardRecord) -> String {
    format!("--only {:?} --runs {:?}", serde_json::to_string(&rec.only).unwrap_or_default(), part.runs)
}

/// The selection the shards were cut from, each cell with the shard its boot went to.
fn plan(s: &Scenario, first: &Shard) -> Result<Vec<(Cell, u32)>> {
    let selection = s.cells(&first.rec.only, first.part.runs);
    let groups = crate::run::boot_groups(&selection.iter().collect::<Vec<_>>());
    if groups.len() != first.part.plan.len() {
        return Err(bad_input(format!(
            "merge: the scenario {} selects {} boots, the shards' partition has {}: not the scenario they ran",
            s.file.display(),
            groups.len(),
            first.part.plan.len()
        )));
    }
    let mut owner: BTreeMap<String, u32> = BTreeMap::new();
    for (g, &p) in groups.iter().zip(&first.part.plan) {
        for c in g {
            owner.insert(c.key().id(), p);
        }
    }
    Ok(selection.into_iter().map(|c| (owner[&c.key().id()], c)).map(|(p, c)| (c, p)).collect())
}

/// Per selected cell: the shard its boot was planned on, and the shard that has it with its result.
type Placed<'a> = Vec<(u32, Option<(usize, &'a CellResult)>)>;

/// Where each selected cell comes from ([`Placed`]), and the shards not given.
/// A cell in two shards, a shard's cell its partition gave another shard or
/// no shard, and (without `partial`) a cell no shard has are refused.
fn place<'a>(shards: &'a [Shard], cells: &[(Cell, u32)], partial: bool) -> Result<(Placed<'a>, Vec<u32>)> {
    let mut have: BTreeMap<String, (usize, &CellResult)> = BTreeMap::new();
    for (k, sh) in shards.iter().enumerate() {
        for r in &sh.rec.cells {
            let id = r.key().id();
            if let Some((j, _)) = have.insert(id.clone(), (k, r)) {
                return Err(bad_input(format!(
                    "merge: cell {id} is in both {} and {}: overlapping shards",
                    shards[j].dir.display(),
                    sh.dir.display()
                )));
            }
        }
    }
    let count = shards[0].part.count;
    let planned: BTreeMap<String, u32> = cells.iter().map(|(c, p)| (c.key().id(), *p)).collect();
    for (id, (k, _)) in &have {
        let sh = &shards[*k];
        match planned.get(id) {
            None => return Err(bad_input(format!("merge: {}: cell {id} is not in the scenario's selection", sh.dir.display()))),
            Some(&p) if p != sh.part.index => {
                return Err(bad_input(format!(
                    "merge: {}: cell {id} belongs to shard {p}/{count}, not to this shard {}/{count}: overlapping shards",
                    sh.dir.display(),
                    sh.part.index
                )))
            }
            _ => {}
        }
    }
    let missing: Vec<u32> = (1..=count).filter(|i| !shards.iter().any(|sh| sh.part.index == *i)).collect();
    let placed: Placed = cells.iter().map(|(c, p)| (*p, have.get(&c.key().id()).copied())).collect();
    let absent: Vec<&str> = placed.iter().zip(cells).filter(|(p, _)| p.1.is_none()).map(|(_, (c, _))| c.workload.name.as_str()).collect();
    if !partial && !absent.is_empty() {
        let lost = placed.iter().zip(cells).find(|(p, _)| p.1.is_none()).map(|(_, (c, p))| (c.key().id(), *p)).unwrap();
        let shards_missing =
            missing.iter().filter(|i| cells.iter().any(|(_, p)| p == *i)).map(|i| format!("{i}/{count}")).collect::<Vec<_>>();
        let what = if shards_missing.is_empty() {
            format!("its shard {}/{count} lacks it (interrupted?)", lost.1)
        } else {
            format!("shard(s) {} not given", shards_missing.join(", "))
        };
        return Err(bad_input(format!(
            "merge: {} cell(s) missing, e.g. {}: {what}; give every shard, or --partial to merge them as MISS",
            absent.len(),
            lost.0
        )));
    }
    Ok((placed, missing))
}

/// The merged run's directory and id: `out` (its name is the run id when it
/// is one, else a new id), which must not exist or be empty, or a new run
/// directory under `root`.
fn out_dir(out: Option<&Path>, root: &Path, scenario: &str) -> Result<(String, PathBuf)> {
    let Some(out) = out else { return results::new_run_dir(root, scenario) };
    if let Some(p) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(p).context(|| format!("creating {}", p.display()))?;
    }
    match std::fs::create_dir(out) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_none()) => {}
        Err(e) => return Err(bad_input(format!("merge --out {}: {e} (give a new or empty directory)", out.display()))),
    }
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let id = match results::check_run_id(name) {
        Ok(()) => name.to_string(),
        Err(_) => format!("{}-{scenario}", results::stamp()),
    };
    Ok((id, out.to_path_buf()))
}

/// The directory of the cell `id` in `shard`, if it has one (a cell that
/// never booted has none). Every directory from the shard's down to it must
/// be one, not a link out of the shard.
fn cell_source(shard: &Path, id: &str) -> Result<Option<PathBuf>> {
    let mut from = shard.to_path_buf();
    for part in Path::new(id).components() {
        from.push(part);
        match std::fs::symlink_metadata(&from) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(bad_input(format!(
                    "merge: {}: not a directory (a symbolic link?): a shard holds only its own files",
                    from.display()
                )))
            }
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(from))
}

/// Hard-links (copies across filesystems) every file below `from` into
/// `to`, directories made as needed. A symbolic link or anything but files
/// and directories is refused: a shard may come from another machine.
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    for e in walkdir::WalkDir::new(from).min_depth(1).max_depth(8).follow_links(false) {
        let e = e.map_err(|e| bad_input(format!("merge: {}: {e}", from.display())))?;
        let rel = e.path().strip_prefix(from).unwrap();
        let dst = to.join(rel);
        let t = e.file_type();
        if t.is_dir() {
            results::create_dir_inside(to, rel)?;
        } else if t.is_file() {
            if std::fs::hard_link(e.path(), &dst).is_err() {
                std::fs::copy(e.path(), &dst).context(|| format!("copying {} to {}", e.path().display(), dst.display()))?;
            }
        } else {
            return Err(bad_input(format!("merge: {}: not a file or a directory: a shard holds only its own files", e.path().display())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
