//! What a kernel report looks like: the tables.
//!
//! A report starts on a line holding one of the [`Group`] headers (`BUG:`,
//! `WARNING:`, `general protection fault`, ...). The group's [`Format`]s then
//! say, in order of preference, how to name it: a regex on the header line,
//! optional follow-up lines whose captures are needed, a title template, the
//! [`Kind`], and how to find the guilty stack frame ([`Stack`]).
//!
//! Titles follow syzkaller's conventions so that a title found here is the
//! same string syzbot uses for the same bug. Templates use `{N}`: the N-th
//! capture of the header (then follow-up) regexes, then one frame per stack
//! trace parsed.
//!
//! Regexes may use `{{PC}}` (`[<ffffffff81234567>]`), `{{FUNC}}` (a symbol
//! followed by `+0x..` or `.isra..`), `{{SRC}}` (`mm/gup.c:224`) and
//! `{{ADDR}}`.

use aho_corasick::AhoCorasick;
use regex::{Regex, RegexSet};
use std::sync::LazyLock;

use super::Kind;

/// One part of the walk that looks for the guilty frame, see [`Stack`].
pub(crate) enum Part {
    /// Skip lines up to the first that matches; its captures are frames.
    Line(Regex),
    /// Collect frames up to the next stack trace start (or the next part).
    Trace,
}

/// How to pick the guilty frame.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extractor {
    /// The first frame not skipped.
    First,
    /// Stalls and lockups: the frame above a dispatch point (syscall
    /// entry, workqueue, timer, ...), which stays the same from run to run.
    Stall,
    /// Hung tasks: bucket synchronize_rcu/rtnl_lock waits, else the first
    /// frame that is not scheduling/locking/waiting plumbing.
    Hang,
}

pub(crate) struct Stack {
    pub(crate) parts: Vec<Part>,
    /// Tried when `parts` find no frame.
    pub(crate) parts2: Vec<Part>,
    /// Extra frames to skip for this report type (regex, unanchored).
    pub(crate) skip: Option<Regex>,
    pub(crate) extractor: Extractor,
}

pub(crate) struct Format {
    /// Matched against report lines, the header line first.
    pub(crate) title: Regex,
    /// If present, these must match on successive later lines (the first
    /// one may be the title line itself); their captures replace the
    /// title's. If they do not, the format does not apply.
    pub(crate) report: Vec<Regex>,
    pub(crate) fmt: &'static str,
    pub(crate) kind: Kind,
    pub(crate) stack: Option<Stack>,
    /// The report has no stack trace by nature: do not call it corrupted
    /// for lacking one.
    pub(crate) no_stack_trace: bool,
    /// Matching this format means the report lost its real header.
    pub(crate) corrupted: bool,
}

pub(crate) struct Group {
    /// Literal whose presence on a line starts a report.
    pub(crate) header: &'static str,
    pub(crate) formats: Vec<Format>,
    /// All format titles at once: which may apply to a line.
    pub(crate) titles: RegexSet,
    /// Lines with the header that are not reports (boot chatter, ...).
    pub(crate) suppress: Vec<Regex>,
    /// A weak header announces a report that usually follows (`Oops:`,
    /// `page dumped because:`, `refcount_t:`): a strong header soon after
    /// replaces it, and it never interrupts an open report.
    pub(crate) weak: bool,
}

/// Expands the `{{...}}` shorthands and compiles.
pub(crate) fn re(s: &str) -> Regex {
    let s = s
        .replace("{{ADDR}}", "0x[0-9a-f]+")
        .replace("{{PC}}", r"\[<?(?:0x)?[0-9a-f]+>?\]")
        .replace("{{FUNC}}", r"([a-zA-Z0-9_]+)(?:\.|\+)")
        .replace("{{SRC}}", r"([a-zA-Z0-9-_/.]+\.[a-z]+:[0-9]+)");
    Regex::new(&s).unwrap_or_else(|e| panic!("bad triage regex {s}: {e}"))
}

/// The faulting instruction pointer line of an oops, on every arch we know.
#[rustfmt::skip]
pub(crate) const RIP: &str = r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:{{PC}} +){0,2}{{FUNC}}|(?:[0-9]+:)?0x[0-9a-f]+|(?:[0-9]+:)?{{PC}} +\[< *\(null\)>\] +\(null\)|[0-9]+: +\(null\))";
pub(crate) const CALL_TRACE: &str = r"(?:Call (?:T|t)race:)|(?:Backtrace:)";

/// Lines that can follow a report header without starting a new report:
/// the panic that a BUG or panic_on_warn causes, the trap that a BUG()
/// raises, a double fault in the fault handler.
pub(crate) const CONTINUATIONS: &[&str] = &[
    "invalid opcode: 0000",
    "Kernel panic - not syncing",
    "unregister_netdevice: waiting for",
    "PANIC: double fault",
    "Internal error:",
    "Oops:",
];

/// Messages that print a stack trace of their own without being bugs: the
/// report before them ends there.
pub(crate) const STACK_NOISE: &[&str] =
    &["vmalloc: allocation failure:", "FAULT_INJECTION: forcing a failure", "FAULT_FLAG_ALLOW_RETRY missing"];

// ---- builders, to keep the tables below readable ----

fn f(title: &str, fmt: &'static str, kind: Kind) -> Format {
    Format { title: re(title), report: Vec::new(), fmt, kind, stack: None, no_stack_trace: false, corrupted: false }
}

impl Format {
    fn report(mut self, lines: &[&str]) -> Self {
        self.report = lines.iter().map(|l| re(l)).collect();
        self
    }
    fn stack(mut self, parts: Vec<Part>, skip: &[&str]) -> Self {
        self.stack = Some(Stack { parts, parts2: Vec::new(), skip: skip_re(skip), extractor: Extractor::First });
        self
    }
    fn warning_stack(mut self, skip: &[&str]) -> Self {
        // The WARN trap: newer kernels print the RIP (x86) or the interrupt
        // (powerpc) of the warning first; older ones just a call trace.
        self.stack = Some(Stack {
            parts: vec![line(&format!("(?:{RIP}|--- interrupt: [0-9]+ at {{{{FUNC}}}})")), Part::Trace],
            parts2: vec![line(CALL_TRACE), Part::Trace],
            skip: skip_re(skip),
            extractor: Extractor::First,
        });
        self
    }
    fn parts2(mut self, parts: Vec<Part>) -> Self {
        self.stack.as_mut().expect("parts2 needs a stack").parts2 = parts;
        self
    }
    fn extractor(mut self, e: Extractor) -> Self {
        self.stack.as_mut().expect("extractor needs a stack").extractor = e;
        self
    }
    fn no_stack(mut self) -> Self {
        self.no_stack_trace = true;
        self
    }
    fn corrupted(mut self) -> Self {
        self.corrupted = true;
        self
    }
}

fn skip_re(skip: &[&str]) -> Option<Regex> {
    (!skip.is_empty()).then(|| re(&skip.join("|")))
}

fn line(s: &str) -> Part {
    Part::Line(re(s))
}

/// Faulting IP, then the call trace.
fn rip_trace() -> Vec<Part> {
    vec![line(RIP), line(CALL_TRACE), Part::Trace]
}

fn call_trace() -> Vec<Part> {
    vec![line(CALL_TRACE), Part::Trace]
}

fn group(header: &'static str, formats: Vec<Format>, suppress: &[&str]) -> Group {
    let titles = RegexSet::new(formats.iter().map(|f| f.title.as_str())).expect("title set");
    Group { header, formats, titles, suppress: suppress.iter().map(|s| re(s)).collect(), weak: false }
}

fn weak(header: &'static str, formats: Vec<Format>) -> Group {
    Group { weak: true, ..group(header, formats, &[]) }
}

use Kind::*;

/// All report types, in priority order: on a line with two headers the
/// first group wins.
#[rustfmt::skip] // a table: one entry per line reads better
pub(crate) static GROUPS: LazyLock<Vec<Group>> = LazyLock::new(|| {
    vec![
        group("BUG:", bug_formats(), &["ODEBUG:", "Boot_DEBUG:", "xlog_status:", "DEBUG:", "BUG: no syscalls can create resource"]),
        group("WARNING:", warning_formats(), &[
            "WARNING: /etc/ssh/moduli does not exist, using fixed modulus",
            "WARNING: workqueue cpumask: online intersect > possible intersect",
            "WARNING: [Tt]he mand mount option",
            r"WARNING: Unsupported flag value\(s\) of 0x%x in DT_FLAGS_1",
            "WARNING: Unprivileged eBPF is enabled with eIBRS",
            r"WARNING: fbcon: Driver '(.*)' missed to adjust virtual screen size",
            "WARNING: See https.* for mitigation options.",
            "WARNING: kernel not compiled with CPU_SRSO",
            r"EXT4-[Ff][Ss](?: \(.*\))?:",
            "(?i)warning: .* uses (deprecated v2 capabilities|wireless extensions)",
            r"XFS \(\w+\): WARNING",
        ]),
        group("INFO:", info_formats(), &[
            "INFO: lockdep is turned off",
            "INFO: Stall ended before state dump start",
            "INFO: NMI handler",
            "INFO: recovery required on readonly filesystem",
            "(handler|interrupt).*took too long",
            "INFO: sys_.* is not present in /proc/kallsyms",
            "INFO: no syscalls can create resource",
            "rmt_storage:INFO:",
            "_INFO:",
        ]),
        group("Unable to handle kernel", vec![
            f("Unable to handle kernel paging request", "BUG: unable to handle kernel paging request in {1}", MemorySafety).stack(rip_trace(), &[]),
            f("Unable to handle kernel NULL pointer dereference", "BUG: unable to handle kernel NULL pointer dereference in {1}", Crash).stack(rip_trace(), &[]),
            f("Unable to handle kernel access to user memory", "BUG: unable to handle kernel access to user memory in {1}", Crash).stack(rip_trace(), &[]),
        ], &[]),
        group("general protection fault", vec![
            f("general protection fault.*:", "general protection fault in {1}", Crash).stack(rip_trace(), &[]),
        ], &[r"general protection fault .* error:\d+ in "]),
        group("stack segment: ", vec![
            f("stack segment: ", "stack segment fault in {1}", Crash).stack(rip_trace(), &[]),
        ], &[]),
        group("Kernel panic", panic_formats(), &[]),
        group("PANIC: double fault", vec![
            f("PANIC: double fault", "PANIC: double fault in {1}", Crash).stack(vec![line(RIP)], &[]),
        ], &[]),
        group("rust_kernel: panicked", vec![
            f("rust_kernel: panicked", "{1} in {2}", Crash)
                .report(&["rust_kernel: panicked at ", "(.+)"])
                .stack(call_trace(), &[r"__rustc::rust_begin_unwind"]),
        ], &[]),
        group("kernel BUG", vec![
            f("kernel BUG at mm/usercopy.c", "BUG: bad usercopy in {1}", Crash).stack(call_trace(), &["usercopy", "__check"]),
            f("kernel BUG at lib/list_debug.c", "BUG: corrupted list in {1}", MemorySafety).stack(call_trace(), &[]),
            // Lots of skb wrappers BUG_ON() on their caller's mistakes.
            f("kernel BUG at (.*)", "kernel BUG in {2}", Crash).stack(rip_trace(), &["^skb_"]),
        ], &[]),
        group("Kernel BUG", vec![f("Kernel BUG (.*)", "kernel BUG {1}", Crash)], &[]),
        group("BUG kmalloc-", vec![f("BUG kmalloc-.*: Object already free", "BUG: Object already free", Crash)], &[]),
        group("divide error:", vec![f("divide error: ", "divide error in {1}", Crash).stack(vec![line(RIP)], &[])], &[]),
        // Misspelt so by kernels 5.9..5.10.
        group("divide_error:", vec![f("divide_error: ", "divide error in {1}", Crash).stack(vec![line(RIP)], &[])], &[]),
        group("invalid opcode:", vec![f("invalid opcode: ", "invalid opcode in {1}", Crash).stack(vec![line(RIP)], &[])], &[]),
        group("UBSAN:", vec![
            f("UBSAN:", "UBSAN: undefined-behaviour in {1}", Ubsan).report(&["UBSAN: Undefined behaviour in"]).stack(call_trace(), &["ubsan", "overflow"]),
            f("UBSAN: array-index-out-of-bounds in", "UBSAN: array-index-out-of-bounds in {1}", MemorySafety).stack(call_trace(), &["ubsan", "overflow"]),
            f("UBSAN:", "UBSAN: {1} in {2}", Ubsan).report(&["UBSAN: (.*?) in"]).stack(call_trace(), &["ubsan", "overflow"]),
        ], &[]),
        group("Booting the kernel.", vec![f("^Booting the kernel", "unexpected kernel reboot", Reboot).no_stack()], &["Parsing ELF|Decompressing Linux|Unknown parameter '"]),
        group("unregister_netdevice: waiting for", vec![
            f("unregister_netdevice: waiting for (?:.*) to become free", "unregister_netdevice: waiting for DEV to become free", Crash).no_stack(),
        ], &[]),
        group("VFS: Close: file count is 0", vec![f("VFS: Close: file count is 0", "VFS: Close: file count is zero (use-after-free)", Crash).no_stack()], &[]),
        group("VFS: Busy inodes after unmount", vec![f("VFS: Busy inodes after unmount", "VFS: Busy inodes after unmount (use-after-free)", Crash).no_stack()], &[]),
        group("Internal error:", vec![f("Internal error:", "Internal error in {1}", Crash).stack(rip_trace(), &[])], &[]),
        group("Unhandled fault:", vec![f("Unhandled fault:", "Unhandled fault in {1}", Crash).stack(rip_trace(), &[])], &[]),
        group("Alignment trap:", vec![f("Alignment trap:", "Alignment trap in {1}", Crash).stack(rip_trace(), &[])], &[]),
        group("trusty: panic", vec![
            f("trusty: panic.* ASSERT FAILED", "trusty: ASSERT FAILED: {1}", Crash).report(&[r"trusty: panic \(.*?\):(?: DEBUG)? ASSERT FAILED at \(.*?\): (.+)"]).no_stack(),
            f("trusty: panic.* ASSERT FAILED.*: *(.*)", "trusty: ASSERT FAILED: {1}", Crash).corrupted(),
            f("trusty: panic", "trusty: panic: {1}", Crash).report(&[r"trusty: panic \(.*?\): (.+)"]).no_stack(),
        ], &[]),
        // Userspace runtime failures that take a test VM down (syzkaller's
        // own Go tools; kept so that foreign logs triage the same).
        group("fatal error:", vec![f("fatal error:", "go runtime error", Crash).no_stack()], &["ALSA", "fatal error: cannot create timer"]),
        group("SYZFAIL:", vec![f("SYZFAIL:(.*)", "SYZFAIL:{1}", Other).no_stack()], &[]),
        group("SYZFATAL:", vec![f("SYZFATAL:(.*)", "SYZFATAL:{1}", Other).no_stack()], &[]),
        group("panic:", vec![
            f("panic: Sentry detected .* stuck task", "panic: Sentry detected stuck tasks", Crash).no_stack(),
            f("panic:(.*)", "panic:{1}", Crash).no_stack(),
        ], &["_panic:", "xlog_status:", r"ddb\.onpanic:", "evtlog_status:"]),
        // x86 says "Oops:" after the header that names the fault, except
        // for a few traps.
        group("Oops:", vec![
            f("Oops: int3", "int3 in {1}", Crash).stack(rip_trace(), &[]),
            f("Oops:", "Oops in {1}", Crash).stack(rip_trace(), &[]),
        ], &[]),
        // Weak headers: printed just before the real report header.
        weak("page dumped because:", vec![f("page dumped because: (.*)", "BUG: page dumped because: {1}", Crash).no_stack()]),
        weak("refcount_t: ", vec![f("refcount_t: ([a-z -]+)", "WARNING: refcount_t: {1}", Warn).no_stack()]),
        weak("percpu ref (", vec![f(r"percpu ref \(.*\) <= 0", "WARNING: percpu ref underflow", Warn).no_stack()]),
    ]
});

#[rustfmt::skip] // a table: one entry per line reads better
fn bug_formats() -> Vec<Format> {
    let kasan_hw = &["kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_"][..];
    let free = "(?:double-free or invalid-free|double-free|invalid-free)";
    let page_skip = &["(free|put|get|update|release)_page", "free_unref", "^_*folio", "truncate_inode_pages", "page_frag_free", "alloc", "vmap", "page_owner"][..];
    let leak_skip = &["kmemleak", "mmap", "kmem", "slab", "alloc", "create_object", "idr_get", "list_lru_init", "kasprintf", "kvasprintf", "pcpu_create", "strdup", "strndup", "memdup"][..];
    let kmsan_skip = &["alloc_skb", "netlink_ack", "netlink_rcv_skb", "_encrypt$", "^(?:crypto|cipher|drbg|rng)_"][..];
    let usb_skip = &["alloc_skb", "usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg", "usb_interrupt_msg", "usb_control_msg"][..];
    let kmsan_parts = || vec![Part::Trace, line("(Local variable .* created at:|Uninit was created at:)"), Part::Trace];
    let kfence_parts = || vec![line(r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}"), Part::Trace];
    vec![
        f("BUG: KASAN:", "KASAN: {1} {3} in {4}", MemorySafety)
            .report(&[r"BUG: KASAN: ([a-z\-]+) in {{FUNC}}", r".*(Read|Write) (?:of size|at addr) (?:[0-9a-f]+)"])
            .stack(vec![line(r"BUG: KASAN: (?:[a-z\-]+) in {{FUNC}}"), line(CALL_TRACE), Part::Trace], kasan_hw),
        f("BUG: KASAN:", "KASAN: invalid-free in {2}", MemorySafety)
            .report(&[&format!("BUG: KASAN: {free} in {{{{FUNC}}}}")])
            .stack(vec![line(&format!("BUG: KASAN: {free} in {{{{FUNC}}}}")), line(CALL_TRACE), Part::Trace], &["slab_", "kfree", "vunmap", "vfree"]),
        f(r"BUG: KASAN: ([a-z\-]+) on address", "KASAN: {1} {2}", MemorySafety).report(&[r"BUG: KASAN: ([a-z\-]+) on address", r"(Read|Write) of size ([0-9]+)"]),
        f("BUG: KASAN: (.*)", "KASAN: {1}", MemorySafety).corrupted(),
        f("BUG: KMSAN: kernel-usb-infoleak", "KMSAN: kernel-usb-infoleak in {2}", MemorySafety)
            .report(&["BUG: KMSAN: kernel-usb-infoleak in {{FUNC}}"]).stack(kmsan_parts(), usb_skip).no_stack(),
        f("BUG: KMSAN:", "KMSAN: {1} in {3}", MemorySafety)
            .report(&[r"BUG: KMSAN: ([a-z\-]+) in {{FUNC}}"]).stack(kmsan_parts(), kmsan_skip).no_stack(),
        f("BUG: KCSAN: data-race", "KCSAN: {1}", DataRace).report(&["BUG: KCSAN: (.*)"]).no_stack(),
        f("BUG: KCSAN:", "KCSAN: {1}", DataRace).report(&["BUG: KCSAN: (.*)"]).no_stack(),
        f("BUG: KFENCE: (use-after-free|out-of-bounds) (read|write) in {{FUNC}}", "KFENCE: {1} {2} in {4}", MemorySafety).stack(kfence_parts(), &[]),
        f("BUG: KFENCE: invalid free in {{FUNC}}", "KFENCE: invalid free in {2}", MemorySafety).stack(kfence_parts(), &[]).no_stack(),
        f("BUG: KFENCE: invalid (read|write) in {{FUNC}}", "KFENCE: invalid {1} in {3}", MemorySafety).stack(kfence_parts(), &[]),
        f("BUG: KFENCE: memory corruption in {{FUNC}}", "KFENCE: memory corruption in {2}", MemorySafety).stack(kfence_parts(), &[]).no_stack(),
        f("BUG: (?:unable to handle kernel paging request|unable to handle page fault for address|Unable to handle kernel data access)",
            "BUG: unable to handle kernel paging request in {1}", MemorySafety).stack(rip_trace(), &[]),
        f("BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer dereference|Kernel NULL pointer dereference)",
            "BUG: unable to handle kernel NULL pointer dereference in {1}", Crash).stack(rip_trace(), &[]),
        // The second half of the header is a separate printk and can be lost.
        f("BUG: (?:unable to handle kernel|Unable to handle kernel)", "BUG: unable to handle kernel", Crash).corrupted(),
        f("BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu recursion|bad magic|wrong owner|wrong CPU|trylock failure on UP)",
            "BUG: {1} {2} in {3}", Lockdep).stack(call_trace(), &["spin_", "_lock", "_unlock"]),
        f("BUG: soft lockup", "BUG: soft lockup in {1}", Hang).stack(rip_trace(), &[]).extractor(Extractor::Stall),
        f("BUG: .*still has locks held!", "BUG: still has locks held in {1}", Lockdep).report(&["BUG: .*still has locks held!", "{{PC}} +{{FUNC}}"]),
        f("BUG: scheduling while atomic", "BUG: scheduling while atomic in {1}", AtomicSleep).stack(call_trace(), &["schedule"]),
        f("BUG: lock held when returning to user space", "BUG: lock held when returning to user space in {1}", Lockdep)
            .report(&["BUG: lock held when returning to user space", "leaving the kernel with locks still held", "at: (?:{{PC}} +)?{{FUNC}}"]).no_stack(),
        f("BUG: bad unlock balance detected!", "BUG: bad unlock balance in {1}", Lockdep).stack(vec![line("{{PC}} +{{FUNC}}"), line(CALL_TRACE), Part::Trace], &[]),
        f("BUG: held lock freed!", "BUG: held lock freed in {1}", Lockdep).report(&["BUG: held lock freed!", "{{PC}} +{{FUNC}}"]),
        f("BUG: Bad rss-counter state", "BUG: Bad rss-counter state", Crash).no_stack(),
        f("BUG: non-zero nr_ptes on freeing mm", "BUG: non-zero nr_ptes on freeing mm", Crash).no_stack(),
        f("BUG: non-zero nr_pmds on freeing mm", "BUG: non-zero nr_pmds on freeing mm", Crash).no_stack(),
        // The fs type and block device in the message only split one bug in many.
        f("BUG: Dentry .* still in use", "BUG: Dentry still in use in {1}", Crash).report(&[r"BUG: Dentry .* still in use \([0-9]+\) \[(unmount) of ([^\]]+)\]"]),
        f("BUG: Bad page (state|cache)", "BUG: Bad page {1} in {2}", Crash).stack(vec![line("page last allocated"), Part::Trace], page_skip),
        f("BUG: Bad page map", "BUG: Bad page map", Crash),
        f("BUG: workqueue lockup", "BUG: workqueue lockup", Hang).no_stack(),
        f("BUG: sleeping function called from invalid context at (.*)", "BUG: sleeping function called from invalid context in {2}", AtomicSleep).stack(call_trace(), &[]),
        f(r"BUG: using ([a-z_]+)\(\) in preemptible", "BUG: using {1}() in preemptible code in {2}", Lockdep)
            .stack(call_trace(), &["dump_stack", "preemption", "preempt", "debug_", "processor_id", "this_cpu"]),
        f("BUG: workqueue leaked lock or atomic", "BUG: workqueue leaked lock or atomic in {1}", Lockdep)
            .report(&["BUG: workqueue leaked lock or atomic", "last function: ([a-zA-Z0-9_]+)$"]).no_stack(),
        f("BUG: memory leak", "memory leak in {1}", Leak).stack(vec![line(r"backtrace(?: \(crc [[:xdigit:]]*\))?:"), Part::Trace], leak_skip),
        f("BUG: .*stack guard page was hit at", "BUG: stack guard page was hit in {1}", Crash).stack(rip_trace(), &[]).extractor(Extractor::Stall),
        // arm reports what x86 calls a locking bug this way.
        f("BUG: Invalid wait context", "WARNING: locking bug in {1}", Lockdep).stack(call_trace(), &["lock_sock", "release_sock"]),
        f(r"BUG:[[:space:]]*$", "BUG: corrupted", Crash).corrupted(),
    ]
}

#[rustfmt::skip]
fn warning_formats() -> Vec<Format> {
    let lockdep_at = "at: (?:{{PC}} +)?{{FUNC}}";
    vec![
        // Skip all users of debugobjects as well.
        f(r"WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check|at)", "WARNING: ODEBUG bug in {1}", Warn)
            .warning_stack(&["debug_", "rcu", "hrtimer_", "timer_", "work_", "percpu_", "vunmap", "vfree", "__free_", "debug_check", "kobject_"]),
        f(r"WARNING: .*mm/usercopy\.c.* (?:usercopy_warn|at)", "WARNING: bad usercopy in {1}", Warn).warning_stack(&["usercopy", "__check"]),
        f(r"WARNING: .*lib/kobject\.c.* (?:kobject_|at)", "WARNING: kobject bug in {1}", Warn).warning_stack(&["kobject_"]),
        f(r"WARNING: .*fs/proc/generic\.c.* (?:proc_register|at)", "WARNING: proc registration bug in {1}", Warn).warning_stack(&["proc_"]),
        f(r"WARNING: .*lib/refcount\.c.* (?:refcount_|at)", "WARNING: refcount bug in {1}", Warn).warning_stack(&["refcount", "kobject_"]),
        f(r"WARNING: .*kernel/locking/lockdep\.c.*lock_", "WARNING: locking bug in {1}", Lockdep).warning_stack(&["lock_sock", "release_sock"]),
        f("WARNING: .*still has locks held!", "WARNING: still has locks held in {1}", Lockdep).report(&["WARNING: .*still has locks held!", "at: {{FUNC}}"]),
        f("WARNING: Nested lock was not taken", "WARNING: nested lock was not taken in {1}", Lockdep).warning_stack(&[]),
        f("WARNING: lock held when returning to user space", "WARNING: lock held when returning to user space in {1}", Lockdep)
            .report(&["WARNING: lock held when returning to user space", "leaving the kernel with locks still held", lockdep_at]).no_stack(),
        f(r"WARNING: .*mm/.*\.c.* k?.?malloc", "WARNING: kmalloc bug in {1}", Warn).warning_stack(&["kmalloc", "krealloc", "slab", "kmem"]),
        f(r"WARNING: .*mm/vmalloc.c.*__vmalloc_node", "WARNING: zero-size vmalloc in {1}", Warn).warning_stack(&[]),
        f("WARNING: .* usb_submit_urb", "WARNING in {1}/usb_submit_urb", Warn)
            .warning_stack(&["usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg", "usb_interrupt_msg", "usb_control_msg"]),
        // Since 6.19: "WARNING: mm/gup.c:224 at 0x0, CPU#1: ...".
        f(r"WARNING: {{SRC}} at 0x\d+, CPU#\d+", "WARNING in {2}", Warn).warning_stack(&[]),
        f("WARNING: .* at {{SRC}} {{FUNC}}", "WARNING in {3}", Warn).warning_stack(&[]),
        f("WARNING: {{SRC}} at {{FUNC}}", "WARNING in {3}", Warn).warning_stack(&[]),
        f(r"WARNING: \[.*\] {{SRC}} at {{FUNC}}.*", "WARNING in {3}", Warn).warning_stack(&[]),
        f("WARNING: possible circular locking dependency detected", "possible deadlock in {1}", Lockdep)
            .report(&["WARNING: possible circular locking dependency detected", "is trying to acquire lock"])
            // Work items take locks of their own: such deadlocks belong to
            // the workqueue user, not to the workqueue.
            .stack(vec![line(lockdep_at), line(lockdep_at), Part::Trace], &["process_one_work", "flush_workqueue", "drain_workqueue", "destroy_workqueue"]),
        f("WARNING: possible irq lock inversion dependency detected", "possible deadlock in {1}", Lockdep)
            .report(&["WARNING: possible irq lock inversion dependency detected", "just changed the state of lock", lockdep_at]),
        f("WARNING: .*-safe -> .*-unsafe lock order detected", "possible deadlock in {1}", Lockdep).stack(vec![line("which became (?:.*) at:"), Part::Trace], &[]),
        f("WARNING: possible recursive locking detected", "possible deadlock in {1}", Lockdep)
            .report(&["WARNING: possible recursive locking detected", "is trying to acquire lock", lockdep_at]),
        f("WARNING: inconsistent lock state", "inconsistent lock state in {2}", Lockdep)
            .report(&["WARNING: inconsistent lock state", "takes", lockdep_at]).stack(call_trace(), &[]),
        f("WARNING: suspicious RCU usage", "WARNING: suspicious RCU usage in {2}", Lockdep)
            .report(&["WARNING: suspicious RCU usage", ".*?{{SRC}}"]).stack(call_trace(), &["rcu", "kmem", "slab"]),
        f("WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '([^']+)' value", "WARNING: kernel stack regs has bad '{1}' value", Warn).no_stack(),
        f("WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value", "WARNING: kernel stack frame pointer has bad value", Warn).no_stack(),
        f("WARNING: bad unlock balance detected!", "WARNING: bad unlock balance in {1}", Lockdep).stack(vec![line("{{PC}} +{{FUNC}}"), line(CALL_TRACE), Part::Trace], &[]),
        f("WARNING: held lock freed!", "WARNING: held lock freed in {1}", Lockdep).report(&["WARNING: held lock freed!", "at:(?: {{PC}})? +{{FUNC}}"]),
        f("WARNING: kernel stack regs .* has bad 'bp' value", "WARNING: kernel stack regs has bad value", Warn).no_stack(),
        f("WARNING: kernel stack frame pointer .* has bad value", "WARNING: kernel stack regs has bad value", Warn).no_stack(),
        f(r"WARNING:[[:space:]]*$", "WARNING: corrupted", Warn).corrupted(),
    ]
}

#[rustfmt::skip]
fn info_formats() -> Vec<Format> {
    let at = "at: {{PC}} +{{FUNC}}";
    vec![
        // Pre-4.9 lockdep headers: "[ INFO: possible circular locking dependency detected ]".
        f("INFO: possible circular locking dependency detected", "possible deadlock in {1}", Lockdep)
            .report(&[r"INFO: possible circular locking dependency detected \]", "is trying to acquire lock", at]),
        f("INFO: possible irq lock inversion dependency detected", "possible deadlock in {1}", Lockdep)
            .report(&[r"INFO: possible irq lock inversion dependency detected \]", "just changed the state of lock", at]),
        f("INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected", "possible deadlock in {1}", Lockdep)
            .report(&[r"INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected \]", "is trying to acquire", at]),
        f("INFO: possible recursive locking detected", "possible deadlock in {1}", Lockdep)
            .report(&[r"INFO: possible recursive locking detected \]", "is trying to acquire lock", at]),
        f("INFO: inconsistent lock state", "inconsistent lock state in {1}", Lockdep).report(&[r"INFO: inconsistent lock state \]", "takes", at]),
        // The stall is wherever the CPU was interrupted: start at the timer interrupt.
        f("INFO: rcu_(?:preempt|sched|bh|tasks) (?:self-)?detected(?: expedited)? stall", "INFO: rcu detected stall in {1}", Hang)
            .stack(vec![line("apic_timer_interrupt"), line(RIP), Part::Trace], &["apic_timer_interrupt", "rcu"])
            .parts2(vec![line("(?:apic_timer_interrupt|Exception stack|el1h_64_irq)"), Part::Trace])
            .extractor(Extractor::Stall),
        f("INFO: trying to register non-static key", "INFO: trying to register non-static key in {1}", Lockdep).stack(call_trace(), &["stack", "lock", "IRQ"]),
        f("INFO: suspicious RCU usage", "INFO: suspicious RCU usage in {2}", Lockdep)
            .report(&["INFO: suspicious RCU usage", ".*?{{SRC}}"]).stack(call_trace(), &["rcu", "kmem", "slab"]),
        f("INFO: task .* blocked for more than [0-9]+ seconds", "INFO: task hung in {1}", Hang).stack(call_trace(), &[]).extractor(Extractor::Hang),
        // A task name with a newline in it splits the header.
        f("INFO: task [^:]*$", "INFO: task hung in {1}", Hang)
            .report(&["INFO: task ", "blocked for more than [0-9]+ seconds"]).stack(call_trace(), &[]).extractor(Extractor::Hang),
        f("INFO: task .* can't die for more than .* seconds", "INFO: task can't die in {1}", Hang).stack(call_trace(), &["schedule"]),
        // Old-style KASAN reports that lost their header.
        f("INFO: (Freed|Allocated) in (.*)", "INFO: {1} in {2}", MemorySafety).corrupted(),
        f(r"INFO:[[:space:]]*$", "INFO: corrupted", Other).corrupted(),
    ]
}

#[rustfmt::skip]
fn panic_formats() -> Vec<Format> {
    vec![
        // A corrupted stack may leave no symbol and no unwindable trace.
        f("Kernel panic - not syncing: stack-protector:", "kernel panic: stack is corrupted in {1}", Crash)
            .report(&["Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: {{FUNC}}"]).no_stack(),
        f("Kernel panic - not syncing: stack-protector:", "kernel panic: stack is corrupted in {1}", Crash)
            .report(&["Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: [a-f0-9]+"]).stack(call_trace(), &["stack_chk"]),
        f("Kernel panic - not syncing: corrupted stack end", "kernel panic: corrupted stack end in {1}", Crash)
            .report(&["Kernel panic - not syncing: corrupted stack end detected inside scheduler"])
            .stack(call_trace(), &["schedule", "retint_kernel"]).extractor(Extractor::Stall),
        f("Kernel panic - not syncing: kernel stack overflow", "kernel stack overflow in {1}", Crash).stack(call_trace(), &["bad_stack"]).extractor(Extractor::Stall),
        f("Kernel panic - not syncing: Attempted to kill init!", "kernel panic: Attempted to kill init!", Crash),
        f("Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error -[0-9]+", "kernel panic: Couldn't open N_TTY ldisc", Crash),
        // These follow another report: seeing them first means its header was lost.
        f("Kernel panic - not syncing: Fatal exception", "kernel panic: Fatal exception", Crash).corrupted(),
        f("Kernel panic - not syncing: panic_on_warn set", "kernel panic: panic_on_warn set", Crash).corrupted(),
        f("Kernel panic - not syncing: hung_task: blocked tasks", "kernel panic: hung_task: blocked tasks", Hang).corrupted(),
        f("Kernel panic - not syncing: (.*)", "kernel panic: {1}", Crash),
    ]
}

/// Frames that never name a bug: sanitizer and WARN/BUG plumbing, locking,
/// allocation, string and copy helpers, generic mm/fs/driver-core helpers.
#[rustfmt::skip]
pub(crate) const SKIP_FRAMES: &[&str] = &[
    "__sanitizer", "__asan", "kasan", "hwasan", "__msan", "kmsan", "kcsan_setup_watchpoint",
    "check_memory_region", "check_heap_object", "check_object", "read_word_at_a_time",
    "(read|write)_once_.*nocheck", "print_address_description", "panic", "invalid_op", "report_bug",
    "fixup_bug", "print_report", "print_usage_bug", "do_error", "_trap$|do_trap", "show_stack",
    "dump_stack", "walk_stack", "dump_backtrace", "warn_slowpath", "warn_alloc", "warn_bogus", "__warn",
    "alloc_page", "k?v?(?:m|z|c)alloc", "krealloc", "kmem_cache", "allocate_slab",
    "__alloc_frozen_pages_noprof", "folio_(?:alloc|unlock)", "filemap_alloc_folio",
    "__filemap_get_folio", "find_or_create_page", "do_read_cache_folio", "read_cache_page",
    "pagecache_get_page", "grab_cache_page_write_begin", "slab_", "debug_object",
    "timer_is_static_object", "work_is_static_object", "__might_fault", "print_unlock",
    "imbalance_bug", "lockdep", "bh_enable", "bh_disable", "perf_trace", "lock_acquire",
    "lock_release", "lock_class", "mark_lock", "(reacquire|mark)_held_locks", "raw_spin_rq",
    "spin_lock", "spin_trylock", "spin_unlock", "read_lock", "read_trylock", "write_lock",
    "write_trylock", "read_unlock", "write_unlock", "^down$", "down_read", "down_write",
    "down_read_trylock", "down_write_trylock", "down_trylock", "up_read", "up_write", "^mutex_",
    "^__mutex_", "^rt_mutex_", "owner_on_cpu", "osq_lock", "osq_unlock",
    "atomic(64)?_(dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)",
    "(set|clear|change|test)_bit", "__wake_up", "^refcount_", "^kref_", "ref_tracker",
    "seqprop_assert", "memcpy", "memcmp", "memset", "memchr", "memmove", "memdup", "strcmp",
    "strncmp", "strcpy", "strlcpy", "strncpy", "strscpy", "strlen", "strstr", "strnstr", "strnlen",
    "strchr", "strdup", "strndup", "copy_to_user", "copy_from_user", "copy_to_iter",
    "copy_from_iter", "copy_page_to_iter", "copy_page_from_iter", "copy_folio_to_iter", "^copyin$",
    "^copyout$", "put_user", "get_user", "might_fault", "might_sleep", "list_add", "list_del",
    "list_replace", "list_move", "list_splice", "^rb_", "^__rb_", "_indirect_thunk_", "string",
    "pointer", "snprintf", "scnprintf", "kasprintf", "kvasprintf", "printk", "va_format",
    "dev_info", "dev_notice", "dev_warn", "dev_err", "dev_alert", "dev_crit", "dev_emerg",
    "program_check_exception", "program_check_common", "del_timer", "flush_work",
    "__cancel_work_timer", "cancel_work_sync", "try_to_grab_pending", "flush_workqueue",
    "drain_workqueue", "destroy_workqueue", "queue_work", "finish_wait", "kthread_stop",
    "kobject_", "add_uevent_var", "get_device_parent", "device_add", "device_del",
    "device_unregister", "device_destroy", "device_release", "devres_release_all",
    "hwrng_unregister", "i2c_del_adapter", "__unregister_client", "device_for_each_child",
    "rollback_registered", "unregister_netdev", "sysfs_remove", "device_remove_file",
    "tty_unregister_device", "dummy_urb_enqueue", "usb_kill_urb", "usb_kill_anchored_urbs",
    "usb_control_msg", "usb_hcd_submit_urb", "usb_submit_urb", "^complete$",
    "wait_for_completion", "^kv?free$", "kfree_skb", "readb$", "readw$", "readl$", "readq$",
    "writeb$", "writew$", "writel$", "writeq$", "logic_in", "logic_out", r"^crc\d+", "crc_itu_t",
    "__might_resched", "assertfail", "^iput$", "^iput_final$", "^ihold$", "hex_dump_to_buffer",
    "print_hex_dump", "^klist_", "(trace|lockdep)_(hard|soft)irq", "^(un)?lock_page",
    "stack_trace_consume_entry", "arch_stack_walk", "stack_trace_save", "insert_work",
    "__queue_delayed_work", "queue_delayed_work_on", "ida_free",
    // arm64 translation fault path.
    "do_(kernel|translation)_fault", "do_mem_abort", "el1_abort", "el1h_64_sync(?:_handler)?",
    "print_tainted", "xas_(?:start|load|find)", "find_lock_entries", "truncate_inode_pages_range",
    "__phys_addr", "__fortify_report", "cleanup_srcu_struct", "rhashtable_lookup",
    "extract_(user|iter)_to_sg", "drop_nlink", "^get_taint$", "^put_device$", "lock_timer_base",
    "__timer_delete_sync", "sk_stop_timer_sync", "__mod_timer", "fast_dput", "dput",
    // Warns about its caller's buffer state.
    "^mark_buffer_dirty$",
];

/// Syscall wrappers differ between arches and kernel versions; a frame is
/// named by the shortest name left after removing one of these.
#[rustfmt::skip]
pub(crate) const STRIP_PREFIXES: &[&str] = &[
    "SYSC_", "SyS_", "sys_", "__x64_", "__ia32_", "__arm64_", "____sys_", "___sys_", "__sys_",
    "__se_", "__se_sys_", "__do_sys_", "compat_SYSC_", "compat_SyS_", "ksys_",
];

/// Stall anchors: dispatch points below which a looping stack is stable.
#[rustfmt::skip]
pub(crate) const STALL_ANCHORS: &[&str] = &[
    "process_one_work", "do_syscall_", "do_fast_syscall_", "sysenter_dispatch", "tracesys_phase2",
    "el0_svc_handler", "invoke_syscall", "ret_fast_syscall", "netif_receive_skb", "do_softirq",
    "call_timer_fn", "_run_timers", "run_timer_softirq", "hrtimer_run", "run_ksoftirqd",
    "smpboot_thread_fn", "^kthread$", "start_secondary", "cpu_startup_entry", "ret_from_fork",
    // File and socket operations are discriminating: keep the callback.
    "vfs_write", "vfs_read", "vfs_iter_read", "vfs_iter_write", "do_iter_read", "do_iter_write",
    "call_read_iter", "call_write_iter", "new_sync_read", "new_sync_write", "vfs_ioctl",
    "ksys_ioctl", "compat_ioctl", "compat_sys_ioctl", "blkdev_driver_ioctl", "blkdev_ioctl",
    "^call_read_iter", "^call_write_iter", "do_iter_readv_writev", "^call_mmap", "mmap_region",
    "do_mmap", "do_dentry_open", "vfs_open", "^sock_sendmsg", "^sock_recvmsg", "^sock_release",
    "^__sock_release", "^setsockopt$", "kernel_setsockopt", "sock_common_setsockopt", "^listen$",
    "kernel_listen", "sk_common_release", "^sock_mmap", "^accept$", "kernel_accept",
    "^sock_do_ioctl", "^sock_ioctl", "^compat_sock_ioctl", "^nfnetlink_rcv_msg",
    "^rtnetlink_rcv_msg", "^netlink_dump", "^(sys_)?(socketpair|connect|ioctl)",
    // Page faults and return-to-user work.
    "__do_fault", "do_page_fault", "^page_fault$", "__fput", "task_work_run", "exit_to_usermode",
    "smp_call_function", "tasklet_action", "tasklet_hi_action",
];

/// Hung-task frames that say "waiting", not what for.
#[rustfmt::skip]
pub(crate) const HANG_SKIP: &[&str] = &[
    "sched", "_lock", "_slowlock", "down", "rwsem", "completion", "kthread", "wait", "synchronize",
    "context_switch", "__switch_to", "cancel_delayed_work", "rcu_barrier",
];

pub(crate) static GLOBAL_SKIP: LazyLock<Regex> = LazyLock::new(|| re(&SKIP_FRAMES.join("|")));
pub(crate) static STALL_ANCHOR_RE: LazyLock<Regex> = LazyLock::new(|| re(&STALL_ANCHORS.join("|")));

/// Any header, for a fast first look at each line.
static HEADER_PREFILTER: LazyLock<Regex> = LazyLock::new(|| {
    let alts: Vec<String> = GROUPS.iter().map(|g| regex::escape(g.header)).collect();
    Regex::new(&alts.join("|")).expect("header prefilter")
});

/// The group whose header is on this line, if any.
pub(crate) fn find_group(line: &str) -> Option<usize> {
    if !HEADER_PREFILTER.is_match(line) {
        return None;
    }
    GROUPS.iter().position(|g| line.contains(g.header) && !g.suppress.iter().any(|s| s.is_match(line)))
}

pub(crate) fn is_continuation(line: &str) -> bool {
    CONTINUATIONS.iter().any(|c| line.contains(c))
}

/// What a report line says about the report's extent.
#[derive(Clone, Copy, Default)]
pub(crate) struct Markers {
    /// "Disabling lock debugging due to kernel taint": noise, dropped.
    pub(crate) taint_note: bool,
    /// "Sending NMI from CPU": all-CPU backtraces follow.
    pub(crate) nmi_backtrace: bool,
    pub(crate) panic: bool,
    /// See [`STACK_NOISE`].
    pub(crate) stack_noise: bool,
    /// `---[ end trace` or `---[ end Kernel panic`.
    pub(crate) end_marker: bool,
}

const MARKERS: &[&str] = &[
    "Disabling lock debugging due to kernel taint",
    "Sending NMI from CPU",
    "Kernel panic - not syncing",
    "---[ end trace",
    "---[ end Kernel panic",
];

static MARKER_AC: LazyLock<AhoCorasick> = LazyLock::new(|| literals(MARKERS.iter().chain(STACK_NOISE)));

/// A literal searcher; leftmost semantics let it use SIMD prefilters.
pub(crate) fn literals<I: IntoIterator<Item = P>, P: AsRef<[u8]>>(pats: I) -> AhoCorasick {
    AhoCorasick::builder().match_kind(aho_corasick::MatchKind::LeftmostFirst).build(pats).expect("literals")
}

/// One pass over the line for all markers (most lines have none).
pub(crate) fn line_markers(line: &str) -> Markers {
    let mut m = Markers::default();
    // No marker contains another: leftmost matches see them all.
    for hit in MARKER_AC.find_iter(line) {
        match hit.pattern().as_usize() {
            0 => m.taint_note = true,
            1 => m.nmi_backtrace = true,
            2 => m.panic = true,
            3 | 4 => m.end_marker = true,
            _ => m.stack_noise = true,
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_compile_and_headers_resolve() {
        assert!(GLOBAL_SKIP.is_match("warn_slowpath_fmt"));
        assert!(STALL_ANCHOR_RE.is_match("do_syscall_64"));
        let bug = find_group("[  1.0] BUG: KASAN: use-after-free in foo+0x1/0x2");
        assert_eq!(GROUPS[bug.unwrap()].header, "BUG:");
        assert_eq!(find_group("[  1.0] ODEBUG: Out of memory. BUG: x"), None);
        assert_eq!(find_group("INFO: lockdep is turned off."), None);
        assert_eq!(find_group("just a line"), None);
        let w = find_group("WARNING: CPU: 1 PID: 51 at mm/gup.c:224 try_grab_page+0x1f/0x84").unwrap();
        assert_eq!(GROUPS[w].header, "WARNING:");
        assert!(GROUPS[find_group("page dumped because: x").unwrap()].weak);
        assert!(is_continuation("Oops: 0000 [#1] SMP"));
    }
}
