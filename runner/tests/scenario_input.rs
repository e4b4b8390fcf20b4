//! Hostile and mistaken scenario files (issue 12, points 11 to 13): each is
//! refused when it is loaded, with exit class 2 and one message naming the
//! file, the line and the field, within bounded time and memory. `kregress
//! validate` and `kregress run` are checked on the real binary: `run`
//! validates before it builds or boots anything.

use kregress::scenario::{load, parse, Scenario};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A project (kernel-configs/ marks its root) with one fragment and one patch.
fn project() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("kernel-configs")).unwrap();
    std::fs::create_dir_all(d.path().join("scenarios/patches")).unwrap();
    std::fs::write(d.path().join("kernel-configs/a.config"), "CONFIG_X=y\n").unwrap();
    std::fs::write(d.path().join("scenarios/patches/p.patch"), "").unwrap();
    d
}

/// Fifteen lines; the run section starts at line 9.
const GOOD: &str = "name: t
kernel:
  source: { debian: linux-source-6.1 }
  base: tinyconfig
  fragments: [kernel-configs/a.config]
variants:
  - { name: stock, patches: [] }
  - { name: fixed, patches: [scenarios/patches/p.patch] }
run:
  workloads:
    - { name: dio-read, size: 64M, passes: 3 }
    - { name: truncate-during-dio, seconds: 30 }
  runs: 1
expect:
  - { variant: stock, workload: truncate-during-dio, outcome: FAIL, kind: HANG }
";

fn file(d: &tempfile::TempDir) -> PathBuf {
    d.path().join("scenarios/t.yaml")
}

fn ok(d: &tempfile::TempDir, text: &str) -> Scenario {
    parse(&file(d), text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The message of a refused scenario, checked to be bad input (exit 2) on one line.
fn refused(d: &tempfile::TempDir, text: &str) -> String {
    let e = parse(&file(d), text).err().unwrap_or_else(|| panic!("accepted:\n{text}"));
    assert_eq!(e.exit_code(), 2, "{e}");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    msg
}

/// Asserts that `msg` starts with `<file>:<line>: <field>: ` and holds `what`.
fn says(msg: &str, line: usize, field: &str, what: &str) {
    let head = format!("t.yaml:{line}: {field}: ");
    assert!(msg.contains(&head) && msg.contains(what), "want `{head}...{what}...`, got: {msg}");
}

/// `GOOD` with `from` replaced by `to`, exactly once.
fn edit(from: &str, to: &str) -> String {
    assert_eq!(GOOD.matches(from).count(), 1, "{from}");
    GOOD.replacen(from, to, 1)
}

#[test]
fn good_scenario_loads_with_sizes_in_bytes() {
    let d = project();
    let s = ok(&d, GOOD);
    let w = &s.run.workloads[0];
    assert_eq!(w.size, Some(64 << 20), "parsed once, when loaded");
    assert_eq!(w.spec().size, 64 << 20, "the agent gets the parsed bytes");
    assert_eq!(w.spec().to_string(), "dio-read:size=64M:passes=3:threads=1:deadline=120");
    let s = ok(&d, &edit("seconds: 30", "seconds: 3600"));
    assert_eq!(s.run.workloads[1].spec().deadline, 3660, "the longest race gets its minute");
    let s = ok(&d, &edit("size: 64M", "size: 4194304"));
    assert_eq!(s.run.workloads[0].size, Some(4 << 20), "plain bytes too");
}

/// Point 11: everything `run` would trip on is refused by `validate`.
#[test]
fn out_of_bounds_values_are_refused_at_their_line() {
    let d = project();
    for (from, to, line, field, what) in [
        ("size: 64M", "size: 64Q", 11, "run.workloads[0].size", "bad size \"64Q\""),
        ("size: 64M", "size: -64M", 11, "run.workloads[0].size", "bad size \"-64M\""),
        ("size: 64M", "size: 99999999999999G", 11, "run.workloads[0].size", "bad size"),
        ("size: 64M", "size: 512M", 11, "run.workloads[0].size", "512M is not a multiple of 1M from 1M to 256M"),
        ("size: 64M", "size: 3K", 11, "run.workloads[0].size", "from 1M to 256M"),
        ("seconds: 30", "seconds: 4294967295", 12, "run.workloads[1].seconds", "4294967295 is not from 1 to 3600"),
        ("seconds: 30", "seconds: 0", 12, "run.workloads[1].seconds", "0 is not from 1 to 3600"),
        ("runs: 1", "runs: 4294967295", 13, "run.runs", "4294967295 is not from 1 to 100"),
        ("runs: 1", "runs: 0", 13, "run.runs", "0 is not from 1 to 100"),
        ("passes: 3", "passes: 0", 11, "run.workloads[0].passes", "0 is not from 1 to 20"),
        ("seconds: 30", "seconds: 30, threads: 4000000000", 12, "run.workloads[1].threads", "4000000000 is not from 1 to 16"),
        ("seconds: 30", "seconds: 30, passes: 2", 12, "run.workloads[1].passes", "truncate-during-dio runs for a number of `seconds`"),
        ("run:\n", "run:\n  backends: []\n", 10, "run.backends", "at least one is needed"),
        ("run:\n", "run:\n  mappings: []\n", 10, "run.mappings", "at least one is needed"),
        ("run:\n", "run:\n  backends: [memmap, nvdimm,\n    memmap]\n", 11, "run.backends[2]", "memmap is already listed"),
        ("  runs: 1", "    - { name: dio-read }\n  runs: 1", 13, "run.workloads[2].name", "dio-read is already listed"),
        ("outcome: FAIL", "outcome: FAILED", 15, "expect[0].outcome", "unknown variant `FAILED`"),
        ("kind: HANG", "kind: HUNG", 15, "expect[0].kind", "unknown variant `HUNG`"),
        ("variant: stock, workload", "variant: stok, workload", 15, "expect[0].variant", "no variant is named \"stok\""),
        ("outcome: FAIL", "outcome: PASS", 15, "expect[0].kind", "a kind goes with `outcome: FAIL` only"),
        ("workload: truncate-during-dio,", "workload: vmsplice,", 15, "expect[0].workload", "vmsplice is not in run.workloads"),
        ("outcome: FAIL,", "fs: xfs, outcome: FAIL,", 15, "expect[0].fs", "xfs is not in run.filesystems"),
        ("outcome: FAIL,", "mode: devdax, outcome: FAIL,", 15, "expect[0].mode", "devdax is not in run.modes"),
        ("  runs: 1", "  runs: 1\n  exclude: [{ variant: nope }]", 14, "run.exclude[0].variant", "no variant is named \"nope\""),
    ] {
        says(&refused(&d, &edit(from, to)), line, field, what);
    }
    // A filesystem with devdax selects nothing.
    let text = edit("run:\n", "run:\n  modes: [fsdax, devdax]\n").replace("outcome: FAIL,", "mode: devdax, fs: ext4, outcome: FAIL,");
    says(&refused(&d, &text), 16, "expect[0].fs", "a filesystem selects fsdax cells");
}

#[test]
fn a_matrix_is_bounded() {
    let d = project();
    // 2 backends x (2 filesystems + devdax) x 2 mappings x 11 workloads = 132 cells a variant.
    let all = "run:\n  backends: [memmap, nvdimm]\n  modes: [fsdax, devdax]\n  filesystems: [ext4, xfs]\n  mappings: [pte, pmd]\n  workloads: [{name: dio-read}, {name: dio-write}, {name: truncate-during-dio}, {name: uring-fixed}, {name: uring-dio}, {name: remote-gup}, {name: fork-cow-dio}, {name: unmap-during-dio}, {name: reflink-dio}, {name: vmsplice}, {name: hwpoison}]\n";
    let with = |n: usize| {
        let head = &GOOD[..GOOD.find("variants:").unwrap()];
        let variants: String = (0..n).map(|i| format!("  - {{ name: v{i} }}\n")).collect();
        format!("{head}variants:\n{variants}{all}")
    };
    assert_eq!(ok(&d, &with(31)).cells(&Default::default(), None).len(), 31 * 132);
    says(&refused(&d, &with(32)), 39, "run", "4224 cells per run, more than 4096");
}

/// Point 12: the file itself.
#[test]
fn only_regular_files_of_bounded_size_are_read() {
    let d = project();
    let fifo = d.path().join("scenarios/fifo.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let t = Instant::now();
    for (f, what) in [(fifo.as_path(), "this is a FIFO"), (Path::new("/dev/zero"), "this is a device"), (d.path(), "this is a directory")] {
        let e = load(f).err().unwrap();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().contains(&format!("{}: a scenario is a regular file, {what}", f.display())), "{e}");
    }
    assert!(t.elapsed() < Duration::from_secs(5), "no wait for a writer: {:?}", t.elapsed());
    let big = d.path().join("scenarios/big.yaml");
    std::fs::write(&big, format!("{GOOD}description: {}\n", "x".repeat(1 << 20))).unwrap();
    let e = load(&big).err().unwrap();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(e.to_string().contains("big.yaml: a scenario file holds at most 1048576 bytes"), "{e}");
}

#[test]
fn deep_nesting_is_refused_quickly() {
    let d = project();
    // 200 KB of flow nesting took 27 s in serde_yaml.
    for deep in ["[".repeat(200_000), "{a: ".repeat(50_000)] {
        let t = Instant::now();
        let e = refused(&d, &edit("runs: 1", &format!("runs: {deep}")));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(e.contains("/t.yaml:13: run.runs") && e.contains("nested deeper than 32 levels"), "{e}");
    }
    // Block nesting too.
    let block: String = (0..40).map(|i| format!("{}k{i}:\n", " ".repeat(2 * i))).collect();
    let field: Vec<String> = (0..32).map(|i| format!("k{i}")).collect();
    says(&refused(&d, &format!("{GOOD}{block}")), 47, &field.join("."), "nested deeper than 32 levels");
}

#[test]
fn names_that_become_paths_are_checked() {
    let d = project();
    for bad in ["..", ".", ".hidden", "a/b", "", "a b", "a\nb", "$(reboot)", "-rf"] {
        let q = format!("{bad:?}");
        says(&refused(&d, &edit("name: fixed", &format!("name: {q}"))), 8, "variants[1].name", "is not a name");
        says(&refused(&d, &edit("name: t\n", &format!("name: {q}\n"))), 1, "name", "is not a name");
        says(&refused(&d, &edit("linux-source-6.1", &q)), 3, "kernel.source.debian", "is not a name");
    }
    let long = "a".repeat(65);
    says(&refused(&d, &edit("name: fixed", &format!("name: {long}"))), 8, "variants[1].name", "1 to 64 letters");
    for good in ["deb6.12", "a+b", "linux-source-6.1", "x_y-Z", &"a".repeat(64)] {
        ok(&d, &edit("name: fixed", &format!("name: {good}")));
    }
}

#[test]
fn relative_paths_stay_in_the_project() {
    let d = project();
    let outside = tempfile::NamedTempFile::new().unwrap();
    for (from, to, line, field) in [
        ("fragments: [kernel-configs/a.config]", "fragments: [../x/kernel-configs/a.config]", 5, "kernel.fragments[0]"),
        ("patches: [scenarios/patches/p.patch]", "patches: [scenarios/../../p.patch]", 8, "variants[1].patches[0]"),
        ("base: tinyconfig", "base: ../x.config", 4, "kernel.base"),
        ("{ debian: linux-source-6.1 }", "{ path: ../linux }", 3, "kernel.source.path"),
    ] {
        says(&refused(&d, &edit(from, to)), line, field, "leaves the project directory");
    }
    // Inside after `..`, or absolute: fine.
    ok(&d, &edit("kernel-configs/a.config", "scenarios/../kernel-configs/a.config"));
    let s = ok(&d, &edit("kernel-configs/a.config", outside.path().to_str().unwrap()));
    assert_eq!(s.kernel.fragments[0], outside.path());
}

/// Point 13: the line is the field's, not the first text match.
#[test]
fn errors_point_at_the_field_line() {
    let d = project();
    // An empty variant name said line 1 (the empty string is on every line).
    says(&refused(&d, &edit("name: fixed", "name: \"\"")), 8, "variants[1].name", "is not a name");
    // A duplicate top-level key said line 1.
    says(&refused(&d, &format!("{GOOD}name: u\n")), 16, "name", "duplicate key (first at line 1)");
    // A duplicate key inside a flow mapping.
    says(
        &refused(&d, &edit("{ name: stock, patches: [] }", "{ name: stock, patches: [], name: x }")),
        7,
        "variants[0].name",
        "duplicate key",
    );
    // A missing patch also named in the description said the description's line.
    let text = edit("name: t\n", "name: t\ndescription: fixes what scenarios/patches/q.patch says\n")
        .replace("patches/p.patch]", "patches/q.patch]");
    says(&refused(&d, &text), 9, "variants[1].patches[0]", "no such file: scenarios/patches/q.patch");
    // A source error in the second variant with a source, not the first `source:`.
    let text = edit("{ name: stock, patches: [] }", "{ name: stock, source: { debian: linux-source-6.12 } }");
    let text = text.replace("{ name: fixed, patches: [scenarios/patches/p.patch] }", "{ name: fixed, source: { git: /x } }");
    says(&refused(&d, &text), 8, "variants[1].source", "`git` needs `rev`");
    // A rev on a non-git source, with another `rev:` earlier in the text.
    let text = edit("name: t\n", "name: t\ndescription: \"rev: none\"\n").replace("{ name: fixed,", "{ name: fixed, rev: v1,");
    says(&refused(&d, &text), 9, "variants[1].rev", "only a `git` source");
}

#[test]
fn one_document_per_file_at_the_second_marker() {
    let d = project();
    let e = refused(&d, &format!("{GOOD}---\nname: u\n"));
    assert!(e.contains("t.yaml:16: one YAML document per file"), "{e}");
    let e = refused(&d, &format!("---\n{GOOD}--- {{ name: u }}\n"));
    assert!(e.contains("t.yaml:17: one YAML document per file"), "{e}");
    // An explicit first document, or an end marker, is still one document.
    ok(&d, &format!("---\n{GOOD}...\n"));
}

#[test]
fn encoding_errors_name_their_line_and_a_bom_is_accepted() {
    let d = project();
    let f = file(&d);
    let mut bytes = GOOD.as_bytes().to_vec();
    let at = GOOD.find("base: tinyconfig").unwrap() + "base: ".len();
    bytes.insert(at, 0xff);
    std::fs::write(&f, &bytes).unwrap();
    let e = load(&f).err().unwrap();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(e.to_string().contains("t.yaml:4: invalid UTF-8 at column 9"), "{e}");
    std::fs::write(&f, format!("\u{feff}{GOOD}")).unwrap();
    let s = load(&f).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.name, "t");
    // And a syntax error still has libyaml's line.
    let e = refused(&d, &edit("  base: tinyconfig\n", "  base: tinyconfig\n  - x\n"));
    assert!(e.contains("t.yaml:5: did not find expected key"), "{e}");
}

fn kregress(args: &[&str], dir: &Path) -> (i32, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_kregress")).args(args).current_dir(dir).env("KREGRESS_CACHE", dir.join("cache")).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn validate_and_run_exit_2_before_anything_runs() {
    let d = project();
    std::fs::write(file(&d), edit("seconds: 30", "seconds: 4294967295")).unwrap();
    for cmd in ["validate", "run", "build"] {
        let (code, err) = kregress(&[cmd, "scenarios/t.yaml"], d.path());
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(err.contains("scenarios/t.yaml:12: run.workloads[1].seconds: 4294967295 is not from 1 to 3600"), "{cmd}: {err}");
    }
    assert!(!d.path().join("results").exists(), "nothing written");
    std::fs::write(file(&d), GOOD).unwrap();
    let (code, err) = kregress(&["run", "scenarios/t.yaml", "--runs", "4294967295"], d.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--runs: 4294967295 is not from 1 to 100"), "{err}");
}

/// `validate` says how big the matrix is: cells, and the boots they share
/// (a boot runs every workload of one variant/backend/fs/mapping/run).
#[test]
fn validate_counts_cells_and_boots() {
    let d = project();
    std::fs::write(file(&d), GOOD).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kregress"))
        .args(["validate", "scenarios/t.yaml"])
        .current_dir(d.path())
        .env("KREGRESS_CACHE", d.path().join("cache"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // 2 variants x 2 workloads; dio-read runs in icount timing and
    // truncate-during-dio in wall timing, which never share a boot.
    assert!(text.contains("2 variant(s): stock, fixed; 4 cell(s) in 4 boot(s)"), "{text}");
    std::fs::write(file(&d), edit("seconds: 30 }", "seconds: 30, timing: icount }")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kregress")).args(["validate", "scenarios/t.yaml"]).current_dir(d.path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("; 4 cell(s) in 2 boot(s)"), "{text}");
}

/// `build --export` into a directory that is no export is refused before
/// any build (with the empty cache here, a build would unpack the source).
#[test]
fn build_export_into_a_foreign_directory_exits_2_before_building() {
    let d = project();
    std::fs::write(file(&d), GOOD).unwrap();
    std::fs::create_dir_all(d.path().join("out")).unwrap();
    std::fs::write(d.path().join("out/notes.txt"), "mine").unwrap();
    let (code, err) = kregress(&["build", "scenarios/t.yaml", "--export", "out"], d.path());
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim(), "kregress: --export out: not empty and holds no kernels.json: give a new or empty directory");
    assert!(!d.path().join("cache/sources").exists(), "a build began");
    assert_eq!(std::fs::read_to_string(d.path().join("out/notes.txt")).unwrap(), "mine");
}
