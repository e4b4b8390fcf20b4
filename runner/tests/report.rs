//! The nightly report on real stored runs (runner/tests/data/runs): every
//! output is read back with an independent reader — junit.xml with
//! quick-junit's deserializer and a raw quick-xml walk, kcidb.json against
//! the KCIDB v5 required fields, report.html in headless Chromium.

use kregress::nightly::{self, Baseline, RunReport, Status};
use kregress::outcome::{FailKind, Outcome};
use kregress::results;
use kregress::{post, report};
use std::path::{Path, PathBuf};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/runs")
}

/// A copy of the stored runs, so reports and repro.sh land in a temp dir.
fn copy_runs() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("cp").arg("-r").arg(data()).arg(t.path().join("results")).status().unwrap();
    assert!(st.success());
    t
}

/// The 16:10 bio-release run against the 16:08 one, with fixed's
/// truncate-during-dio run 2 turned into a WARN: one NEW_FAILURE, the
/// stock hang STILL_FAILING.
fn regressed_report(root: &Path) -> RunReport {
    let dir = root.join("20261126-161042-bio-release-devmap-wakeup");
    let base = results::load(&root.join("20261126-160848-bio-release-devmap-wakeup")).unwrap();
    let mut rec = results::load(&dir).unwrap();
    let c = rec.cells.iter_mut().find(|c| c.variant == "fixed" && c.workload == "truncate-during-dio" && c.run == 2).unwrap();
    (c.outcome, c.kind, c.title) = (Outcome::Fail, Some(FailKind::Warn), Some("WARNING in free_zone_device_page".into()));
    c.metrics.clear();
    // Its console: the stock hang's, so the excerpt has a kernel log to show.
    let cdir = dir.join(c.key().id());
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::copy(dir.join("stock/memmap-ext4-pte-truncate-during-dio/run1/console.log"), cdir.join("console.log")).unwrap();
    RunReport::new(dir, rec, Some(base), vec![]).unwrap()
}

#[test]
fn summary_junit_kcidb_of_a_regressed_night() {
    let t = copy_runs();
    let root = t.path().join("results");
    let r = regressed_report(&root);
    let statuses: Vec<(&str, Status)> = r.verdicts.iter().map(|v| (v.cell.as_str(), v.status)).collect();
    assert!(statuses.contains(&("fixed/memmap-ext4-pte-truncate-during-dio", Status::NewFailure)), "{statuses:?}");
    assert!(statuses.contains(&("stock/memmap-ext4-pte-truncate-during-dio", Status::StillFailing)), "{statuses:?}");
    let reports = [r];
    assert!(nightly::regressed(&reports));
    let out = t.path().join("report");
    post::write_all(&reports, &out).unwrap();

    // summary.md: the headline first, then the failure with its repro command.
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.starts_with("# kregress nightly: 1 new failure, 0 fixed, 0 throughput regressions since 2026-11-26\n"), "{md}");
    assert!(md.contains("kregress run scenarios/bio-release-devmap-wakeup.yaml --only variant=fixed,backend=memmap,fs=ext4,mapping=pte,workload=truncate-during-dio --runs 1"), "{md}");

    // junit.xml with quick-junit's reader: one testcase per cell, failures carry the title.
    let xml = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    let parsed = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(parsed.test_suites.len(), 1);
    let suite = &parsed.test_suites[0];
    assert_eq!(suite.test_cases.len(), 6);
    let failures: Vec<String> = suite
        .test_cases
        .iter()
        .filter_map(|tc| match &tc.status {
            quick_junit::TestCaseStatus::NonSuccess { message, description, .. } => {
                assert!(description.as_ref().is_some_and(|d| d.as_str().contains("console")), "{tc:?}");
                Some(message.as_ref().unwrap().as_str().to_string())
            }
            _ => None,
        })
        .collect();
    assert_eq!(failures, ["STILL_FAILING: INFO: task hung in ext4_break_layouts", "NEW_FAILURE: WARNING in free_zone_device_page"]);
    // And with a raw XML walk, independent of quick-junit: the counts agree.
    let (mut cases, mut fails) = (0, 0);
    let mut rd = quick_xml::Reader::from_str(&xml);
    loop {
        match rd.read_event().unwrap() {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => match e.name().as_ref() {
                b"testcase" => cases += 1,
                b"failure" => fails += 1,
                _ => {}
            },
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!((cases, fails), (6, 2));

    // kcidb.json: the schema's required fields, ids linking up.
    let k: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("kcidb.json")).unwrap()).unwrap();
    assert_eq!(k["version"]["major"], 5);
    assert!(k["version"]["minor"].is_u64());
    let ids = |what: &str| -> Vec<String> { k[what].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()).collect() };
    let (checkouts, builds) = (ids("checkouts"), ids("builds"));
    assert_eq!(checkouts, ["kregress:20261126-161042-bio-release-devmap-wakeup"]);
    for o in k["checkouts"].as_array().unwrap() {
        assert_eq!(o["origin"], "kregress");
    }
    assert_eq!(builds.len(), 2);
    for b in k["builds"].as_array().unwrap() {
        assert_eq!(b["origin"], "kregress");
        assert!(checkouts.contains(&b["checkout_id"].as_str().unwrap().to_string()));
    }
    let tests = k["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 18);
    for t in tests {
        assert_eq!(t["origin"], "kregress");
        assert!(t["id"].as_str().unwrap().starts_with("kregress:"));
        assert!(builds.contains(&t["build_id"].as_str().unwrap().to_string()), "{t}");
        assert!(["PASS", "FAIL", "ERROR", "MISS", "SKIP", "DONE"].contains(&t["status"].as_str().unwrap()));
        if let Some(n) = t.get("number") {
            assert!(n["value"].is_f64() && ["MB/s", "ops/s"].contains(&n["unit"].as_str().unwrap()), "{t}");
        }
        // Stored runs predate icount: every test says it was wall-clock.
        assert_eq!(t["misc"]["timing"], "wall", "{t}");
    }
    assert_eq!(tests.iter().filter(|t| t["status"] == "FAIL").count(), 4);
    assert_eq!(tests.iter().filter(|t| t.get("number").is_some()).count(), 14);

    // report.html: self-contained, the matrix and a chart per measured cell.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(!html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http"));
    assert_eq!(html.matches("<table class=\"matrix\"").count(), 1);
    assert_eq!(html.matches("<div class=\"chart\">").count(), 5, "every cell but stock's hang has throughput");
    // The A/B table within the run: fixed's WARN against stock's hang.
    let ab = ab_rows(&html, 1);
    let race = ab.iter().find(|r| r.tds[0] == "memmap-ext4-pte-truncate-during-dio").unwrap();
    assert_eq!(race.tds[4], "CHANGED_FAILURE", "{race:?}");
    assert_eq!(ab.len(), 3, "{ab:?}");
    svgs_are_well_formed(&html);
    assert!(html.contains(
        "href=\"../results/20261126-161042-bio-release-devmap-wakeup/fixed/memmap-ext4-pte-truncate-during-dio/run2/console.log\""
    ));
}

#[test]
fn report_command_on_stored_runs() {
    let t = copy_runs();
    let root = t.path().join("results");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kregress"))
        .current_dir(&root)
        .args(["report", "20261126-162904-bio-release-devmap-wakeup", "20261126-161418-fixed-matrix"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("0 new failures, 0 fixed, 0 throughput regressions since 2026-11-26"), "{stdout}");
    for run in ["20261126-162904-bio-release-devmap-wakeup", "20261126-161418-fixed-matrix"] {
        for f in ["summary.md", "report.html", "junit.xml", "kcidb.json"] {
            assert!(root.join(run).join("report").join(f).is_file(), "{run}/report/{f}");
        }
    }
    // The stock hang fails in all 3 runs: each run's directory has repro.sh.
    for n in 1..=3 {
        let p = root.join(format!("20261126-162904-bio-release-devmap-wakeup/stock/memmap-ext4-pte-truncate-during-dio/run{n}/repro.sh"));
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.contains("run scenarios/bio-release-devmap-wakeup.yaml --only variant=stock,backend=memmap,fs=ext4,mapping=pte,workload=truncate-during-dio --runs 1"), "{s}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o111, 0o111);
    }
    // A passing cell gets none.
    assert!(!root.join("20261126-162904-bio-release-devmap-wakeup/fixed/memmap-ext4-pte-truncate-during-dio/run1/repro.sh").exists());
    // 16:29 vs 16:28: fixed's truncate went from 1 sample to 3, pooled with
    // the two earlier nights' samples (the band in its chart).
    let md = std::fs::read_to_string(root.join("20261126-162904-bio-release-devmap-wakeup/report/summary.md")).unwrap();
    assert!(md.contains("| stock/memmap-ext4-pte-truncate-during-dio | - | wall | STILL_FAILING |"), "{md}");
    // A second run against an explicit baseline of another scenario is bad input.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_kregress"))
        .current_dir(&root)
        .args(["report", "20261126-161418-fixed-matrix", "--baseline", "20261126-160848-bio-release-devmap-wakeup"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
}

const CHROMIUM: &str = "/usr/bin/chromium";

/// report.html in headless Chromium: it loads without console messages, and
/// the rendered DOM has the matrix and SVG charts. With
/// KREGRESS_UPDATE_SCREENSHOT=1 the screenshot replaces docs/report.png.
#[test]
fn report_html_in_headless_chromium() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("skipped: {CHROMIUM} is not installed (apt-get install chromium)");
        return;
    }
    let t = copy_runs();
    let root = t.path().join("results");
    let reports: Vec<RunReport> = ["20261126-162904-bio-release-devmap-wakeup", "20261126-161418-fixed-matrix"]
        .iter()
        .map(|r| RunReport::load(&root.join(r), &Baseline::Last, 14).unwrap())
        .collect();
    let out = t.path().join("report");
    post::write_all(&reports, &out).unwrap();
    let url = format!("file://{}", out.join("report.html").display());
    let profile = tempfile::tempdir().unwrap();
    let shot = t.path().join("report.png");
    let chromium = |extra: &[&str]| {
        let o = std::process::Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--enable-logging=stderr", "--v=0", "--window-size=1400,900"])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o
    };
    let dom = chromium(&["--dump-dom"]);
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    let log = String::from_utf8_lossy(&dom.stderr);
    // The page has no script: any console line is an error of the page.
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE") || l.contains("Uncaught")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    assert!(dom_text.contains("id=\"headline\""), "{dom_text}");
    assert_eq!(dom_text.matches("class=\"matrix\"").count(), 2);
    assert!(dom_text.matches("<svg").count() >= 20, "charts: {}", dom_text.matches("<svg").count());
    assert!(dom_text.contains("class=\"band\""), "no confidence band drawn");
    chromium(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 20_000, "screenshot looks blank ({} bytes)", png.len());
    if std::env::var_os("KREGRESS_UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(&shot, Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/report.png")).unwrap();
    }
}

/// `kregress compare` refuses two runs whose cells were measured in
/// different timing modes (exit 2, naming the cell and both modes), and
/// compares the same pair once the modes agree.
#[test]
fn compare_refuses_cells_of_different_timing_modes() {
    let t = copy_runs();
    let root = t.path().join("results");
    let compare = |a: &str, b: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kregress"))
            .current_dir(&root)
            .args(["compare", a, b, "--results", "."])
            .output()
            .unwrap()
    };
    let (old, new) = ("20261126-161042-bio-release-devmap-wakeup", "20261126-162904-bio-release-devmap-wakeup");
    let ok = compare(old, new);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    // The newer run as if its dio-read cells had been measured in icount timing.
    let path = root.join(new).join("run.json");
    let mut rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for c in rec["cells"].as_array_mut().unwrap() {
        if c["workload"] == "dio-read" {
            c["timing"] = "icount".into();
        }
    }
    std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
    let bad = compare(old, new);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(
        err.contains("memmap-ext4-pte-dio-read") && err.contains("wall") && err.contains("icount") && err.contains("not comparable"),
        "{err}"
    );
}

// ---- hostile results directories (issue 12) -------------------------------
// A results folder may be a CI artifact from another machine: every name in
// run.json is checked, every write stays inside the run, every text from the
// guest is made visible, and nothing in it makes kregress panic or hang.

/// The stored run with failing cells (the stock hang, 3 runs), copied three
/// directories deep into a temp dir (so `../../../x` lands inside it too)
/// with its run.json edited as JSON. Returns the temp dir and the run dir.
fn crafted(edit: impl FnOnce(&mut serde_json::Value)) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("a/b/results");
    std::fs::create_dir_all(&root).unwrap();
    let run = root.join("20261126-162904-bio-release-devmap-wakeup");
    let st = std::process::Command::new("cp")
        .arg("-r")
        .arg(data().join("20261126-162904-bio-release-devmap-wakeup"))
        .arg(&run)
        .status()
        .unwrap();
    assert!(st.success());
    let path = run.join("run.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    (t, run)
}

/// The failing cells of a run.json (the stock hang).
fn failing(v: &mut serde_json::Value) -> impl Iterator<Item = &mut serde_json::Value> {
    v["cells"].as_array_mut().unwrap().iter_mut().filter(|c| c["outcome"] == "FAIL")
}

fn kregress(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kregress")).current_dir(dir).args(args).output().unwrap()
}

/// Every file under `dir` (links not followed).
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn report_refuses_names_that_leave_the_run_or_reach_a_shell() {
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit); 5] = [
        ("variant", |v| failing(v).for_each(|c| c["variant"] = "../../../x".into())),
        // Empty variant and backend: the cell id started with '/', repro.sh
        // went to /-ext4-... (the edited run.json has its keys sorted).
        ("backend", |v| failing(v).for_each(|c| (c["variant"], c["backend"]) = ("".into(), "".into()))),
        ("variant", |v| failing(v).for_each(|c| c["variant"] = "a\n$(touch pwned)\n".into())),
        ("workload", |v| failing(v).for_each(|c| c["workload"] = "x$(touch pwned)".into())),
        ("run_id", |v| v["run_id"] = "x\ntouch pwned\n".into()),
    ];
    for (field, edit) in cases {
        let (t, run) = crafted(edit);
        let out = kregress(run.parent().unwrap(), &["report", "20261126-162904-bio-release-devmap-wakeup"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{field}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("20261126-162904-bio-release-devmap-wakeup/run.json:") && err.contains(&format!(": {field}: ")), "{err}");
        // Nothing written: no repro.sh, no report, nothing outside the run.
        let files = all_files(t.path());
        let written: Vec<&PathBuf> = files.iter().filter(|p| !p.starts_with(&run) || p.ends_with("repro.sh")).collect();
        assert!(written.is_empty(), "{field}: {written:?}");
        assert!(!run.join("report").exists(), "{field}");
    }
}

#[test]
fn report_writes_only_inside_the_run_even_through_symlinks() {
    // A cell directory that is a link out of the run: repro.sh is refused.
    let (t, run) = crafted(|_| {});
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let stock = run.join("stock");
    std::fs::rename(&stock, t.path().join("stock-moved")).unwrap();
    std::os::unix::fs::symlink(&outside, &stock).unwrap();
    let out = kregress(run.parent().unwrap(), &["report", "20261126-162904-bio-release-devmap-wakeup"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("stock: not a directory (a symbolic link?)"), "{err}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "written through the link");
    // RUN_DIR/report a link out of the run: the report is refused.
    let (t, run) = crafted(|_| {});
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, run.join("report")).unwrap();
    let out = kregress(run.parent().unwrap(), &["report", "20261126-162904-bio-release-devmap-wakeup"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "report written through the link");
}

#[test]
fn console_logs_that_are_links_or_fifos_are_not_read() {
    let (t, run) = crafted(|_| {});
    let cell = run.join("stock/memmap-ext4-pte-truncate-during-dio");
    // run1: a link to a secret; run2: a FIFO (reading it would wait for a writer).
    let secret = t.path().join("secret");
    std::fs::write(&secret, "TOP-SECRET-KEY\n").unwrap();
    std::fs::remove_file(cell.join("run1/console.log")).unwrap();
    std::os::unix::fs::symlink(&secret, cell.join("run1/console.log")).unwrap();
    std::fs::remove_file(cell.join("run2/console.log")).unwrap();
    let fifo = std::ffi::CString::new(cell.join("run2/console.log").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kregress"))
        .current_dir(run.parent().unwrap())
        .args(["report", "20261126-162904-bio-release-devmap-wakeup"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("kregress report hangs on a FIFO console.log");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0));
    for f in ["summary.md", "junit.xml", "report.html"] {
        let text = std::fs::read_to_string(run.join("report").join(f)).unwrap();
        assert!(!text.contains("TOP-SECRET-KEY"), "{f} shows the link's target");
    }
    let md = std::fs::read_to_string(run.join("report/summary.md")).unwrap();
    assert!(md.contains("run1/console.log: ") && md.contains("run2/console.log: not a regular file"), "{md}");
}

/// Every word of repro.sh reaches kregress as one argument: the scenario
/// path is run.json's, with spaces, quotes, `$(...)` and a leading '-'.
#[test]
fn repro_sh_passes_every_word_as_one_argument() {
    let file = "-x $(touch pwned) 'q'.yaml";
    let (t, run) = crafted(|v| v["scenario_file"] = file.into());
    let r = RunReport::load(&run, &Baseline::None, 14).unwrap();
    let written = post::write_repro(&r).unwrap();
    assert_eq!(written.len(), 3);
    // A kregress that prints its arguments, one a line, first in PATH.
    let bin = t.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("kregress"), "#!/bin/sh\nprintf '%s\\n' \"$@\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("kregress"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = std::process::Command::new(&written[0]).current_dir(t.path()).env("PATH", path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let args: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(
        args,
        [
            "run",
            "./-x $(touch pwned) 'q'.yaml",
            "--only",
            "variant=stock,backend=memmap,fs=ext4,mapping=pte,workload=truncate-during-dio",
            "--runs",
            "1"
        ]
    );
    assert!(!t.path().join("pwned").exists());
}

#[test]
fn a_corrupt_or_absurd_run_json_is_bad_input() {
    // Cut in half: exit 2 with the file, line and column (was exit 3).
    let (_t, run) = crafted(|_| {});
    let p = run.join("run.json");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, &text[..text.len() / 2]).unwrap();
    let out = kregress(run.parent().unwrap(), &["report", "20261126-162904-bio-release-devmap-wakeup"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("kregress: 20261126-162904-bio-release-devmap-wakeup/run.json:") && err.contains(": EOF while parsing"),
        "{err}"
    );
    // seconds: 1e300 panicked in junit.xml (Duration::from_secs_f64).
    let (_t, run) = crafted(|v| v["cells"][0]["seconds"] = 1e300.into());
    let out = kregress(run.parent().unwrap(), &["report", "20261126-162904-bio-release-devmap-wakeup"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("run.json:") && err.contains(": seconds: 1e300 is not a duration in seconds"), "{err}");
}

/// Titles come from the guest: control characters and U+FFFE/U+FFFF in one
/// must leave junit.xml well-formed XML 1.0, and show up escaped, the same
/// way, in summary.md, report.html and repro.sh.
#[test]
fn titles_with_control_characters_are_escaped_everywhere() {
    let title = "INFO: task \u{1}hung\u{1b}[31m in \u{0}ext4\u{7f}\u{85} \u{fffe}\u{ffff}\rx\nnext";
    let (_t, run) = crafted(|v| failing(v).for_each(|c| c["title"] = title.into()));
    let rec = results::load(&run).unwrap();
    let out = run.join("report");
    let r = RunReport::new(run.clone(), rec, None, vec![]).unwrap();
    post::write_repro(&r).unwrap();
    post::write_all(&[r], &out).unwrap();
    let shown = "INFO: task \\u{1}hung\\u{1b}[31m in \\u{0}ext4\\u{7f}\\u{85} \\u{fffe}\\u{ffff}\\rx";
    // XML 1.0 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
    let xml_char = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}');
    let xml = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    let bad: Vec<char> = xml.chars().filter(|c| !xml_char(*c)).collect();
    assert!(bad.is_empty(), "not XML 1.0 characters in junit.xml: {bad:?}");
    // Parsed back with quick-xml: the failure messages carry the escaped title.
    let mut rd = quick_xml::Reader::from_str(&xml);
    let mut messages = Vec::new();
    loop {
        match rd.read_event().unwrap() {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) if e.name().as_ref() == b"failure" => {
                let m = e.try_get_attribute("message").unwrap().unwrap();
                messages.push(m.unescape_value().unwrap().into_owned());
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(messages, [format!("NEW_CELL: {shown}\nnext")]);
    let hidden = |c: char| (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{fffe}' | '\u{ffff}');
    for f in ["summary.md", "report.html"] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(!text.contains(hidden), "{f}: {:?}", text.chars().filter(|c| hidden(*c)).collect::<Vec<_>>());
        assert!(text.contains(shown), "{f}");
    }
    let sh = std::fs::read_to_string(run.join("stock/memmap-ext4-pte-truncate-during-dio/run1/repro.sh")).unwrap();
    assert!(!sh.contains(hidden) && sh.contains(&format!("(FAIL: {shown} next).\n")), "{sh}");
    // The terminal: `kregress compare` prints the title in its table.
    let out = kregress(run.parent().unwrap(), &["compare", "20261126-162904-bio-release-devmap-wakeup", "--results", "."]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!table.contains(hidden) && table.contains(&format!("{shown} next")), "{table}");
    assert!(table.lines().filter(|l| l.contains("next")).all(|l| l.starts_with('|')), "a row is split: {table}");
    // `kregress run`'s summary.md (and terminal): its cell table too.
    let md = report::summary_md(&results::load(&run).unwrap(), &[], "-", |_| false);
    assert!(!md.contains(hidden) && md.contains(&format!("{shown} next")), "{md}");
    assert!(md.lines().filter(|l| l.contains("truncate-during-dio/run")).all(|l| l.starts_with('|') && l.ends_with('|')), "{md}");
}

/// junit.xml from records built in code (not loaded): any f64 of seconds.
#[test]
fn junit_takes_any_seconds() {
    for secs in [1e300, f64::INFINITY, f64::NAN, -1.0] {
        let (_t, run) = crafted(|_| {});
        let mut rec = results::load(&run).unwrap();
        rec.cells.iter_mut().for_each(|c| c.seconds = secs);
        let r = RunReport::new(run, rec, None, vec![]).unwrap();
        let xml = report::junit::render(&[r]).unwrap();
        quick_junit::Report::deserialize_from_str(&xml).unwrap();
    }
}

/// Printing into a closed pipe (`kregress triage log | head`) ends
/// kregress quietly (SIGPIPE), never with a panic and exit 101.
#[test]
fn a_closed_stdout_ends_quietly() {
    let t = tempfile::tempdir().unwrap();
    let log = t.path().join("console.log");
    let one = "[    1.000000] WARNING: CPU: 0 PID: 1 at mm/memremap.c:1 free_zone_device_page+0x1/0x2\n[    1.000001] ---[ end trace 0000000000000000 ]---\n";
    std::fs::write(&log, one.repeat(5000)).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kregress"))
        .args(["triage", log.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away at once (head -0); the output is > 64 KiB, so
    // kregress writes into the closed pipe whatever the timing.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    use std::os::unix::process::ExitStatusExt;
    assert!(out.status.code() == Some(0) || out.status.signal() == Some(libc::SIGPIPE), "{:?} {err}", out.status);
}

/// `compare OLD NEW` of runs of two scenarios is refused, naming both.
#[test]
fn compare_refuses_runs_of_different_scenarios() {
    let t = copy_runs();
    let root = t.path().join("results");
    let out = kregress(&root, &["compare", "20261126-161042-bio-release-devmap-wakeup", "20261126-161418-fixed-matrix", "--results", "."]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}{}", String::from_utf8_lossy(&out.stdout));
    assert!(err.contains("scenario bio-release-devmap-wakeup") && err.contains("scenario fixed-matrix"), "{err}");
}

/// `report --history 1`: the charts show tonight alone, the verdicts still
/// have the baseline.
#[test]
fn report_history_1_keeps_the_baseline() {
    let t = copy_runs();
    let root = t.path().join("results");
    let out = kregress(&root, &["report", "20261126-162904-bio-release-devmap-wakeup", "--history", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("0 new failures, 0 fixed, 0 throughput regressions since 2026-11-26"), "{stdout}");
    let md = std::fs::read_to_string(root.join("20261126-162904-bio-release-devmap-wakeup/report/summary.md")).unwrap();
    assert!(
        md.contains("Baseline: run 20261126-162808-bio-release-devmap-wakeup") && md.contains("the baseline and 0 earlier night(s)"),
        "{md}"
    );
    assert!(md.contains("| stock/memmap-ext4-pte-truncate-during-dio | - | wall | STILL_FAILING |"), "{md}");
}

// ---- A/B verdicts in report.html (issue 13, point 9) -----------------------
// summary.md tables each variant against the first; report.html draws the
// same verdicts (compare::Verdict, one source). Both pages are read back:
// summary.md as a Markdown table, the HTML's A/B table and every SVG with
// quick-xml (the page itself is HTML, not XML; those parts are XML).

/// One row of report.html's A/B table: the text of its cells and the
/// classed shapes of its chart with their attributes.
#[derive(Debug, Default, PartialEq)]
struct AbRow {
    tds: Vec<String>,
    shapes: Vec<(String, std::collections::BTreeMap<String, String>)>,
}

impl AbRow {
    fn shape(&self, class: &str) -> Option<&std::collections::BTreeMap<String, String>> {
        self.shapes.iter().find(|(c, _)| c == class).map(|(_, a)| a)
    }
    fn num(&self, class: &str, attr: &str) -> f64 {
        self.shape(class).unwrap_or_else(|| panic!("no {class} in {self:?}"))[attr].parse().unwrap()
    }
}

/// The `<table class="ab">` of `html` (there must be exactly `n`), parsed
/// as XML: a well-formedness error fails the test.
fn ab_rows(html: &str, n: usize) -> Vec<AbRow> {
    use quick_xml::events::Event;
    let tables: Vec<&str> = html.split("<table class=\"ab\">").skip(1).map(|t| &t[..t.find("</table>").unwrap()]).collect();
    assert_eq!(tables.len(), n, "A/B tables");
    let mut rows: Vec<AbRow> = Vec::new();
    for t in tables {
        let xml = format!("<table class=\"ab\">{t}</table>");
        let mut rd = quick_xml::Reader::from_str(&xml);
        let (mut in_td, mut in_svg) = (false, 0);
        loop {
            let ev = rd.read_event().unwrap_or_else(|e| panic!("A/B table is not well-formed: {e}\n{xml}"));
            let attrs = |e: &quick_xml::events::BytesStart| -> std::collections::BTreeMap<String, String> {
                e.attributes()
                    .map(|a| a.unwrap())
                    .map(|a| (String::from_utf8(a.key.as_ref().to_vec()).unwrap(), a.unescape_value().unwrap().into_owned()))
                    .collect()
            };
            match ev {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    let a = attrs(e);
                    match e.name().as_ref() {
                        b"tr" if a.get("class").is_some_and(|c| c == "ab-row") => rows.push(AbRow::default()),
                        b"td" if !rows.is_empty() => {
                            in_td = true;
                            rows.last_mut().unwrap().tds.push(String::new());
                        }
                        b"svg" => in_svg += 1,
                        _ if in_svg > 0 && in_td => {
                            if let Some(c) = a.get("class") {
                                rows.last_mut().unwrap().shapes.push((c.clone(), a.clone()));
                            }
                        }
                        _ => {}
                    }
                    if matches!(ev, Event::Empty(_)) && e.name().as_ref() == b"svg" {
                        in_svg -= 1;
                    }
                }
                Event::End(e) => match e.name().as_ref() {
                    b"td" => in_td = false,
                    b"svg" => in_svg -= 1,
                    _ => {}
                },
                Event::Text(x) if in_td && in_svg == 0 => rows.last_mut().unwrap().tds.last_mut().unwrap().push_str(&x.decode().unwrap()),
                Event::GeneralRef(r) if in_td && in_svg == 0 => {
                    let name = r.decode().unwrap().into_owned();
                    let c = r
                        .resolve_char_ref()
                        .unwrap()
                        .map(String::from)
                        .or_else(|| quick_xml::escape::resolve_predefined_entity(&name).map(String::from));
                    rows.last_mut().unwrap().tds.last_mut().unwrap().push_str(&c.unwrap_or_else(|| panic!("unknown entity &{name};")));
                }
                Event::Eof => break,
                _ => {}
            }
        }
    }
    rows
}

/// Every `<svg>...</svg>` of `html` parses as XML; how many there are.
fn svgs_are_well_formed(html: &str) -> usize {
    let mut n = 0;
    for part in html.split("<svg").skip(1) {
        let svg = format!("<svg{}</svg>", &part[..part.find("</svg>").unwrap()]);
        let mut rd = quick_xml::Reader::from_str(&svg);
        while !matches!(rd.read_event().unwrap_or_else(|e| panic!("SVG not well-formed: {e}\n{svg}")), quick_xml::events::Event::Eof) {}
        n += 1;
    }
    n
}

/// The rows of summary.md's "## Verdicts" table, each cell trimmed.
fn md_verdicts(md: &str) -> Vec<Vec<String>> {
    let table = md.split("\n## Verdicts\n\n").nth(1).unwrap_or_else(|| panic!("no verdicts table: {md}"));
    table
        .lines()
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect())
        .collect()
}

/// The default scenario's stored run (stock hangs 3/3, fixed passes), as
/// `kregress run` leaves it, in a temp dir (run.json after `edit`;
/// summary.md, report.html and verdicts.json from the one post-run path).
fn finished_run(edit: impl FnOnce(&mut results::RunRecord)) -> (tempfile::TempDir, post::RunDone<'static>) {
    let t = copy_runs();
    let dir = t.path().join("results/20261126-162904-bio-release-devmap-wakeup");
    let s = kregress::scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/bio-release-devmap-wakeup.yaml")).unwrap();
    let mut rec = results::load(&dir).unwrap();
    rec.results_dir = dir;
    edit(&mut rec);
    results::save(&rec).unwrap();
    let rec: &'static results::RunRecord = Box::leak(Box::new(rec));
    let done = post::RunDone::judge(&s, rec).unwrap();
    post::finish(&done, post::Show::Nothing).unwrap();
    (t, done)
}

/// A run's report.html shows its A/B verdicts — every row summary.md
/// tables, with the same verdict, change, interval and medians — and draws
/// each interval around zero on one scale with the noise floor shaded.
#[test]
fn a_run_draws_the_ab_verdicts_summary_md_tables() {
    let (_t, done) = finished_run(|_| {});
    let dir = &done.rec.results_dir;
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(!html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http"));
    assert!(html.contains("<h2>A/B: each variant against stock</h2>"), "{html}");
    let md_rows = md_verdicts(&md);
    let rows = ab_rows(&html, 1);
    assert_eq!(rows.len(), md_rows.len(), "{md}");
    assert_eq!(rows.len(), done.verdicts.len());
    // summary.md's verdicts here: one of each of three kinds.
    let mut names: Vec<&str> = md_rows.iter().map(|r| r[8].as_str()).collect();
    names.sort();
    assert_eq!(names, ["FIXED", "INCONCLUSIVE", "NO_CHANGE"]);
    let verdicts: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("verdicts.json")).unwrap()).unwrap();
    for ((row, m), v) in rows.iter().zip(&md_rows).zip(verdicts.as_array().unwrap()) {
        // cell, metric, variants, outcomes, verdict, change [CI], medians: as summary.md has them.
        let medians = if m[4] == "-" && m[5] == "-" { "-".to_string() } else { format!("{} → {}", m[4], m[5]) };
        assert_eq!(row.tds[..7], [&m[0], &m[1], &m[2], &m[3], &m[8], &m[6], &medians].map(|s| s.to_string()), "{row:?} vs {m:?}");
        match (v["ci_low"].as_f64(), v["ci_high"].as_f64(), v["delta_pct"].as_f64()) {
            (Some(lo), Some(hi), Some(d)) => {
                // The floor's shade is centred on zero; its half-width is the scale.
                let (zero, floor) = (row.num("zero", "x1"), v["noise_floor_pct"].as_f64().unwrap());
                let (fx, fw) = (row.num("floor", "x"), row.num("floor", "width"));
                assert!((fx + fw / 2.0 - zero).abs() < 0.15, "{row:?}");
                let px_per_pct = fw / 2.0 / floor;
                let at = |pct: f64| zero + pct * px_per_pct;
                assert!((row.num("ci", "x1") - at(lo)).abs() < 0.3, "low end {lo}: {row:?}");
                assert!((row.num("ci", "x2") - at(hi)).abs() < 0.3, "high end {hi}: {row:?}");
                assert!((row.num("delta", "cx") - at(d)).abs() < 0.3, "change {d}: {row:?}");
                assert!(lo < 0.0 && hi > 0.0, "both stored throughput rows straddle zero: {v}");
            }
            _ => {
                assert_eq!(v["metric"], "", "only outcome rows have no interval: {v}");
                assert!(row.shapes.is_empty(), "{row:?}");
            }
        }
    }
    assert!(svgs_are_well_formed(&html) >= 4, "the axis and a chart per row");
    // Its cells, each linking its console log relative to the page.
    let link = "<a href=\"stock/memmap-ext4-pte-truncate-during-dio/run1/console.log\">";
    assert!(html.contains(link) && dir.join("stock/memmap-ext4-pte-truncate-during-dio/run1/console.log").is_file());
    assert_eq!(html.matches("<a href=").count(), 18);
}

/// `nightly` and `report` draw the same A/B rows in report/report.html,
/// from the same verdicts (compare::compare_variants).
#[test]
fn the_nightly_report_draws_the_same_ab_verdicts() {
    let (t, done) = finished_run(|_| {});
    let run_page = std::fs::read_to_string(done.rec.results_dir.join("report.html")).unwrap();
    let r = RunReport::load(&done.rec.results_dir, &Baseline::Last, 14).unwrap();
    assert_eq!(r.ab, done.verdicts);
    let out = t.path().join("report");
    post::write_all(&[r], &out).unwrap();
    let nightly_page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(nightly_page.contains("<h3>A/B within the run: each variant against stock</h3>"));
    assert_eq!(ab_rows(&nightly_page, 1), ab_rows(&run_page, 1));
    svgs_are_well_formed(&nightly_page);
    // A run of one variant has nothing to compare within it: no A/B table.
    let one = RunReport::load(&t.path().join("results/20261126-161418-fixed-matrix"), &Baseline::Last, 14).unwrap();
    assert!(one.ab.is_empty());
    post::write_all(&[one], &out).unwrap();
    assert_eq!(ab_rows(&std::fs::read_to_string(out.join("report.html")).unwrap(), 0), []);
}

/// Titles come from the guest: markup in one is text in both pages' A/B
/// tables and cell tables, which stay well-formed.
#[test]
fn markup_in_a_title_is_text_in_the_ab_tables() {
    let title = "<img src=x onerror=alert(1)> & \"q\" 'a' </td></table>";
    let (t, done) = finished_run(|rec| {
        for c in rec.cells.iter_mut().filter(|c| c.outcome.is_failure()) {
            c.title = Some(title.into());
        }
    });
    let run_page = std::fs::read_to_string(done.rec.results_dir.join("report.html")).unwrap();
    let out = t.path().join("report");
    post::write_all(&[RunReport::load(&done.rec.results_dir, &Baseline::Last, 14).unwrap()], &out).unwrap();
    let nightly_page = std::fs::read_to_string(out.join("report.html")).unwrap();
    for page in [&run_page, &nightly_page] {
        assert!(!page.contains("<img") && !page.contains("</td></table>"), "{page}");
        assert!(
            page.contains("&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot; &#39;a&#39; &lt;/td&gt;&lt;/table&gt;"),
            "{}",
            page.split("onerror").nth(1).unwrap_or(page).get(..300).unwrap_or("")
        );
        let rows = ab_rows(page, 1);
        let race = rows.iter().find(|r| r.tds[0] == "memmap-ext4-pte-truncate-during-dio").unwrap();
        assert_eq!(race.tds[3], format!("HANG 3/3 ({title}) → PASS 3/3"));
        assert_eq!(race.tds[4], "FIXED");
        svgs_are_well_formed(page);
    }
}
