//! LAVA: kregress's boots as LAVA job definitions, run by lava-dispatcher
//! (`lava-run`, locally) or by a lab (its REST API), and read back into an
//! ordinary run directory by kregress's own pipeline.
//!
//! One job is one boot ([`crate::run::boot_groups`], planned by
//! [`crate::run::plan_boot`]: the same QEMU arguments, nonce and deadlines a
//! local boot has): device type `qemu`, kernel and initramfs deployed to
//! tmpfs, boot method `qemu`, and a test action whose `monitors` entry waits
//! for the agent's hello line and ends at its done line, one test case per
//! workload result. What LAVA says of the job (a kernel panic is an
//! infrastructure error, a failed test case a passing job) is recorded in
//! `lava.json`, never used to judge: the job's log is read back
//! ([`read_log`]), its console fed line by line into the same
//! [`crate::run::Watcher`] a local boot uses, and judged by `run::judge`.

use crate::error::{bad_input, infra, Context, Result};
use crate::kernel::KernelArtifact;
use crate::outcome::Outcome;
use crate::results::{self, CellResult, RunRecord};
use crate::run::{self, BootPlan};
use crate::scenario::{Cell, Filter, Scenario};
use crate::vm::{self, Accel, Control, Exit};
use serde::Deserialize;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the jobs go once written.
#[derive(Debug, Clone)]
pub enum Target {
    /// Written only.
    Write,
    /// Each run here by `lava-run`, no server.
    Local,
    /// Each submitted to the lab at `url` (`https://lava.example.org`) with an API token.
    Submit {
        /// The lab's base URL.
        url: String,
        /// The user's API token.
        token: String,
    },
}

/// The options of `kregress lava`.
#[derive(Debug, Clone)]
pub struct LavaOpts {
    /// The cells, as `run --only`.
    pub only: Filter,
    /// Runs per cell (default: the scenario's).
    pub runs: Option<u32>,
    /// Where the jobs, jobs.json and the artifacts go.
    pub out: PathBuf,
    /// Artifacts as `BASE/<kernel key>/bzImage` and `BASE/<initramfs key>/initramfs.cpio.gz`
    /// (copied into `out/artifacts/`) instead of file:// URLs.
    pub artifact_url: Option<String>,
    /// What happens to the jobs.
    pub target: Target,
    /// Where runs are stored (`--local`, `--submit`).
    pub results_root: PathBuf,
}

/// The options the lab's `qemu` device type (lava-server's qemu.jinja2,
/// x86_64, `no_kvm: true`) puts before a job's `extra_options`; `--local`
/// runs with a device dictionary that adds exactly these. `{memory}` is the
/// job context's `memory`.
const DEVICE_OPTIONS: [&str; 4] =
    ["-nographic", "-net nic,model=virtio,macaddr=52:54:00:12:34:58 -net user", "-m {memory}", "-monitor none"];

/// QEMU options the device type or the deploy action give: not carried in `extra_options`.
const NOT_EXTRA: [&str; 4] = ["-monitor", "-kernel", "-initrd", "-append"];

/// Seconds the deploy action may take (two local copies or downloads).
const DEPLOY_S: u64 = 300;

/// The largest job log read back (a WARN storm's console, YAML-quoted, is ~2x its 34 MB).
pub const LOG_MAX: u64 = 256 << 20;

/// One job: a boot of `cells`.
struct Job {
    id: String,
    cells: Vec<Cell>,
    plan: BootPlan,
    /// `out/jobs/<id>`: job.yaml, and what running it leaves.
    dir: PathBuf,
}

/// The job's QEMU context: (memory in MiB, extra_options), from the boot's
/// arguments less what the device type and the deploy action add. Each
/// option is one string with its value, as a lab's device dictionary
/// renders them; LAVA joins them with spaces and splits the line again
/// without a shell, so no argument may hold a space or a quote.
fn qemu_context(args: &[String]) -> Result<(u64, Vec<String>)> {
    let mut memory = None;
    let mut extra = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let opt = &args[i];
        let value = (!vm::FLAGS.contains(&opt.as_str())).then(|| args.get(i + 1)).flatten();
        i += if value.is_some() { 2 } else { 1 };
        if opt == "-m" {
            // `-m 1G,slots=2,maxmem=4G`: the size for the device type's own -m,
            // the whole option again after it (QEMU merges the two).
            let v = value.map(String::as_str).unwrap_or("");
            let size = v.split(',').next().unwrap_or("");
            let mib = match size.strip_suffix('G') {
                Some(g) => g.parse::<u64>().ok().map(|g| g * 1024),
                None => size.trim_end_matches('M').parse().ok(),
            };
            memory = Some(mib.ok_or_else(|| infra(format!("-m {v}: not a size in M or G")))?);
            if v == size {
                continue;
            }
        } else if NOT_EXTRA.contains(&opt.as_str()) {
            continue;
        }
        for a in std::iter::once(opt).chain(value) {
            if a.contains(|c: char| c.is_whitespace() || "\"'\\".contains(c)) {
                return Err(bad_input(format!("QEMU argument {a:?} holds a space or a quote: LAVA would split it")));
            }
        }
        extra.push(value.map_or(opt.clone(), |v| format!("{opt} {v}")));
    }
    Ok((memory.ok_or_else(|| infra("the boot's QEMU arguments have no -m"))?, extra))
}

/// The boot's kernel command line (`-append`), refused when LAVA's split
/// of the QEMU command (pexpect's, no shell) would cut it: it may hold no
/// `"`, `'` or `\`.
fn cmdline(args: &[String]) -> Result<&str> {
    let c = args.iter().position(|a| a == "-append").and_then(|i| args.get(i + 1)).ok_or_else(|| infra("no -append"))?;
    if let Some(q) = c.chars().find(|c| "\"'\\".contains(*c)) {
        return Err(bad_input(format!(
            "the kernel command line holds {q:?}, which LAVA's QEMU command (split without a shell) cannot carry: {}",
            c.chars().take(200).collect::<String>()
        )));
    }
    Ok(c)
}

/// The regex of the agent's line of `kind` in the boot bound to `nonce`
/// (see `kregress_agent::protocol`).
fn agent_line(nonce: &str, kind: &str) -> String {
    format!(r#"{}{nonce} \{{"type":"{kind}""#, kregress_agent::protocol::MARKER)
}

/// LAVA's `{seconds: N}`.
fn secs(n: u64) -> serde_json::Value {
    serde_json::json!({ "seconds": n })
}

/// The job definition (YAML) of `job` with its kernel and initramfs at these URLs.
fn definition(job: &Job, kernel_url: &str, initrd_url: &str, lab: bool) -> Result<String> {
    let b = &job.plan.boot;
    let (memory, mut extra) = qemu_context(&b.qemu_args)?;
    if lab {
        extra = extra.iter().map(|o| lab_nvdimm(o)).collect();
    }
    let append = cmdline(&b.qemu_args)?;
    let nonce = &job.plan.cfg.nonce;
    // The longest silence the test action waits through: a whole boot, or a
    // workload's run (only hello, results and done match its patterns).
    let silent = b.boot_deadline_s.max(b.run_deadline_s);
    let test = b.boot_deadline_s + b.run_deadline_s;
    let names: Vec<&str> = job.cells.iter().map(|c| c.workload.name.as_str()).collect();
    let v = serde_json::json!({
        "device_type": "qemu",
        "job_name": format!("kregress {} {} {} ({})", job.cells[0].variant, job.cells[0].key().axes(), names.join(","), job.id),
        "priority": "medium",
        "visibility": "public",
        "context": { "arch": "x86_64", "no_kvm": true, "memory": memory, "extra_options": extra },
        "timeouts": {
            "job": secs(DEPLOY_S + test + silent + 120),
            "action": secs(test),
            "connection": secs(silent),
            "actions": { "power-off": secs(30) },
        },
        "actions": [
            { "deploy": {
                "to": "tmpfs",
                "timeout": secs(DEPLOY_S),
                "images": {
                    "kernel": { "url": kernel_url, "image_arg": format!("-kernel {{kernel}} -append \"{append}\"") },
                    "initrd": { "url": initrd_url, "image_arg": "-initrd {initrd}" },
                },
            }},
            // No prompts and no shell: the boot action ends once QEMU runs;
            // its timeout is above the longest silence all the same.
            { "boot": { "method": "qemu", "media": "tmpfs", "timeout": secs(silent + 60) } },
            { "test": {
                "timeout": secs(test),
                "monitors": [{
                    "name": "kregress",
                    "start": agent_line(nonce, "hello"),
                    "end": agent_line(nonce, "done"),
                    "pattern": format!(r#"{},"name":"(?P<test_case_id>[^"]+)","outcome":"(?P<result>[A-Z]+)""#, agent_line(nonce, "workload_result")),
                    "fixupdict": { "PASS": "pass", "FAIL": "fail", "SKIP": "skip", "MISS": "unknown" },
                }],
            }},
        ],
    });
    serde_yaml::to_string(&v).map_err(|e| infra(format!("writing job {}: {e}", job.id)))
}

/// A lab's worker has none of this machine's files: an NVDIMM's backing
/// file becomes a directory every Linux worker has (`/var/tmp`; QEMU then
/// backs the NVDIMM with a file of its own there, deleted at once). Unlike
/// `--local`'s files it is not reserved first: a worker whose disk fills
/// up may SIGBUS the guest. Any other option is returned as it is.
fn lab_nvdimm(option: &str) -> String {
    let Some(at) = option.find("mem-path=") else { return option.to_string() };
    let end = option[at..].find(",size=").map_or(option.len(), |e| at + e);
    format!("{}mem-path={LAB_NVDIMM_DIR}{}", &option[..at], &option[end..])
}

/// Where a lab worker's QEMU backs NVDIMMs ([`lab_nvdimm`]).
const LAB_NVDIMM_DIR: &str = "/var/tmp";

/// The device dictionary `--local` runs with: what a lab's `qemu` device
/// type renders for x86_64 from the job's context ([`DEVICE_OPTIONS`], then
/// `extra_options`).
fn device_dictionary(memory: u64, extra: &[String]) -> Result<String> {
    let options: Vec<String> = DEVICE_OPTIONS.iter().map(|o| o.replace("{memory}", &memory.to_string())).collect();
    let v = serde_json::json!({
        "constants": {
            "kernel-start-message": "Linux version [0-9]",
            "shutdown-message": "The system is going down for reboot NOW",
            "default-shell-prompt": "lava-test: # ",
            "spawn_maxread": "4092",
            "failure_retry": 1,
            "boot_retry": null,
            "posix": { "lava_test_sh_cmd": "/bin/sh", "lava_test_results_dir": "/lava-%s", "lava_test_shell_file": "~/.bashrc" },
        },
        "parameters": {},
        "available_architectures": ["x86_64", "amd64"],
        "actions": {
            "deploy": { "connections": { "serial": null }, "methods": { "image": null } },
            "boot": {
                "connections": { "serial": null },
                "methods": { "qemu": { "parameters": { "command": "qemu-system-x86_64", "options": options, "extra": extra } } },
            },
        },
        "timeouts": { "actions": {}, "connections": {} },
    });
    serde_yaml::to_string(&v).map_err(|e| infra(format!("writing the device dictionary: {e}")))
}

/// What a job's log says: the guest's console and LAVA's own verdict.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct LavaLog {
    /// The console (lines logged as `target` or `feedback`, LAVA's `\"`
    /// undone), each with its seconds since the log began.
    #[serde(skip)]
    pub(crate) console: Vec<(f64, String)>,
    /// The QEMU command LAVA ran, and when (seconds since the log began).
    pub(crate) boot_command: Option<String>,
    #[serde(skip)]
    pub(crate) qemu_at: Option<f64>,
    /// The job's result (`pass`, `fail`), and for a failed job LAVA's error.
    pub(crate) result: Option<String>,
    pub(crate) error_type: Option<String>,
    pub(crate) error_msg: Option<String>,
    /// LAVA says an action timed out.
    pub(crate) timed_out: bool,
    /// From the first log line to the last.
    pub(crate) seconds: f64,
    /// Lines that were not a log entry (a log cut short, say): skipped.
    pub(crate) unreadable_lines: u64,
}

/// One line of a LAVA job log: `{"dt": ..., "lvl": ..., "msg": ...}`, a
/// YAML flow mapping (a lab's log API puts `- ` before it).
#[derive(Deserialize)]
struct Entry {
    dt: String,
    lvl: String,
    msg: serde_yaml::Value,
}

/// Undoes LAVA's one escape of console text: it writes every `"` as `\"`
/// (and nothing else: a `\` stays as it was), so each `\"` is one `"`.
fn unescape(msg: &str) -> String {
    msg.replace("\\\"", "\"")
}

/// Reads a job log of at most `max` bytes ([`LOG_MAX`]; `what` names it in errors).
pub(crate) fn read_log(r: impl std::io::Read, what: &str, max: u64) -> Result<LavaLog> {
    let mut log = LavaLog::default();
    let mut first: Option<std::time::SystemTime> = None;
    let mut at = 0.0;
    let mut r = std::io::BufReader::new(r.take(max + 1));
    let mut buf = Vec::new();
    let mut total = 0u64;
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf).context(|| format!("reading {what}"))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > max {
            return Err(infra(format!("{what}: larger than {max} bytes: not read")));
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end();
        let text = text.strip_prefix("- ").unwrap_or(text);
        if text.is_empty() {
            continue;
        }
        let Ok(e) = serde_yaml::from_str::<Entry>(text) else {
            log.unreadable_lines += 1;
            continue;
        };
        if let Ok(t) = humantime::parse_rfc3339_weak(&e.dt) {
            let t0 = *first.get_or_insert(t);
            at = t.duration_since(t0).unwrap_or_default().as_secs_f64();
        }
        log.seconds = at;
        match (e.lvl.as_str(), &e.msg) {
            ("target" | "feedback", serde_yaml::Value::String(m)) => log.console.push((at, unescape(m))),
            ("info", serde_yaml::Value::String(m)) if m.starts_with("Boot command: ") => {
                log.boot_command = Some(m["Boot command: ".len()..].to_string());
                log.qemu_at = Some(at);
            }
            ("results", serde_yaml::Value::Mapping(m)) if m.get("case").and_then(|c| c.as_str()) == Some("job") => {
                let field = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_string);
                (log.result, log.error_type, log.error_msg) = (field("result"), field("error_type"), field("error_msg"));
            }
            (_, serde_yaml::Value::String(m)) if m.contains("timed out") => log.timed_out = true,
            _ => {}
        }
    }
    if log.error_msg.as_deref().is_some_and(|m| m.contains("timed out")) {
        log.timed_out = true;
    }
    Ok(log)
}

/// The `cells` of a job that booted `boot` with `nonce`, judged from its `log`, in `run_dir` as a local boot
/// leaves them (console.log rebuilt from the log, agent.jsonl, boot.json,
/// qemu.cmdline: LAVA's command), and the cells the boot did not get to
/// judge (after a failure: a new job). A job whose log holds no console
/// (LAVA failed before QEMU started) makes every cell MISS with LAVA's error.
fn read_back(
    cells: &[Cell],
    boot: &results::BootRecord,
    nonce: &str,
    log: &LavaLog,
    run_dir: &Path,
) -> Result<(Vec<CellResult>, Vec<Cell>)> {
    let dir = results::cell_dir(run_dir, &cells[0]);
    std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
    let now = Instant::now();
    let started = now.checked_sub(Duration::from_secs_f64(log.seconds)).unwrap_or(now);
    let mut w = run::Watcher::new(boot, nonce, &dir, started)?;
    let path = dir.join("console.log");
    let mut console = crate::console::Log::create(&path).context(|| format!("creating {}", path.display()))?;
    let (mut hello, mut done, mut stopped) = (None, false, false);
    for (t, line) in &log.console {
        console.write(line.as_bytes()).and_then(|_| console.write(b"\n")).context(|| format!("writing {}", path.display()))?;
        // After a stop the guest is tainted: its console is kept, not judged.
        if stopped {
            continue;
        }
        match w.line(line, started + Duration::from_secs_f64(*t)) {
            Control::Booted => hello = hello.or(Some(*t)),
            Control::Finished => done = true,
            Control::Stop => stopped = true,
            _ => {}
        }
    }
    console.finish().context(|| format!("writing {}", path.display()))?;
    let exit = match (stopped, done, log.timed_out, hello) {
        (true, ..) => Exit::Stopped,
        (_, true, ..) => Exit::Exited,
        (_, _, true, Some(_)) => Exit::RunTimeout,
        (_, _, true, None) => Exit::BootTimeout,
        _ => Exit::Exited,
    };
    let r = vm::VmRun {
        exit,
        seconds: log.seconds,
        hello_seconds: hello.map(|h| h - log.qemu_at.unwrap_or(0.0)),
        console: path,
        cmdline: log.boot_command.clone().unwrap_or_else(|| "(LAVA started no QEMU)".into()),
    };
    let mut seen = w.finish(r)?;
    let (mut res, rest) = run::judge_boot(cells, run_dir, &dir, &mut seen)?;
    if log.console.is_empty() {
        let why = log.error_msg.clone().unwrap_or_else(|| "the job log ends before the kernel booted".into());
        for r in &mut res {
            r.problems.extend(r.title.take());
            (r.outcome, r.kind, r.title) = (Outcome::Miss, None, Some(format!("LAVA failed before the kernel booted: {why}")));
            results::save_cell(&results::cell_dir(run_dir, &cells[res_index(cells, r)]), r)?;
        }
    }
    Ok((res, rest))
}

/// The index in `cells` of the cell `r` is the result of.
fn res_index(cells: &[Cell], r: &CellResult) -> usize {
    cells.iter().position(|c| c.key() == r.key()).unwrap_or(0)
}

/// Where a job's kernel and initramfs are fetched from.
struct Artifacts {
    /// `--artifact-url`: the base URL that serves `out/artifacts/`.
    base: Option<String>,
    out: PathBuf,
    initrd: PathBuf,
    initrd_key: String,
    /// The jobs run at a lab (written or submitted), not on this machine.
    lab: bool,
}

impl Artifacts {
    /// The URL of `file` (`name` under `key` with `--artifact-url`, copied there; file:// else).
    fn url(&self, file: &Path, key: &str, name: &str) -> Result<String> {
        let Some(base) = &self.base else {
            let abs = std::fs::canonicalize(file).context(|| format!("resolving {}", file.display()))?;
            return Ok(format!("file://{}", abs.display()));
        };
        let dir = self.out.join("artifacts").join(key);
        std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        let to = dir.join(name);
        if !to.is_file() {
            std::fs::copy(file, &to).context(|| format!("copying {} to {}", file.display(), to.display()))?;
        }
        Ok(format!("{}/{key}/{name}", base.trim_end_matches('/')))
    }
}

/// Plans a boot of `cells` as a new job in `out/jobs/<id>` and writes its job.yaml.
fn new_job(cells: Vec<Cell>, k: &KernelArtifact, a: &Artifacts, panic_on_warn: bool) -> Result<Job> {
    let id = format!("kregress-{}", run::boot_nonce()?);
    let dir = a.out.join("jobs").join(&id);
    std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
    let plan = run::plan_boot(&cells, k, &a.initrd, Accel::Tcg, &dir, panic_on_warn)?;
    let job = Job { id, cells, plan, dir };
    let yaml = definition(&job, &a.url(&k.bzimage, &k.key, "bzImage")?, &a.url(&a.initrd, &a.initrd_key, "initramfs.cpio.gz")?, a.lab)?;
    crate::cache::write_atomic(&job.dir.join("job.yaml"), yaml.as_bytes())?;
    Ok(job)
}

/// Runs `job` with `lava-run` (a child of kregress's, see [`crate::proc`]),
/// its log (stderr) kept as the job's log.yaml, and reads the log.
fn run_local(job: &Job) -> Result<LavaLog> {
    let b = &job.plan.boot;
    let (memory, extra) = qemu_context(&b.qemu_args)?;
    let d = &job.dir;
    crate::cache::write_atomic(&d.join("device.yaml"), device_dictionary(memory, &extra)?.as_bytes())?;
    crate::cache::write_atomic(&d.join("dispatcher.yaml"), format!("dispatcher_download_dir: {}\n", d.join("dl").display()).as_bytes())?;
    let nvdimm = job.plan.spec.backend == vm::Backend::Nvdimm;
    if nvdimm {
        vm::make_nvdimm_files(&job.plan.spec.workdir)?;
    }
    let log = d.join("log.yaml");
    let open = |p: &Path| std::fs::File::create(p).context(|| format!("creating {}", p.display()));
    let mut cmd = std::process::Command::new("lava-run");
    cmd.arg("--job-id").arg(&job.id).arg("--output-dir").arg(d.join("out"));
    cmd.arg("--device").arg(d.join("device.yaml")).arg("--dispatcher").arg(d.join("dispatcher.yaml")).arg(d.join("job.yaml"));
    cmd.stdin(std::process::Stdio::null()).stdout(open(&d.join("lava-run.out"))?).stderr(open(&log)?);
    // LAVA's own timeouts end the job; this is the backstop past them.
    let limit = Duration::from_secs(DEPLOY_S + 2 * (b.boot_deadline_s + b.run_deadline_s) + 300);
    let mut g = crate::proc::Guard::spawn(&mut cmd, Some(limit))
        .map_err(|e| infra(format!("{} (is lava-dispatcher installed? scripts/install-deps installs it)", e.msg)))?;
    drop(cmd);
    let waited = g.wait();
    if nvdimm {
        let _ = std::fs::remove_dir_all(&job.plan.spec.workdir);
    }
    let _ = std::fs::remove_dir_all(d.join("dl"));
    match waited {
        // lava-run exits 1 for a failed job: LAVA's verdict, read from the log.
        Ok(_) => {}
        Err(e) if crate::proc::expired(&e) => eprintln!("{}: {e}", job.id),
        Err(e) => return Err(e),
    }
    read_log(std::fs::File::open(&log).context(|| format!("opening {}", log.display()))?, &log.display().to_string(), LOG_MAX)
}

/// LAVA's REST API (v0.2) at a lab: submit a job, wait for it, fetch its log.
pub(crate) struct Lab {
    base: String,
    auth: String,
    agent: ureq::Agent,
    /// Between two polls of a job's state.
    pub(crate) poll_every: Duration,
}

impl Lab {
    /// The lab at `url` (e.g. `https://lava.example.org`), with an API token.
    pub(crate) fn new(url: &str, token: &str) -> Lab {
        let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(30)).timeout(Duration::from_secs(120)).build();
        Lab { base: url.trim_end_matches('/').to_string(), auth: format!("Token {token}"), agent, poll_every: Duration::from_secs(15) }
    }

    fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Result<ureq::Response> {
        let url = format!("{}/api/v0.2/{path}", self.base);
        let req = self.agent.request(method, &url).set("Authorization", &self.auth);
        let r = match body {
            Some(b) => req.set("Content-Type", "application/json").send_string(&b.to_string()),
            None => req.call(),
        };
        r.map_err(|e| match e {
            ureq::Error::Status(code, r) => {
                // One line: a lab's error page is HTML over many lines.
                let body = r.into_string().unwrap_or_default();
                let text: String = body.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(300).collect();
                infra(format!("{method} {url}: HTTP {code}: {}", crate::text::visible(&text)))
            }
            e => infra(format!("{method} {url}: {e}")),
        })
    }

    fn json(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Result<serde_json::Value> {
        let r = self.call(method, path, body)?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(r.into_reader(), 1 << 20), &mut text)
            .context(|| format!("reading {path}"))?;
        serde_json::from_str(&text).map_err(|e| infra(format!("{}/api/v0.2/{path}: not JSON: {e}", self.base)))
    }

    /// Submits `definition`, waits up to `limit` for the job to finish and
    /// reads its log (at most [`LOG_MAX`] bytes).
    pub(crate) fn run(&self, definition: &str, limit: Duration) -> Result<(u64, LavaLog)> {
        let r = self.json("POST", "jobs/", Some(serde_json::json!({ "definition": definition })))?;
        let id =
            r["job_ids"].get(0).and_then(|i| i.as_u64()).ok_or_else(|| infra(format!("{}: the lab gave no job id: {r}", self.base)))?;
        // Until it finishes, the job is ours to cancel: on an error, a
        // timeout, or Ctrl-C (proc's interrupt hook), never left running.
        let pending = (self.base.clone(), self.auth.clone(), id);
        pending_jobs().push(pending.clone());
        crate::proc::on_interrupt(cancel_pending);
        let waited = self.wait(id, limit);
        pending_jobs().retain(|p| *p != pending);
        if let Err(e) = waited {
            self.cancel(id);
            return Err(e);
        }
        let r = self.call("GET", &format!("jobs/{id}/logs/"), None)?;
        Ok((id, read_log(r.into_reader(), &format!("{}/api/v0.2/jobs/{id}/logs/", self.base), LOG_MAX)?))
    }

    /// Polls job `id` until it is Finished. A poll that fails (the lab's
    /// web server restarting, a 503) is tried again, up to [`POLL_TRIES`]
    /// times in a row.
    fn wait(&self, id: u64, limit: Duration) -> Result<()> {
        let started = Instant::now();
        let mut failed = 0;
        loop {
            match self.json("GET", &format!("jobs/{id}/"), None) {
                Ok(j) if j["state"] == "Finished" => return Ok(()),
                Ok(j) => {
                    failed = 0;
                    if started.elapsed() > limit {
                        return Err(infra(format!(
                            "{}: job {id} not finished after {} s (state {})",
                            self.base,
                            limit.as_secs(),
                            j["state"]
                        )));
                    }
                }
                Err(e) => {
                    failed += 1;
                    if failed >= POLL_TRIES {
                        return Err(infra(format!("{} (job {id}, {failed} polls in a row failed)", e.msg)));
                    }
                    eprintln!("job {id}: {} (poll {failed} of {POLL_TRIES} failed, trying again)", e.msg);
                }
            }
            std::thread::sleep(self.poll_every);
        }
    }

    /// Asks the lab to cancel job `id` (best effort: said, not checked).
    fn cancel(&self, id: u64) {
        match self.call("GET", &format!("jobs/{id}/cancel/"), None) {
            Ok(_) => eprintln!("{}: job {id}: cancel requested", self.base),
            Err(e) => eprintln!("{}: job {id} could not be cancelled: {}", self.base, e.msg),
        }
    }
}

/// Polls of a job's state that may fail in a row before kregress gives up on it.
const POLL_TRIES: u32 = 8;

/// Lab jobs submitted and not yet finished: (lab, authorization, job id).
fn pending_jobs() -> std::sync::MutexGuard<'static, Vec<(String, String, u64)>> {
    static PENDING: std::sync::Mutex<Vec<(String, String, u64)>> = std::sync::Mutex::new(Vec::new());
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ctrl-C: cancel every lab job still running (each request bounded to 10 s).
fn cancel_pending() {
    let jobs = pending_jobs().clone();
    for (base, auth, id) in jobs {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
        let lab = Lab { base, auth, agent, poll_every: Duration::ZERO };
        lab.cancel(id);
    }
}

/// A lab or artifact URL: http(s), with a host, and nothing LAVA's YAML or a shell would mangle.
fn check_url(flag: &str, u: &str) -> Result<()> {
    let host = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://")).unwrap_or("");
    if host.is_empty() || host.starts_with('/') || u.contains(|c: char| c.is_whitespace() || c.is_control() || "\"'\\".contains(c)) {
        return Err(bad_input(format!("{flag} {u:?}: not an http:// or https:// URL")));
    }
    Ok(())
}

/// One job in jobs.json.
#[derive(serde::Serialize)]
struct JobEntry {
    id: String,
    definition: PathBuf,
    nonce: String,
    cells: Vec<String>,
    boot_deadline_s: u64,
    run_deadline_s: u64,
}

fn entry(j: &Job, out: &Path) -> JobEntry {
    JobEntry {
        id: j.id.clone(),
        definition: j.dir.join("job.yaml").strip_prefix(out).map(Path::to_path_buf).unwrap_or_else(|_| j.dir.join("job.yaml")),
        nonce: j.plan.cfg.nonce.clone(),
        cells: j.cells.iter().map(|c| c.key().id()).collect(),
        boot_deadline_s: j.plan.boot.boot_deadline_s,
        run_deadline_s: j.plan.boot.run_deadline_s,
    }
}

fn save_index(out: &Path, s: &Scenario, jobs: &[JobEntry]) -> Result<()> {
    let v = serde_json::json!({ "scenario": s.name, "scenario_file": s.file, "jobs": jobs });
    crate::cache::write_atomic(&out.join("jobs.json"), &serde_json::to_vec_pretty(&v).unwrap())
}

/// `kregress lava`: writes the jobs of the selected cells (and jobs.json);
/// with [`Target::Local`] or [`Target::Submit`] runs each and returns the
/// run it made, judged by kregress.
pub fn run(s: &Scenario, opts: &LavaOpts) -> Result<Option<RunRecord>> {
    if let Some(u) = &opts.artifact_url {
        check_url("--artifact-url", u)?;
    }
    if let Target::Submit { url, .. } = &opts.target {
        check_url("--submit", url)?;
    }
    let cells = s.cells(&opts.only, opts.runs);
    if cells.is_empty() {
        return Err(bad_input(format!("{}: the filter selects no cell", s.file.display())));
    }
    let todo: Vec<&Cell> = cells.iter().collect();
    let mut kernel_records = Default::default();
    let kernels = run::build_kernels(s, &todo, None, &mut kernel_records)?;
    let image = crate::image::build(&crate::image::ImageOptions::default())?;
    std::fs::create_dir_all(&opts.out).context(|| format!("creating {}", opts.out.display()))?;
    let a = Artifacts {
        base: opts.artifact_url.clone(),
        out: opts.out.clone(),
        initrd: image.path.clone(),
        initrd_key: image.key.clone(),
        lab: !matches!(opts.target, Target::Local),
    };
    let mut rec = match opts.target {
        Target::Write => None,
        _ => Some(run::new_record(s, &opts.results_root)?),
    };
    let (mut jobs, mut index) = (std::collections::VecDeque::new(), Vec::new());
    for g in run::boot_groups(&todo) {
        match (&kernels[&g[0].variant], rec.as_mut()) {
            (Ok(k), _) => {
                let j = new_job(g, k, &a, s.run.panic_on_warn)?;
                index.push(entry(&j, &opts.out));
                jobs.push_back(j);
            }
            (Err(msg), Some(rec)) => rec.cells.extend(g.iter().map(|c| run::build_error(c, msg, &rec.results_dir))),
            (Err(msg), None) => return Err(crate::error::kernel(format!("variant {}: {msg}", g[0].variant))),
        }
    }
    save_index(&opts.out, s, &index)?;
    let Some(mut rec) = rec else {
        for j in &index {
            println!("{}: {} ({})", j.id, opts.out.join(&j.definition).display(), j.cells.join(", "));
        }
        println!("{} job(s); jobs.json in {}", index.len(), opts.out.display());
        return Ok(None);
    };
    rec.kernels = kernel_records;
    rec.only = opts.only.clone();
    rec.host = run::host_info(Accel::Tcg);
    results::save(&rec)?;
    let total = cells.len();
    while let Some(job) = jobs.pop_front() {
        eprintln!(
            "{}: {} ({})",
            job.id,
            job.cells[0].key().axes(),
            job.cells.iter().map(|c| c.workload.name.as_str()).collect::<Vec<_>>().join(", ")
        );
        let started = Instant::now();
        let (lab_id, log) = match &opts.target {
            Target::Submit { url, token } => {
                let b = &job.plan.boot;
                // Queueing at the lab, then the job's own timeouts.
                let limit = Duration::from_secs(3600 + DEPLOY_S + 2 * (b.boot_deadline_s + b.run_deadline_s));
                let yaml = std::fs::read_to_string(job.dir.join("job.yaml")).context(|| format!("reading {}", job.id))?;
                let (id, log) = Lab::new(url, token).run(&yaml, limit)?;
                (Some(id), log)
            }
            _ => (None, run_local(&job)?),
        };
        let lava = serde_json::json!({ "job": job.id, "lab_job_id": lab_id, "wall_seconds": started.elapsed().as_secs_f64(), "lava": log });
        crate::cache::write_atomic(&job.dir.join("lava.json"), &serde_json::to_vec_pretty(&lava).unwrap())?;
        let (res, rest) = read_back(&job.cells, &job.plan.boot, &job.plan.cfg.nonce, &log, &rec.results_dir)?;
        for r in res {
            eprintln!("{}", run::progress_line(rec.cells.len() + 1, total, &r));
            rec.cells.push(r);
            results::save(&rec)?;
        }
        if !rest.is_empty() {
            let k = kernels[&rest[0].variant].as_ref().map_err(|m| infra(m.clone()))?;
            let j = new_job(rest, k, &a, s.run.panic_on_warn)?;
            index.push(entry(&j, &opts.out));
            save_index(&opts.out, s, &index)?;
            jobs.push_front(j);
        }
    }
    rec.cells.sort_by_key(|c| cells.iter().position(|x| x.key() == c.key()).unwrap_or(usize::MAX));
    results::save(&rec)?;
    Ok(Some(rec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Backend, Fs, Mapping, Mode, Timing, Workload};

    const NONCE: &str = "5f0c8a2e9b1d7c43";

    fn cell(workload: &str) -> Cell {
        Cell {
            variant: "stock".into(),
            backend: Backend::Memmap,
            mode: Mode::Fsdax,
            fs: Fs::Ext4,
            mapping: Mapping::Pte,
            workload: serde_yaml::from_str::<Workload>(&format!("{{ name: {workload} }}")).unwrap(),
            run: 1,
            timing: Timing::Wall,
        }
    }

    fn boot(workloads: &[&str]) -> results::BootRecord {
        let file = results::FileRecord { path: "/k".into(), sha256: "0".repeat(64) };
        results::BootRecord {
            qemu_args: vec![],
            bzimage: file.clone(),
            initramfs: file.clone(),
            config: file,
            boot_deadline_s: 180,
            run_deadline_s: 600,
            workloads: workloads.iter().map(|w| w.to_string()).collect(),
        }
    }

    /// A job log as lava-run writes it (lava_common.log: a YAML flow mapping
    /// per line, double-quoted), the console lines escaped as LAVA's
    /// ShellLogger escapes them (`"` → `\"`).
    fn lava_log(console: &[String], job: &str) -> String {
        let entry = |lvl: &str, msg: &str| {
            format!("{{\"dt\": \"2026-11-27T17:40:41.5\", \"lvl\": \"{lvl}\", \"msg\": {}}}\n", serde_json::to_string(msg).unwrap())
        };
        let mut log = entry("info", "start: 2 boot-image-retry (timeout 00:07:00) [common]");
        log += &entry("info", "Boot command: /usr/bin/qemu-system-x86_64 -nographic -m 3072");
        for l in console {
            log += &entry("target", &l.replace('"', "\\\""));
        }
        log + job
    }

    fn agent(m: &kregress_agent::Message) -> String {
        m.to_line(NONCE)
    }

    /// The stock truncate hang's console, as the agent prints it.
    fn hang_console() -> Vec<String> {
        use kregress_agent::Message;
        let t = kregress_agent::ThreadStack {
            pid: 1,
            tid: 44,
            comm: "truncate".into(),
            state: "S".into(),
            wchan: "ext4_break_layouts".into(),
            stack: vec!["schedule+0x5a/0xd0".into(), "ext4_break_layouts+0x1a9/0x2c0".into(), "ext4_setattr+0x3d2/0x9e0".into()],
        };
        vec![
            "[    0.000000] Linux version 6.1.192+".into(),
            agent(&Message::Hello { version: "0.1.0".into(), protocol: 1, kernel: "6.1.192+".into(), uptime_s: 1.0 }),
            agent(&Message::WorkloadStart { name: "truncate-during-dio".into(), spec: String::new() }),
            agent(&Message::Hang {
                phase: "workload".into(),
                what: "truncate-during-dio".into(),
                op: "ftruncate(0)".into(),
                waited_s: 10.0,
                threads: vec![t],
            }),
            agent(&Message::Done { ok: false, elapsed_ms: 12000 }),
        ]
    }

    const JOB_PASSED: &str = "{\"dt\": \"2026-11-27T17:41:11.5\", \"lvl\": \"results\", \"msg\": {\"case\": \"job\", \"definition\": \"lava\", \"result\": \"pass\"}}\n";

    fn judged(log: &str) -> CellResult {
        let d = tempfile::tempdir().unwrap();
        let log = read_log(log.as_bytes(), "log.yaml", LOG_MAX).unwrap();
        let (res, rest) = read_back(&[cell("truncate-during-dio")], &boot(&["truncate-during-dio"]), NONCE, &log, d.path()).unwrap();
        assert!(rest.is_empty());
        res.into_iter().next().unwrap()
    }

    #[test]
    fn a_log_is_read_back_into_the_console_the_guest_printed() {
        let console = hang_console();
        let log = read_log(lava_log(&console, JOB_PASSED).as_bytes(), "log.yaml", LOG_MAX).unwrap();
        let lines: Vec<&str> = log.console.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(lines, console.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(log.boot_command.as_deref(), Some("/usr/bin/qemu-system-x86_64 -nographic -m 3072"));
        assert_eq!((log.result.as_deref(), log.timed_out), (Some("pass"), false));
        assert!((log.seconds - 30.0).abs() < 1e-6, "{}", log.seconds);
        // A `\"` the guest printed itself comes back as it was; a lab's log API puts `- ` before each line.
        let own = r#"echo "a\"b""#;
        let log = read_log(format!("- {}", lava_log(&[own.into()], "")).as_bytes(), "log", LOG_MAX).unwrap();
        assert_eq!(log.console[0].1, own);
    }

    /// The oracle can fail: with LAVA's escapes left in, no agent line parses
    /// and the hang's title is lost.
    #[test]
    fn the_hang_is_titled_from_the_log_and_not_with_the_escapes_left_in() {
        let log = lava_log(&hang_console(), JOB_PASSED);
        let r = judged(&log);
        assert_eq!((r.outcome, r.title.as_deref()), (Outcome::Fail, Some("INFO: task hung in ext4_break_layouts")));
        let escaped = judged(&log.replace(r#"\\\""#, r#"\\\\\""#));
        assert_ne!(escaped.title, r.title, "{escaped:?}");
        assert_ne!(escaped.outcome, Outcome::Fail);
    }

    /// LAVA's verdict is not used: a job LAVA calls passed whose console shows
    /// the hang FAILs; one LAVA failed before QEMU started (or killed, its log
    /// cut short) is MISS with LAVA's message, never PASS.
    #[test]
    fn a_job_that_never_booted_is_a_miss_with_lavas_message() {
        let failed = "{\"dt\": \"2026-11-27T17:40:42.0\", \"lvl\": \"results\", \"msg\": {\"case\": \"job\", \"definition\": \"lava\", \"error_msg\": \"Unable to download file:///k/bzImage\", \"error_type\": \"Job\", \"result\": \"fail\"}}\n";
        let r = judged(&lava_log(&[], failed));
        assert_eq!(
            (r.outcome, r.title.as_deref()),
            (Outcome::Miss, Some("LAVA failed before the kernel booted: Unable to download file:///k/bzImage"))
        );
        let killed = lava_log(&[], "");
        let r = judged(&killed[..killed.len() - 20]);
        assert_eq!(
            (r.outcome, r.title.as_deref()),
            (Outcome::Miss, Some("LAVA failed before the kernel booted: the job log ends before the kernel booted"))
        );
        // A guest that booted and then went quiet until LAVA's timeout is the run's HANG.
        let quiet = lava_log(&hang_console()[..3], "{\"dt\": \"2026-11-27T17:52:00\", \"lvl\": \"results\", \"msg\": {\"case\": \"job\", \"error_msg\": \"lava-test-monitor timed out after 976 seconds\", \"result\": \"fail\"}}\n");
        let r = judged(&quiet);
        assert_eq!((r.outcome, r.title.as_deref()), (Outcome::Fail, Some("HANG: the guest stopped answering")));
    }

    #[test]
    fn urls_are_http_or_https_with_a_host() {
        assert!(check_url("--submit", "https://lava.example.org").is_ok());
        assert!(check_url("--artifact-url", "http://10.0.0.1:8000/kregress/").is_ok());
        for bad in ["lava.example.org", "file:///tmp", "https://", "http:///x", "https://a b", "https://a\"b"] {
            let e = check_url("--submit", bad).unwrap_err();
            assert_eq!((e.class, e.msg.starts_with("--submit ")), (crate::error::Class::BadInput, true), "{bad}: {}", e.msg);
        }
    }

    #[test]
    fn a_log_past_its_cap_is_refused() {
        let log = lava_log(&hang_console(), JOB_PASSED);
        let e = read_log(log.as_bytes(), "log.yaml", 1000).unwrap_err();
        assert!(e.msg.contains("log.yaml: larger than 1000 bytes"), "{}", e.msg);
    }

    #[test]
    fn the_qemu_context_is_the_boot_less_what_the_device_type_adds() {
        let args: Vec<String> = "-machine pc,nvdimm=on -m 1G,slots=2,maxmem=4G -accel tcg -cpu max -smp 2 -display none -nodefaults -serial stdio -monitor none -no-reboot -kernel /k -initrd /i -append x=1"
            .split(' ')
            .map(String::from)
            .collect();
        let (memory, extra) = qemu_context(&args).unwrap();
        assert_eq!(memory, 1024);
        assert_eq!(
            extra,
            [
                "-machine pc,nvdimm=on",
                "-m 1G,slots=2,maxmem=4G",
                "-accel tcg",
                "-cpu max",
                "-smp 2",
                "-display none",
                "-nodefaults",
                "-serial stdio",
                "-no-reboot"
            ]
        );
        let memmap: Vec<String> = ["-m", "3G", "-append", "a b"].map(String::from).to_vec();
        assert_eq!(qemu_context(&memmap).unwrap(), (3072, vec![]));
        // An argument LAVA's split would cut is refused, as is a command line with a quote.
        let spaced: Vec<String> = ["-m", "3G", "-object", "memory-backend-file,mem-path=/a b/x"].map(String::from).to_vec();
        assert!(qemu_context(&spaced).unwrap_err().msg.contains("holds a space or a quote"));
        let quoted: Vec<String> = ["-append", "kregress.x=\"y\""].map(String::from).to_vec();
        let e = cmdline(&quoted).unwrap_err();
        assert_eq!(e.class, crate::error::Class::BadInput);
        assert!(e.msg.contains("the kernel command line holds '\"'"), "{}", e.msg);
    }

    /// A one-connection-per-request HTTP server answering `replies` (status,
    /// body) in order; joins to the requests it saw.
    fn lab_server(replies: Vec<(u16, String)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{Read, Write};
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", server.local_addr().unwrap());
        let seen = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, body) in replies {
                let (mut s, _) = server.accept().unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, and a body as long as Content-Length says.
                loop {
                    let n = s.read(&mut buf).unwrap();
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if req.len() >= end + 4 + len || n == 0 {
                            break;
                        }
                    }
                }
                seen.push(String::from_utf8_lossy(&req).to_string());
                write!(s, "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
            }
            seen
        });
        (url, seen)
    }

    /// The REST client against a tiny local server (a real lab was tried by
    /// hand: docs/LAVA-lab.md): submit, poll until finished, fetch the log, with the token.
    #[test]
    fn the_lab_client_submits_polls_and_reads_the_log() {
        let log = format!("- {}", lava_log(&hang_console(), JOB_PASSED).replace('\n', "\n- "));
        let replies = [r#"{"job_ids": [7]}"#.to_string(), r#"{"state": "Running"}"#.into(), r#"{"state": "Finished"}"#.into(), log];
        let (url, seen) = lab_server(replies.into_iter().map(|b| (200, b)).collect());
        let mut lab = Lab::new(&url, "s3cret");
        lab.poll_every = Duration::from_millis(10);
        let (id, got) = lab.run("device_type: qemu\n", Duration::from_secs(30)).unwrap();
        let seen = seen.join().unwrap();
        assert_eq!(id, 7);
        assert!(seen[0].starts_with("POST /api/v0.2/jobs/ "), "{}", seen[0]);
        assert!(seen[0].contains(r#"{"definition":"device_type: qemu\n"}"#), "{}", seen[0]);
        assert!(seen[1].starts_with("GET /api/v0.2/jobs/7/ ") && seen[2].starts_with("GET /api/v0.2/jobs/7/ "), "{seen:?}");
        assert!(seen[3].starts_with("GET /api/v0.2/jobs/7/logs/ "), "{}", seen[3]);
        assert!(
            seen.iter().all(|r| r.contains("\r\nauthorization: Token s3cret\r\n") || r.contains("\r\nAuthorization: Token s3cret\r\n")),
            "{seen:?}"
        );
        assert_eq!(got.console.len(), hang_console().len());
        assert_eq!(got.result.as_deref(), Some("pass"));
    }
    /// A lab whose web server restarts mid-job: the poll is tried again, and
    /// an error page is one line. Past POLL_TRIES failures in a row the job
    /// is cancelled at the lab, not left running.
    #[test]
    fn a_failed_poll_is_retried_then_the_job_is_cancelled() {
        let page = "<html>\n<head><title>503 Service Unavailable</title></head>\n</html>\n".to_string();
        let mut replies = vec![(200, r#"{"job_ids": [9]}"#.to_string()), (503, page.clone()), (200, r#"{"state": "Finished"}"#.into())];
        replies.push((200, format!("- {}", lava_log(&hang_console(), JOB_PASSED).replace('\n', "\n- "))));
        let (url, seen) = lab_server(replies);
        let mut lab = Lab::new(&url, "t");
        lab.poll_every = Duration::from_millis(10);
        let (id, _) = lab.run("device_type: qemu\n", Duration::from_secs(30)).unwrap();
        assert_eq!(id, 9);
        assert_eq!(seen.join().unwrap().len(), 4);

        let mut replies = vec![(200, r#"{"job_ids": [10]}"#.to_string())];
        replies.extend((0..POLL_TRIES).map(|_| (503, page.clone())));
        replies.push((200, "{}".into()));
        let (url, seen) = lab_server(replies);
        let mut lab = Lab::new(&url, "t");
        lab.poll_every = Duration::from_millis(10);
        let e = lab.run("device_type: qemu\n", Duration::from_secs(30)).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(!e.msg.contains('\n') && e.msg.contains("HTTP 503: <html> <head><title>503 Service Unavailable"), "{}", e.msg);
        assert!(e.msg.ends_with(&format!("(job 10, {POLL_TRIES} polls in a row failed)")), "{}", e.msg);
        let seen = seen.join().unwrap();
        assert!(seen.last().unwrap().starts_with("GET /api/v0.2/jobs/10/cancel/ "), "{seen:?}");
        assert!(pending_jobs().iter().all(|p| p.2 != 10), "a cancelled job is no longer pending");
    }

    #[test]
    fn a_lab_job_backs_its_nvdimms_where_every_worker_can() {
        let o = "-object memory-backend-file,id=mem0,share=on,mem-path=/home/u/out/jobs/kregress-1/pmem/nvdimm0.img,size=1G";
        assert_eq!(lab_nvdimm(o), "-object memory-backend-file,id=mem0,share=on,mem-path=/var/tmp,size=1G");
        assert_eq!(lab_nvdimm("-machine pc,nvdimm=on"), "-machine pc,nvdimm=on");
    }
}
