//! Kernel sources as git checkouts in the cache, whatever the origin: a
//! Debian tarball is unpacked and committed once, a user's repository is
//! cloned with `--shared`, a plain tree is snapshotted into a commit. Patches are
//! then applied with `git apply` on a clean checkout. git rewrites only files
//! that change, so make's timestamps stay right and one O= build directory
//! serves every variant and every bisection step incrementally.

use crate::cache;
use crate::error::{bad_input, infra, Context, Result};
use crate::proc;
use crate::scenario::Source;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A commit as a report names it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct CommitInfo {
    /// The full id.
    pub(crate) commit: String,
    pub(crate) subject: String,
    /// `Name <mail>`.
    pub(crate) author: String,
}

/// A source ready for checkouts: a git work tree and the commit to build.
#[derive(Debug, Clone)]
pub struct Tree {
    /// The git work tree kregress owns (never the user's checkout).
    pub dir: PathBuf,
    /// The commit that holds the unpatched source.
    pub commit: String,
    /// Identity of the source for cache keys (tarball hash, commit, tree listing hash).
    pub identity: String,
}

fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(dir);
    // The maintenance git runs after a commit or a fetch (a repack of the
    // Debian import's 70k loose objects) stays in the foreground: detached,
    // it left kregress's process group, its deadline and its death.
    c.args(["-c", "gc.autoDetach=false", "-c", "maintenance.autoDetach=false"]);
    // The tree is ours alone; keep user/system git config from changing behaviour.
    c.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "kregress")
        .env("GIT_AUTHOR_EMAIL", "kregress@localhost")
        .env("GIT_COMMITTER_NAME", "kregress")
        .env("GIT_COMMITTER_EMAIL", "kregress@localhost")
        // Fixed dates: the same tarball gives the same commit id on every host.
        .env("GIT_AUTHOR_DATE", "1970-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "1970-01-01T00:00:00Z");
    c
}

fn git_out(dir: &Path, args: &[&str]) -> Result<String> {
    let mut c = git(dir);
    c.args(args);
    Ok(proc::output(c, proc::deadline::TREE)?.trim().to_string())
}

/// Prepares `src` (at `rev` for git sources); `log` receives every command.
pub fn prepare(src: &Source, rev: Option<&str>, log: &Path) -> Result<Tree> {
    match src {
        Source::Debian(name) => debian(name, log),
        Source::Git { repo, rev: base_rev } => git_source(repo, rev.unwrap_or(base_rev), log),
        Source::Path(p) => path_source(p, log),
    }
}

/// The tarball's sha256, remembered per (path, size, mtime) so that a cache
/// hit does not re-read 140 MB.
fn tarball_hash(tar: &Path) -> Result<String> {
    let md = std::fs::metadata(tar).context(|| format!("stat {}", tar.display()))?;
    let mtime = md.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    let stamp = format!("{}:{}:{:?}", tar.display(), md.len(), mtime);
    let memo = cache::dir("sources")?.join(format!("{}.sha256", cache::Key::new("stamp").part("s", stamp.as_bytes()).hex()));
    if let Ok(h) = std::fs::read_to_string(&memo) {
        return Ok(h.trim().to_string());
    }
    let h = cache::sha256_file(tar)?;
    cache::write_atomic(&memo, h.as_bytes())?;
    Ok(h)
}

fn debian(name: &str, log: &Path) -> Result<Tree> {
    let tar = PathBuf::from(format!("/usr/src/{name}.tar.xz"));
    if !tar.is_file() {
        return Err(infra(format!("kernel source {name}: {} is missing; install it with `apt-get install {name}`", tar.display())));
    }
    let hash = tarball_hash(&tar)?;
    let identity = format!("debian:{name}:{hash}");
    let top = cache::dir("sources")?;
    let dir = top.join(format!("{name}-{}", &hash[..12]));
    let _lock = cache::lock(&top.join(format!("{name}-{}.lock", &hash[..12])))?;
    if !dir.join(".git").is_dir() {
        let tmp = cache::scratch_dir(&top)?;
        let mut c = Command::new("tar");
        c.arg("-xf").arg(&tar).arg("-C").arg(tmp.path());
        proc::run_logged(c, log, Some(proc::deadline::TREE), |_| {})?;
        let inner = tmp.path().join(name);
        let ignore = inner.join(".gitignore");
        // Debian ends the top-level .gitignore with "ignore everything at the
        // top level" (its packaging repo); without removing it `git add -A` adds nothing.
        if let Ok(text) = std::fs::read_to_string(&ignore) {
            let cut = text.find("# Debian packaging").unwrap_or(text.len());
            std::fs::write(&ignore, &text[..cut]).context(|| format!("writing {}", ignore.display()))?;
        }
        commit_all(&inner, &format!("{name} as unpacked from {}", tar.display()), log)?;
        std::fs::rename(&inner, &dir).context(|| format!("moving source into {}", dir.display()))?;
    }
    let commit = git_out(&dir, &["rev-parse", "HEAD"])?;
    Ok(Tree { dir, commit, identity })
}

fn commit_all(dir: &Path, msg: &str, log: &Path) -> Result<()> {
    if !dir.join(".git").is_dir() {
        let mut c = git(dir);
        c.args(["init", "-q", "-b", "kregress"]);
        proc::run_logged(c, log, Some(proc::deadline::TREE), |_| {})?;
    }
    let mut c = git(dir);
    c.args(["add", "-A"]);
    proc::run_logged(c, log, Some(proc::deadline::TREE), |_| {})?;
    let mut c = git(dir);
    c.args(["commit", "-q", "--allow-empty", "--no-verify", "-m", msg]);
    proc::run_logged(c, log, Some(proc::deadline::TREE), |_| {})
}

/// The commit `rev` names in the repository `repo`; `None` when it names
/// none (or `repo` is no repository).
pub(crate) fn resolve(repo: &Path, rev: &str) -> Result<Option<String>> {
    match git_out(repo, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")]) {
        Ok(c) => Ok(Some(c)),
        Err(e) if proc::expired(&e) => Err(e),
        Err(_) => Ok(None),
    }
}

fn git_source(repo: &Path, rev: &str, log: &Path) -> Result<Tree> {
    if !repo.exists() {
        return Err(bad_input(format!("kernel.source.git: no such repository: {}", repo.display())));
    }
    let commit = resolve(repo, rev)?.ok_or_else(|| bad_input(format!("kernel.source.git: {}: no commit {rev}", repo.display())))?;
    let top = cache::dir("sources")?;
    let abs = std::path::absolute(repo).context(|| format!("resolving {}", repo.display()))?;
    let id = cache::Key::new("git-source").part("path", abs.as_os_str().as_encoded_bytes()).hex();
    let dir = top.join(format!("git-{}", &id[..12]));
    let _lock = cache::lock(&top.join(format!("git-{}.lock", &id[..12])))?;
    if !dir.join(".git").exists() {
        // --shared borrows the user's objects: no copy, and their repo is untouched.
        let mut c = Command::new("git");
        c.args(["clone", "-q", "--shared", "--no-checkout"]).arg(&abs).arg(&dir);
        proc::run_logged(c, log, Some(proc::deadline::TREE), |_| {})?;
    }
    if git_out(&dir, &["cat-file", "-e", &format!("{commit}^{{commit}}")]).is_err() {
        let mut c = git(&dir);
        c.args(["fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]);
        proc::run_logged(c, log, Some(proc::deadline::TREE), |_| {})?;
    }
    Ok(Tree { dir, commit: commit.clone(), identity: format!("git:{commit}") })
}

/// A plain tree: snapshotted into the cache's repository as a commit, read
/// straight from the user's tree through a private index (git's own stat
/// cache makes a second snapshot cheap; `.gitignore`d files, such as an
/// in-tree build's objects, are left out). The snapshot never writes into
/// the work tree that make builds from: only [`checkout`], under the build
/// lock, does, and git gives every file it rewrites a fresh mtime. (An rsync
/// into the work tree used to restore a file that a variant's patch had
/// changed with its old mtime: make kept the patched object, and `stock`
/// built after `fixed` still held the fix.) Identity: the snapshot's tree hash.
fn path_source(src: &Path, log: &Path) -> Result<Tree> {
    if !src.join("Makefile").is_file() {
        return Err(bad_input(format!("kernel.source.path: {} is not a kernel tree (no Makefile)", src.display())));
    }
    let abs = std::path::absolute(src).context(|| format!("resolving {}", src.display()))?;
    let top = cache::dir("sources")?;
    let id = cache::Key::new("path-source").part("path", abs.as_os_str().as_encoded_bytes()).hex();
    let dir = top.join(format!("path-{}", &id[..12]));
    let _lock = cache::lock(&top.join(format!("path-{}.lock", &id[..12])))?;
    if !dir.join(".git").is_dir() {
        std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        let mut c = git(&dir);
        c.args(["init", "-q", "-b", "kregress"]);
        proc::run_logged(c, log, Some(proc::deadline::TREE), |_| {})?;
    }
    let gitdir = dir.join(".git");
    let mut c = git(&dir);
    c.arg(format!("--git-dir={}", gitdir.display()))
        .arg(format!("--work-tree={}", abs.display()))
        .env("GIT_INDEX_FILE", gitdir.join("kregress-snapshot-index"))
        .args(["add", "-A"]);
    proc::run_logged(c, log, Some(proc::deadline::TREE), |_| {})?;
    let mut c = git(&dir);
    c.env("GIT_INDEX_FILE", gitdir.join("kregress-snapshot-index")).arg("write-tree");
    let tree = proc::output(c, proc::deadline::TREE)?.trim().to_string();
    let commit = git_out(&dir, &["commit-tree", &tree, "-m", &format!("snapshot of {}", abs.display())])?;
    // A ref keeps the snapshot from git's garbage collection.
    git_out(&dir, &["update-ref", "refs/kregress/snapshot", &commit])?;
    Ok(Tree { dir, commit, identity: format!("path:{tree}") })
}

/// The history of a git source, read without touching its work tree (what
/// `kregress bisect` asks of its clone).
impl Tree {
    /// Whether `ancestor` is `descendant` or one of its ancestors.
    pub(crate) fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool {
        git_out(&self.dir, &["merge-base", "--is-ancestor", ancestor, descendant]).is_ok()
    }

    /// The commits after `from` up to and including `to` along `to`'s first
    /// parents, oldest first.
    pub(crate) fn first_parent_range(&self, from: &str, to: &str) -> Result<Vec<String>> {
        let list = git_out(&self.dir, &["rev-list", "--first-parent", "--reverse", &format!("{from}..{to}")])?;
        Ok(list.lines().map(str::to_string).collect())
    }

    /// `commit`'s full id, subject and author.
    pub(crate) fn describe(&self, commit: &str) -> Result<CommitInfo> {
        let out = git_out(&self.dir, &["log", "-1", "--format=%H%x00%s%x00%an <%ae>", commit])?;
        let mut p = out.split('\0').map(str::to_string);
        Ok(CommitInfo { commit: p.next().unwrap_or_default(), subject: p.next().unwrap_or_default(), author: p.next().unwrap_or_default() })
    }

    /// `commit`'s first parent.
    pub(crate) fn parent(&self, commit: &str) -> Result<String> {
        git_out(&self.dir, &["rev-parse", &format!("{commit}^")])
    }

    /// A patch that undoes `commit` on any tree that has it: its diff to its
    /// first parent, binary-safe, as [`checkout`] applies patches.
    pub(crate) fn revert_diff(&self, commit: &str) -> Result<String> {
        Ok(git_out(&self.dir, &["diff", "--binary", commit, &format!("{commit}^")])? + "\n")
    }
}

/// Checks out `tree.commit` cleanly and applies `patches` in order.
pub(crate) fn checkout(tree: &Tree, patches: &[PathBuf], log: &Path) -> Result<()> {
    let mut c = git(&tree.dir);
    c.args(["reset", "-q", "--hard", &tree.commit]);
    proc::run_logged(c, log, Some(proc::deadline::TREE), |_| {})?;
    // Files a previous variant's patch created; the build is out of tree, so
    // nothing else is untracked here.
    let mut c = git(&tree.dir);
    c.args(["clean", "-q", "-fd"]);
    proc::run_logged(c, log, Some(proc::deadline::TREE), |_| {})?;
    for p in patches {
        apply(&tree.dir, p, log)?;
    }
    Ok(())
}

fn apply(dir: &Path, patch: &Path, log: &Path) -> Result<()> {
    // `git -C dir` resolves a relative path from `dir`, not from where the
    // user stands (bisect's revert.patch under the default relative --results
    // was "No such file" and the revert check was skipped).
    let patch = &std::path::absolute(patch).context(|| format!("resolving {}", patch.display()))?;
    let mut c = git(dir);
    c.args(["apply", "--whitespace=nowarn"]).arg(patch);
    match proc::run_logged(c, log, Some(proc::deadline::TREE), |_| {}) {
        Ok(()) => Ok(()),
        Err(e) if proc::expired(&e) => Err(e),
        Err(e) => {
            let text = std::fs::read_to_string(patch).unwrap_or_default();
            Err(bad_input(format!("patch {} does not apply: {}", patch.display(), rejected(&e.msg, &text))))
        }
    }
}

/// From `git apply`'s "error: patch failed: FILE:LINE", the file and the
/// header of the hunk that starts there.
pub(crate) fn rejected(git_err: &str, patch: &str) -> String {
    let Some(spot) = git_err.lines().find_map(|l| l.split("error: patch failed: ").nth(1)) else {
        let why = git_err.lines().find(|l| l.starts_with("error:")).unwrap_or("git apply failed");
        return why.trim_start_matches("error: ").to_string();
    };
    let (file, line) = spot.rsplit_once(':').unwrap_or((spot, ""));
    let mut in_file = false;
    for l in patch.lines() {
        if let Some(f) = l.strip_prefix("+++ ") {
            in_file = f.trim_start_matches("b/").split('\t').next() == Some(file);
        } else if in_file && l.starts_with("@@ -") {
            let start = l[4..].split([',', ' ']).next().unwrap_or("");
            if start == line {
                return format!("{file}: hunk `{l}` rejected");
            }
        }
    }
    format!("{file}: hunk at line {line} rejected")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "--- a/block/bio.c\n+++ b/block/bio.c\n@@ -10,3 +10,4 @@\n a\n+b\n c\n@@ -1121,7 +1121,12 @@\n x\n";

    #[test]
    fn rejected_names_file_and_hunk() {
        let err = "`git apply` failed\nerror: patch failed: block/bio.c:1121\nerror: block/bio.c: patch does not apply";
        assert_eq!(rejected(err, PATCH), "block/bio.c: hunk `@@ -1121,7 +1121,12 @@` rejected");
    }

    #[test]
    fn rejected_missing_file() {
        let err = "error: mm/nope.c: No such file or directory";
        assert_eq!(rejected(err, PATCH), "mm/nope.c: No such file or directory");
    }

    /// A real git repo: a patch that does not apply is bad input naming the
    /// patch, the file and the hunk; a patch that applies is reverted by the
    /// next checkout.
    #[test]
    fn checkout_applies_and_reverts_patches() {
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("src");
        std::fs::create_dir_all(repo.join("block")).unwrap();
        let body: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        std::fs::write(repo.join("block/bio.c"), &body).unwrap();
        let log = d.path().join("log");
        commit_all(&repo, "base", &log).unwrap();
        let commit = git_out(&repo, &["rev-parse", "HEAD"]).unwrap();
        let tree = Tree { dir: repo.clone(), commit, identity: "t".into() };

        let good = d.path().join("good.patch");
        std::fs::write(&good, "--- a/block/bio.c\n+++ b/block/bio.c\n@@ -2,3 +2,3 @@\n line 2\n-line 3\n+line three\n line 4\n").unwrap();
        checkout(&tree, std::slice::from_ref(&good), &log).unwrap();
        assert!(std::fs::read_to_string(repo.join("block/bio.c")).unwrap().contains("line three"));
        checkout(&tree, &[], &log).unwrap();
        assert_eq!(std::fs::read_to_string(repo.join("block/bio.c")).unwrap(), body);

        // A relative patch path means relative to where kregress runs.
        let here = std::env::current_dir().unwrap();
        let local = tempfile::tempdir_in(&here).unwrap();
        std::fs::copy(&good, local.path().join("good.patch")).unwrap();
        let rel = local.path().strip_prefix(&here).unwrap().join("good.patch");
        assert!(rel.is_relative());
        checkout(&tree, &[rel], &log).unwrap();
        assert!(std::fs::read_to_string(repo.join("block/bio.c")).unwrap().contains("line three"));

        let bad = d.path().join("bad.patch");
        std::fs::write(&bad, "--- a/block/bio.c\n+++ b/block/bio.c\n@@ -20,3 +20,3 @@\n line 20\n-line 99\n+line x\n line 22\n").unwrap();
        let e = checkout(&tree, &[good, bad], &log).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.msg.contains("bad.patch does not apply"), "{}", e.msg);
        assert!(e.msg.contains("block/bio.c: hunk `@@ -20,3 +20,3 @@` rejected"), "{}", e.msg);
    }

    /// The maintenance after a commit (here forced: gc.auto=1) has finished
    /// when the commit returns: it did not go on in the background.
    #[test]
    fn auto_maintenance_runs_inside_the_command() {
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("src");
        std::fs::create_dir_all(&repo).unwrap();
        for i in 0..3000 {
            std::fs::write(repo.join(format!("f{i}")), format!("{i}\n")).unwrap();
        }
        let log = d.path().join("log");
        for args in [&["init", "-q", "-b", "kregress"][..], &["config", "gc.auto", "1"]] {
            let mut c = git(&repo);
            c.args(args);
            proc::run_logged(c, &log, Some(proc::deadline::QUICK), |_| {}).unwrap();
        }
        commit_all(&repo, "many", &log).unwrap();
        let packs = std::fs::read_dir(repo.join(".git/objects/pack"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
            .count();
        assert_eq!(packs, 1, "no pack when the commit returned: the repack went on in the background");
    }

    /// A user's git repository is cloned, never touched: its HEAD, index and
    /// work tree stay as they were while kregress checks out another rev.
    #[test]
    fn git_source_leaves_the_users_checkout_alone() {
        let d = tempfile::tempdir().unwrap();
        crate::cache::set_test_root(&d.path().join("cache"));
        let user = d.path().join("linux");
        std::fs::create_dir_all(&user).unwrap();
        let log = d.path().join("log");
        std::fs::write(user.join("Makefile"), "v1\n").unwrap();
        commit_all(&user, "one", &log).unwrap();
        let first = git_out(&user, &["rev-parse", "HEAD"]).unwrap();
        std::fs::write(user.join("Makefile"), "v2\n").unwrap();
        commit_all(&user, "two", &log).unwrap();
        std::fs::write(user.join("Makefile"), "dirty\n").unwrap();

        let tree = prepare(&Source::Git { repo: user.clone(), rev: "HEAD~1".into() }, None, &log).unwrap();
        assert_eq!(tree.commit, first);
        assert!(!tree.dir.starts_with(&user));
        checkout(&tree, &[], &log).unwrap();
        assert_eq!(std::fs::read_to_string(tree.dir.join("Makefile")).unwrap(), "v1\n");
        assert_eq!(std::fs::read_to_string(user.join("Makefile")).unwrap(), "dirty\n");
        assert_ne!(git_out(&user, &["rev-parse", "HEAD"]).unwrap(), first);

        let e = prepare(&Source::Git { repo: user.clone(), rev: "nope".into() }, None, &log).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
    }

    /// What bisect reads from its clone, on a history with a merge: the
    /// range follows first parents; a revert diff applied on the tip undoes
    /// the commit.
    #[test]
    fn history_queries() {
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("src");
        std::fs::create_dir_all(&repo).unwrap();
        let log = d.path().join("log");
        let head = || git_out(&repo, &["rev-parse", "HEAD"]).unwrap();
        let step = |f: &str, text: &str, msg: &str| {
            std::fs::write(repo.join(f), text).unwrap();
            commit_all(&repo, msg, &log).unwrap();
            git_out(&repo, &["rev-parse", "HEAD"]).unwrap()
        };
        let good = step("a.c", "1\n", "good");
        let culprit = step("a.c", "2\n", "mm: the culprit");
        git_out(&repo, &["checkout", "-q", "-b", "side", &good]).unwrap();
        let side = step("b.c", "x\n", "side");
        git_out(&repo, &["checkout", "-q", "kregress"]).unwrap();
        git_out(&repo, &["merge", "-q", "--no-ff", "-m", "merge side", "side"]).unwrap();
        let (merge, tree) = (head(), Tree { dir: repo.clone(), commit: head(), identity: "t".into() });

        assert_eq!(resolve(&repo, "kregress~1").unwrap().as_deref(), Some(culprit.as_str()));
        assert_eq!(resolve(&repo, "nope").unwrap(), None);
        assert!(tree.is_ancestor(&good, &merge) && tree.is_ancestor(&merge, &merge) && !tree.is_ancestor(&merge, &good));
        assert_eq!(tree.first_parent_range(&good, &merge).unwrap(), vec![culprit.clone(), merge.clone()], "the side branch is no step");
        assert!(tree.is_ancestor(&side, &merge));
        assert_eq!(tree.parent(&culprit).unwrap(), good);
        let info = tree.describe(&culprit).unwrap();
        assert_eq!(
            (info.commit.as_str(), info.subject.as_str(), info.author.as_str()),
            (culprit.as_str(), "mm: the culprit", "kregress <kregress@localhost>")
        );
        assert!(tree.describe("nope").is_err());

        let patch = d.path().join("revert.patch");
        std::fs::write(&patch, tree.revert_diff(&culprit).unwrap()).unwrap();
        checkout(&tree, &[patch], &log).unwrap();
        assert_eq!(std::fs::read_to_string(repo.join("a.c")).unwrap(), "1\n");
        assert_eq!(std::fs::read_to_string(repo.join("b.c")).unwrap(), "x\n");
    }

    /// A plain tree is mirrored; its identity follows its content.
    #[test]
    fn path_source_identity_changes_with_the_tree() {
        let d = tempfile::tempdir().unwrap();
        crate::cache::set_test_root(&d.path().join("cache"));
        let user = d.path().join("tree");
        std::fs::create_dir_all(user.join("mm")).unwrap();
        std::fs::write(user.join("Makefile"), "x\n").unwrap();
        std::fs::write(user.join("mm/gup.c"), "a\n").unwrap();
        let log = d.path().join("log");
        let a = prepare(&Source::Path(user.clone()), None, &log).unwrap();
        let again = prepare(&Source::Path(user.clone()), None, &log).unwrap();
        assert_eq!(a.identity, again.identity);
        std::fs::write(user.join("mm/gup.c"), "b\n").unwrap();
        let b = prepare(&Source::Path(user.clone()), None, &log).unwrap();
        assert_ne!(a.identity, b.identity);
        checkout(&b, &[], &log).unwrap();
        assert_eq!(std::fs::read_to_string(b.dir.join("mm/gup.c")).unwrap(), "b\n");
        assert!(!user.join(".git").exists(), "kregress wrote into the user's tree");
    }

    /// The issue-12 wrong tree, with a real make: `fixed` (a patch) built,
    /// then `stock` from the same plain tree must not keep the fix. An rsync
    /// of the tree used to restore the patched file with its old mtime and
    /// make kept the patched object.
    #[test]
    fn path_source_stock_after_fixed_is_stock() {
        let d = tempfile::tempdir().unwrap();
        crate::cache::set_test_root(&d.path().join("cache"));
        let user = d.path().join("tree");
        std::fs::create_dir_all(&user).unwrap();
        // Out of tree, as kernels are built (O=).
        std::fs::write(user.join("Makefile"), "$(O)/obj: a.c\n\tcp a.c $(O)/obj\n").unwrap();
        std::fs::write(user.join("a.c"), "stock\n").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options().write(true).open(user.join("a.c")).unwrap().set_modified(old).unwrap();
        let fix = d.path().join("fix.patch");
        std::fs::write(&fix, "--- a/a.c\n+++ b/a.c\n@@ -1 +1 @@\n-stock\n+fixed\n").unwrap();
        let log = d.path().join("log");
        let o = d.path().join("build");
        std::fs::create_dir_all(&o).unwrap();
        let make = |t: &Tree| {
            let out = Command::new("make").arg("-s").arg("-C").arg(&t.dir).arg(format!("O={}", o.display())).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            std::fs::read_to_string(o.join("obj")).unwrap()
        };
        let t = prepare(&Source::Path(user.clone()), None, &log).unwrap();
        checkout(&t, &[fix], &log).unwrap();
        assert_eq!(make(&t), "fixed\n");
        let t = prepare(&Source::Path(user.clone()), None, &log).unwrap();
        checkout(&t, &[], &log).unwrap();
        assert_eq!(make(&t), "stock\n", "stock built after fixed kept the fix");
    }
}
