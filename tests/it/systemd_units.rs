//! The systemd unit, sysusers and tmpfiles snippets pass `systemd-analyze
//! verify` (and the other checks in scripts/verify-systemd.sh) against the
//! binary this build produced. Skipped, loudly, where systemd's tools are not
//! installed; CI installs them.

use std::path::Path;
use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

#[test]
fn systemd_files_verify() {
    if !["systemd-analyze", "systemd-sysusers", "systemd-tmpfiles"]
        .iter()
        .all(|tool| have(tool))
    {
        eprintln!("SKIPPED: systemd tools not installed (apt-get install systemd)");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/verify-systemd.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_marquee"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} failed:\n{}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
