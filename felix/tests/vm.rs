//! The outer VM test: boots ONE qemu VM with Debian's stock kernel (`tools/vmrun/vmrun.sh`) and runs the
//! `vm_inner` test binary (`tests/vm_inner/`) in it, as root, with `VMTEST_IN_VM=1 --test-threads=1`.
//! The inner output is streamed here line by line (prefixed `[vm] `); the test passes when every inner
//! test passed.
//!
//! It prints `SKIP: <reason>` and passes only when no VM can be started on this machine (no
//! qemu-system-x86_64 or static busybox: `vmrun.sh --check`). Under CI (`CI` set, as `.ci/run` runs) or
//! with `VMTEST_REQUIRE=1` that is a failure instead, since `tools/test.sh` installs them.
//!
//! The inner binary is the `vm_inner-*` next to this test's executable (same profile), when it is newer
//! than the felix sources; otherwise (e.g. `cargo test --test vm` alone) it is built with cargo first.
//! `VMTEST_INNER_BIN=path` overrides. `VMRUN_TIMEOUT`, `VMRUN_CACHE`... are passed to vmrun.sh as set.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

const INNER: &str = "vm_inner";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Write straight to the process's stdout, past libtest's capture: progress shows while the VM runs.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn required() -> bool {
    let set = |v: &str| std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0" && s != "false");
    set("CI") || set("VMTEST_REQUIRE")
}

fn mtime(p: &Path) -> Option<SystemTime> {
    p.metadata().and_then(|m| m.modified()).ok()
}

/// Newest modification time of the files the inner binary is built from.
fn sources_mtime() -> SystemTime {
    fn walk(p: &Path, newest: &mut SystemTime) {
        if let Ok(rd) = p.read_dir() {
            for e in rd.flatten() {
                walk(&e.path(), newest);
            }
        } else if let Some(t) = mtime(p) {
            *newest = (*newest).max(t);
        }
    }
    let mut newest = SystemTime::UNIX_EPOCH;
    let m = manifest_dir();
    for p in [
        m.join("src"),
        m.join("tests").join(INNER),
        m.join("Cargo.toml"),
        m.join("../Cargo.lock"),
    ] {
        walk(&p, &mut newest);
    }
    newest
}

/// The newest `vm_inner-<hash>` executable in `dir` (cargo's deps dir of this profile).
fn newest_inner(dir: &Path) -> Option<(PathBuf, SystemTime)> {
    use std::os::unix::fs::PermissionsExt;
    dir.read_dir()
        .ok()?
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.strip_prefix(INNER)
                .and_then(|r| r.strip_prefix('-'))
                .is_some_and(|h| !h.contains('.'))
        })
        .filter_map(|e| {
            let md = e.metadata().ok()?;
            let t = md.modified().ok()?;
            (md.is_file() && md.permissions().mode() & 0o111 != 0).then(|| (e.path(), t))
        })
        .max_by_key(|(_, t)| *t)
}

/// Build the inner test binary with the cargo that runs us, in the same target dir and profile.
fn build_inner(deps: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let profile_dir = deps.parent().expect("deps dir has a parent");
    let profile = profile_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let above = profile_dir.parent().unwrap();
    // target/<profile>/deps, or target/<triple>/<profile>/deps when built with --target.
    let (target_dir, triple) =
        if above.join("CACHEDIR.TAG").exists() || above.join(".rustc_info.json").exists() {
            (above.to_path_buf(), None)
        } else {
            (
                above.parent().unwrap().to_path_buf(),
                Some(above.file_name().unwrap().to_string_lossy().into_owned()),
            )
        };
    let mut cmd = Command::new(cargo);
    cmd.args([
        "test",
        "--no-run",
        "--message-format=json-render-diagnostics",
        "-p",
        "tortie-felix",
        "--test",
        INNER,
    ])
    .arg("--manifest-path")
    .arg(manifest_dir().join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target_dir);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        p => {
            cmd.args(["--profile", p]);
        }
    }
    if let Some(t) = &triple {
        cmd.args(["--target", t]);
    }
    say(&format!("vm: building the {INNER} test binary: {cmd:?}"));
    let out = cmd.stderr(Stdio::inherit()).output().expect("run cargo");
    assert!(
        out.status.success(),
        "building {INNER} failed ({})",
        out.status
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == INNER)
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo built no {INNER} executable"))
}

fn inner_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("VMTEST_INNER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a parent dir");
    match newest_inner(deps) {
        Some((bin, built)) if built >= sources_mtime() => bin,
        found => {
            if let Some((bin, _)) = found {
                say(&format!(
                    "vm: {} is older than the felix sources",
                    bin.display()
                ));
            }
            build_inner(deps)
        }
    }
}

#[test]
fn inner_tests_pass_in_a_vm() {
    let repo = manifest_dir().parent().expect("felix is in the workspace");
    let vmrun = repo.join("tools/vmrun/vmrun.sh");

    let check = Command::new(&vmrun)
        .arg("--check")
        .output()
        .expect("run vmrun.sh --check");
    if !check.status.success() {
        let reason = String::from_utf8_lossy(&check.stderr)
            .trim()
            .replace('\n', "; ");
        if required() {
            panic!("no VM can be started here, and CI/VMTEST_REQUIRE needs one: {reason}");
        }
        say(&format!("SKIP: no qemu VM on this machine: {reason}"));
        return;
    }

    let inner = inner_binary();
    say(&format!("vm: running {} in a VM", inner.display()));
    let start = Instant::now();
    let mut cmd = Command::new(&vmrun);
    cmd.arg(&inner)
        .arg("--test-threads=1")
        .env("VMTEST_IN_VM", "1");
    if std::env::var_os("VMRUN_CACHE").is_none() && std::env::var_os("CARGO_TARGET_DIR").is_none() {
        // vmrun.sh's default is <repo>/target/vmrun-cache; follow this build's target dir instead.
        if let Some(target) = inner.ancestors().find(|a| a.join("CACHEDIR.TAG").exists()) {
            cmd.env("VMRUN_CACHE", target.join("vmrun-cache"));
        }
    }
    let mut child = cmd
        .current_dir(repo)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vmrun.sh");
    let pump = |r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut tail = Vec::new();
            for line in BufReader::new(r).split(b'\n').map_while(Result::ok) {
                let line = String::from_utf8_lossy(&line)
                    .trim_end_matches('\r')
                    .to_string();
                say(&format!("[vm] {line}"));
                tail.push(line);
            }
            tail
        })
    };
    let out = pump(Box::new(child.stdout.take().unwrap()));
    let err = pump(Box::new(child.stderr.take().unwrap()));
    let status = child.wait().expect("wait for vmrun.sh");
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    say(&format!(
        "vm: done in {:.1} s: {status}",
        start.elapsed().as_secs_f64()
    ));
    assert!(
        out.iter().any(|l| l.starts_with("test result: ok.")) || !status.success(),
        "the VM exited 0 but printed no libtest result"
    );
    match status.code() {
        Some(0) => {}
        Some(125) => panic!("the VM failed (vmrun.sh exit 125): {}", err.join("; ")),
        _ => panic!("inner VM tests failed ({status}); their output is above, prefixed [vm]"),
    }
}
