//! The kernel .config: base (tinyconfig, defconfig or a file), fragments
//! merged in order with the kernel's own merge_config.sh, then olddefconfig.
//! olddefconfig silently drops options whose dependencies are unmet, so every
//! option a fragment asked for is checked in the result, and a dropped one is
//! an error that names its unmet `depends on`.

use crate::error::{bad_input, Context, Result};
use crate::proc;
use crate::scenario::Base;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One `CONFIG_X=v` (or `# CONFIG_X is not set`, value "n") a fragment asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wanted {
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) origin: String,
}

/// Parses config text into (name without CONFIG_, value); "is not set" is "n".
pub(crate) fn parse(text: &str) -> HashMap<String, String> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(l: &str) -> Option<(String, String)> {
    let l = l.trim();
    if let Some(rest) = l.strip_prefix("# CONFIG_") {
        let name = rest.strip_suffix(" is not set")?;
        return Some((name.to_string(), "n".to_string()));
    }
    let (k, v) = l.strip_prefix("CONFIG_")?.split_once('=')?;
    Some((k.to_string(), v.to_string()))
}

pub(crate) fn wanted(fragment: &Path) -> Result<Vec<Wanted>> {
    let text = std::fs::read_to_string(fragment)
        .map_err(|e| bad_input(format!("{}: cannot read fragment: {e}", fragment.display())).because(e))?;
    Ok(text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| parse_line(l).map(|(name, value)| Wanted { name, value, origin: format!("{}:{}", fragment.display(), i + 1) }))
        .collect())
}

/// Options whose final value differs from what was asked (later fragments win).
pub(crate) fn dropped(wanted: &[Wanted], final_cfg: &HashMap<String, String>) -> Vec<(Wanted, String)> {
    let mut last: Vec<&Wanted> = Vec::new();
    for w in wanted {
        last.retain(|x| x.name != w.name);
        last.push(w);
    }
    last.into_iter()
        .filter_map(|w| {
            let got = final_cfg.get(&w.name).cloned().unwrap_or_else(|| "n".into());
            (got != w.value).then(|| (w.clone(), got))
        })
        .collect()
}

/// The `depends on` lines of `config NAME` in the tree's Kconfig files.
pub(crate) fn depends_on(src: &Path, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let header = format!("config {name}");
    let mut stack = vec![src.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let fname = e.file_name();
            let fname = fname.to_string_lossy();
            if p.is_dir() {
                if !fname.starts_with('.') {
                    stack.push(p);
                }
            } else if fname.starts_with("Kconfig") {
                let Ok(text) = std::fs::read_to_string(&p) else { continue };
                let mut inside = false;
                for l in text.lines() {
                    let t = l.trim();
                    if t == header || t == format!("menuconfig {name}") {
                        inside = true;
                    } else if inside
                        && (t.starts_with("config ")
                            || t.starts_with("menuconfig ")
                            || t.starts_with("endmenu")
                            || t.starts_with("menu ")
                            || t.starts_with("choice")
                            || t.starts_with("endif")
                            || t.starts_with("if ")
                            || t.starts_with("source "))
                    {
                        inside = false;
                    } else if inside {
                        if let Some(dep) = t.strip_prefix("depends on ") {
                            out.push(dep.trim().to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

/// The symbols of a `depends on` expression that are off in `cfg`.
pub(crate) fn unmet(expr: &str, cfg: &HashMap<String, String>) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|s| !s.is_empty() && s.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        .filter(|s| !matches!(cfg.get(*s).map(String::as_str), Some("y") | Some("m")))
        .map(str::to_string)
        .collect()
}

/// Builds `build/.config` in `src` for `base` + `fragments` and verifies it.
pub(crate) fn make_config(src: &Path, build: &Path, base: &Base, fragments: &[PathBuf], log: &Path) -> Result<PathBuf> {
    let make = |target: &str| {
        let mut c = Command::new("make");
        c.arg("-C").arg(src).arg(format!("O={}", build.display())).arg(target);
        c
    };
    let cfg = build.join(".config");
    match base {
        Base::Tinyconfig => proc::run_logged(make("tinyconfig"), log, Some(proc::deadline::TREE), |_| {})?,
        Base::Defconfig => proc::run_logged(make("defconfig"), log, Some(proc::deadline::TREE), |_| {})?,
        Base::File(f) => {
            std::fs::copy(f, &cfg).context(|| format!("copying base config {}", f.display()))?;
        }
    }
    if !fragments.is_empty() {
        let mut c = Command::new(src.join("scripts/kconfig/merge_config.sh"));
        c.current_dir(src).args(["-m", "-O"]).arg(build).arg(&cfg).args(fragments);
        proc::run_logged(c, log, Some(proc::deadline::TREE), |_| {})?;
    }
    proc::run_logged(make("olddefconfig"), log, Some(proc::deadline::TREE), |_| {})?;

    let text = std::fs::read_to_string(&cfg).context(|| format!("reading {}", cfg.display()))?;
    let final_cfg = parse(&text);
    let mut asked = Vec::new();
    for f in fragments {
        asked.extend(wanted(f)?);
    }
    let bad = dropped(&asked, &final_cfg);
    if bad.is_empty() {
        return Ok(cfg);
    }
    let mut msg = String::from("kernel config: olddefconfig did not keep what the fragments ask for:");
    for (w, got) in &bad {
        let deps = depends_on(src, &w.name);
        let why: Vec<String> = deps
            .iter()
            .map(|d| {
                let u = unmet(d, &final_cfg);
                if u.is_empty() {
                    format!("depends on {d}")
                } else {
                    format!("depends on {d} (unmet: {})", u.join(", "))
                }
            })
            .collect();
        msg += &format!(
            "\n  CONFIG_{}={} ({}) ended up {}{}{}",
            w.name,
            w.value,
            w.origin,
            if got == "n" { "not set".to_string() } else { format!("={got}") },
            if why.is_empty() { "" } else { "; " },
            why.join("; ")
        );
    }
    Err(bad_input(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_values_and_not_set() {
        let c = parse("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\n# comment\n");
        assert_eq!(c["A"], "y");
        assert_eq!(c["B"], "n");
        assert_eq!(c["C"], "\"x y\"");
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn dropped_option_is_found_and_later_fragment_wins() {
        let d = tempfile::tempdir().unwrap();
        let f1 = d.path().join("a.config");
        let f2 = d.path().join("b.config");
        std::fs::write(&f1, "CONFIG_TMPFS=y\nCONFIG_X=y\n# CONFIG_Y is not set\n").unwrap();
        std::fs::write(&f2, "CONFIG_X=n\n").unwrap();
        let mut w = wanted(&f1).unwrap();
        w.extend(wanted(&f2).unwrap());
        let final_cfg = parse("# CONFIG_TMPFS is not set\n# CONFIG_X is not set\n");
        let bad = dropped(&w, &final_cfg);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].0.name, "TMPFS");
        assert!(bad[0].0.origin.ends_with("a.config:1"));
        assert_eq!(bad[0].1, "n");
    }

    #[test]
    fn depends_on_and_unmet_explain_a_drop() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("fs")).unwrap();
        std::fs::write(
            d.path().join("fs/Kconfig"),
            "config TMPFS\n\tbool \"Tmpfs\"\n\tdepends on SHMEM && (PROC_FS || SYSFS)\n\thelp\n\t  x\n\nconfig OTHER\n\tdepends on FOO\n",
        )
        .unwrap();
        let deps = depends_on(d.path(), "TMPFS");
        assert_eq!(deps, vec!["SHMEM && (PROC_FS || SYSFS)".to_string()]);
        let cfg = parse("CONFIG_PROC_FS=y\n# CONFIG_SHMEM is not set\n");
        assert_eq!(unmet(&deps[0], &cfg), vec!["SHMEM".to_string(), "SYSFS".to_string()]);
    }
}
