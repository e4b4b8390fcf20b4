//! Merges of fake shards (run.json and cell files written as `kregress run
//! --shard` writes them) of the default scenario: what merge reads is files.

use super::*;
use crate::results::KernelRecord;
use crate::scenario::Filter;

fn scenario_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/bio-release-devmap-wakeup.yaml")
}

/// Shard `index` of `count` of the default scenario, unsharded selection, in `root/shardI`:
/// every cell of its part PASS, with a console.log; `edit` changes the record before it is saved.
fn shard(root: &Path, index: u32, count: u32, edit: impl FnOnce(&mut RunRecord)) -> PathBuf {
    let s = scenario::load(&scenario_file()).unwrap();
    let cells = s.cells(&Filter::default(), None);
    let groups = crate::run::boot_groups(&cells.iter().collect::<Vec<_>>());
    let plan = crate::run::partition(&crate::run::expected_ms(&groups, None), count);
    let dir = root.join(format!("shard{index}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rec = RunRecord {
        run_id: format!("20261127-00000{index}-{}", s.name),
        scenario: s.name.clone(),
        scenario_file: s.file.clone(),
        results_dir: dir.clone(),
        started: format!("2026-11-27T00:00:0{index}Z"),
        host: Default::default(),
        kernels: s
            .variants
            .iter()
            .map(|v| (v.name.clone(), KernelRecord { key: format!("key-{}", v.name), ..Default::default() }))
            .collect(),
        only: Filter::default(),
        cells: vec![],
        shard: Some(ShardRecord {
            index,
            count,
            group: "g1".into(),
            scenario_sha256: crate::cache::sha256_file(&s.file).unwrap(),
            kregress: env!("CARGO_PKG_VERSION").into(),
            runs: None,
            balance: "count".into(),
            plan: plan.clone(),
        }),
        merged: None,
    };
    for (g, p) in groups.iter().zip(&plan) {
        for c in g.iter().filter(|_| *p == index) {
            let cdir = results::cell_dir(&dir, c);
            std::fs::create_dir_all(&cdir).unwrap();
            std::fs::write(cdir.join("console.log"), format!("console of {}\n", c.key().id())).unwrap();
            let r = CellResult::new(c, Outcome::Pass, cdir.join("console.log"));
            results::save_cell(&cdir, &r).unwrap();
            rec.cells.push(r);
        }
    }
    edit(&mut rec);
    results::save(&rec).unwrap();
    dir
}

/// Merging `dirs` is refused: exit 2, one line, containing `what`.
fn refused(dirs: &[PathBuf], partial: bool, what: &str) {
    let out = tempfile::tempdir().unwrap();
    let e = merge(dirs, None, out.path(), partial).map(|_| ()).unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.exit_code(), 2, "{msg}");
    assert!(!msg.contains('\n') && msg.contains(what), "want {what:?} in: {msg}");
    // Nothing written when refused.
    assert_eq!(std::fs::read_dir(out.path()).map(|d| d.count()).unwrap_or(0), 0, "{msg}");
}

#[test]
fn the_shards_make_the_unsharded_run() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (shard(d.path(), 1, 2, |_| {}), shard(d.path(), 2, 2, |_| {}));
    let before = std::fs::read(a.join("run.json")).unwrap();
    let (s, rec) = merge(&[b.clone(), a.clone()], Some(&d.path().join("merged")), d.path(), false).unwrap();
    let want: Vec<String> = s.cells(&Filter::default(), None).iter().map(|c| c.key().id()).collect();
    assert_eq!(rec.cells.iter().map(|c| c.key().id()).collect::<Vec<_>>(), want, "every cell, in the scenario's order");
    assert_eq!(rec.shard, None);
    let m = rec.merged.as_ref().unwrap();
    assert_eq!((m.count, m.shards.iter().map(|s| s.index).collect::<Vec<_>>(), m.missing.clone()), (2, vec![2, 1], vec![]));
    // Read back as any run; consoles point into the merged run, and are the shards' (linked).
    let back = results::load(&d.path().join("merged")).unwrap();
    assert_eq!(back.cells.len(), want.len());
    for c in &back.cells {
        assert!(c.console.starts_with(d.path().join("merged")), "{}", c.console.display());
        assert_eq!(std::fs::read_to_string(&c.console).unwrap(), format!("console of {}\n", c.key().id()));
        assert_eq!(results::load_cell(c.console.parent().unwrap()).unwrap().console, c.console);
    }
    // The shards are left as they were (result.json rewritten in the merge only).
    assert_eq!(std::fs::read(a.join("run.json")).unwrap(), before);
    let r = results::load_cell(&a.join(back.cells[0].key().id())).unwrap();
    assert!(r.console.starts_with(&a), "{}", r.console.display());
}

#[test]
fn an_empty_shard_merges() {
    // 4 boots on 6 shards: shards 5 and 6 hold no cell.
    let d = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (1..=6).map(|i| shard(d.path(), i, 6, |_| {})).collect();
    assert!(results::load(&dirs[5]).unwrap().cells.is_empty());
    let (_, rec) = merge(&dirs, None, d.path(), false).unwrap();
    assert_eq!(rec.cells.len(), 6);
}

fn sh(r: &mut RunRecord) -> &mut ShardRecord {
    r.shard.as_mut().unwrap()
}

#[test]
fn shards_of_different_runs_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let a = shard(d.path(), 1, 2, |_| {});
    let other = |name: &str, edit: fn(&mut RunRecord)| shard(&d.path().join(name), 2, 2, edit);
    refused(&[a.clone(), other("scenario", |r| r.scenario = "another".into())], false, "differ in scenario (");
    refused(&[a.clone(), other("sha", |r| sh(r).scenario_sha256 = "0".repeat(64))], false, "differ in the scenario file's sha256");
    refused(&[a.clone(), other("version", |r| sh(r).kregress = "0.0.9".into())], false, "differ in kregress version (");
    refused(&[a.clone(), other("group", |r| sh(r).group = "g2".into())], false, "differ in group (g1 vs g2)");
    refused(&[a.clone(), other("runs", |r| sh(r).runs = Some(2))], false, "differ in selection");
    refused(&[a.clone(), other("plan", |r| sh(r).plan.reverse())], false, "differ in partition");
    refused(
        &[a.clone(), other("kernel", |r| r.kernels.get_mut("fixed").unwrap().key = "other".into())],
        false,
        "variant fixed's kernel key",
    );
    let three = shard(&d.path().join("count"), 2, 3, |_| {});
    refused(&[a.clone(), three], false, "differ in shard count (2 vs 3)");
    refused(&[a.clone(), a.clone()], false, "are both shard 1/2 of group g1");
    refused(&[a.clone(), other("twice", |_| {}).parent().unwrap().join("../shard1")], false, "are both shard 1/2");
}

#[test]
fn what_is_not_a_shard_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let a = shard(d.path(), 1, 2, |_| {});
    refused(&[a.clone(), d.path().join("nothing")], false, "nothing: not a run directory (no run.json)");
    let whole = shard(&d.path().join("whole"), 2, 2, |r| r.shard = None);
    refused(&[a.clone(), whole], false, "is not a shard (it ran without --shard)");
    let bad = shard(&d.path().join("bad"), 2, 2, |r| r.shard.as_mut().unwrap().index = 3);
    refused(&[a.clone(), bad], false, "shard 3/2 is not a shard index");
    // Shards that agree, of a scenario file other than the one on disk now, or of none there.
    let zero = |r: &mut RunRecord| sh(r).scenario_sha256 = "0".repeat(64);
    let (z1, z2) = (shard(&d.path().join("z"), 1, 2, zero), shard(&d.path().join("z"), 2, 2, zero));
    refused(&[z1, z2], false, "is not the scenario the shards ran");
    let gone = |r: &mut RunRecord| r.scenario_file = "/nonexistent/x.yaml".into();
    let (n1, n2) = (shard(&d.path().join("n"), 1, 2, gone), shard(&d.path().join("n"), 2, 2, gone));
    refused(&[n1, n2], false, "merge: the shards' scenario /nonexistent/x.yaml: ");
    // A shard's run.json is read as any stored run: a bad group name is bad input.
    let g = shard(&d.path().join("g"), 2, 2, |_| {});
    let text = std::fs::read_to_string(g.join("run.json")).unwrap().replace("\"group\": \"g1\"", "\"group\": \"../x\"");
    std::fs::write(g.join("run.json"), text).unwrap();
    refused(&[a.clone(), g], false, "group: ");
}

#[test]
fn overlapping_shards_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let a = shard(d.path(), 1, 2, |_| {});
    let mine = results::load(&a).unwrap().cells[0].clone();
    // Shard 2 also holds a cell of shard 1.
    let b = shard(d.path(), 2, 2, |r| r.cells.push(mine.clone()));
    refused(&[a.clone(), b], false, "is in both");
    // A shard holds a cell its partition gave the other (whose run lacks it).
    let b = shard(&d.path().join("b"), 2, 2, |r| r.cells.push(mine.clone()));
    let a2 = shard(&d.path().join("a"), 1, 2, |r| _ = r.cells.remove(0));
    refused(&[a2, b], true, "belongs to shard 1/2, not to this shard 2/2");
}

#[test]
fn missing_cells_are_refused_or_miss_with_partial() {
    let d = tempfile::tempdir().unwrap();
    let a = shard(d.path(), 1, 2, |_| {});
    refused(
        std::slice::from_ref(&a),
        false,
        "cell(s) missing, e.g. stock/memmap-ext4-pte-truncate-during-dio/run1: shard(s) 2/2 not given",
    );
    let (_, rec) = merge(std::slice::from_ref(&a), None, &d.path().join("p"), true).unwrap();
    let miss: Vec<_> = rec.cells.iter().filter(|c| c.outcome == Outcome::Miss).collect();
    assert_eq!(miss.len(), 2, "shard 2's two cells");
    assert!(miss.iter().all(|c| c.title.as_deref() == Some("shard 2/2 missing from the merge")), "{miss:?}");
    assert_eq!(rec.merged.unwrap().missing, vec![2]);
    // A shard that lacks one of its cells (interrupted).
    let b = shard(d.path(), 2, 2, |r| _ = r.cells.pop());
    refused(&[a.clone(), b.clone()], false, "its shard 2/2 lacks it (interrupted?)");
    let (_, rec) = merge(&[a, b.clone()], None, &d.path().join("q"), true).unwrap();
    let miss: Vec<_> = rec.cells.iter().filter(|c| c.outcome == Outcome::Miss).collect();
    assert_eq!(miss.len(), 1);
    assert!(miss[0].title.as_deref().unwrap().starts_with("not in shard 2/2 ("), "{:?}", miss[0].title);
}

#[test]
fn out_must_be_new_or_empty() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (shard(d.path(), 1, 2, |_| {}), shard(d.path(), 2, 2, |_| {}));
    let e = merge(&[a.clone(), b.clone()], Some(&a), d.path(), false).map(|_| ()).unwrap_err();
    assert!(e.exit_code() == 2 && e.to_string().contains("give a new or empty directory"), "{e}");
    let out = d.path().join("20261127-120000-bio-release-devmap-wakeup");
    std::fs::create_dir(&out).unwrap();
    let (_, rec) = merge(&[a, b], Some(&out), d.path(), false).unwrap();
    assert_eq!(rec.run_id, "20261127-120000-bio-release-devmap-wakeup", "its name is the run id");
}

#[test]
fn a_link_out_of_a_shard_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (shard(d.path(), 1, 2, |_| {}), shard(d.path(), 2, 2, |_| {}));
    let outside = d.path().join("outside");
    std::fs::create_dir_all(outside.join("run1")).unwrap();
    std::fs::write(outside.join("run1/secret"), "secret").unwrap();
    // A cell's directory (or a parent of it) a link to elsewhere; a file in it a link.
    let cell = results::load(&b).unwrap().cells[0].key().id();
    let axes = b.join(&cell).parent().unwrap().to_path_buf();
    std::fs::rename(&axes, d.path().join("moved")).unwrap();
    std::os::unix::fs::symlink(&outside, &axes).unwrap();
    refused(&[a.clone(), b.clone()], false, "not a directory (a symbolic link?)");
    std::fs::remove_file(&axes).unwrap();
    std::fs::rename(d.path().join("moved"), &axes).unwrap();
    std::os::unix::fs::symlink(outside.join("run1/secret"), b.join(&cell).join("secret")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = merge(&[a, b], None, out.path(), false).map(|_| ()).unwrap_err();
    assert!(e.exit_code() == 2 && e.to_string().contains("not a file or a directory"), "{e}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "the half-merged run is removed");
}
