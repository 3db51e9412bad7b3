//! The Debian package: `scripts/package-deb.sh` builds it from this test
//! run's own `marquee` binary (the dev build, gzip -1 to stay quick), then
//! `dpkg-deb` lists and unpacks it: every file where the unit, the config
//! and the binary expect it, the conffile and maintainer scripts in place,
//! and the packaged binary loads the packaged model and config.
//!
//! Needs `dpkg-deb` (Debian's `dpkg`, always there on Debian and Ubuntu) and
//! binutils' `strip`/`readelf`; skipped with a message where they are missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

/// A scratch folder removed when dropped (std only: this file needs no
/// dev-dependency).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("marquee-packaging-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `dpkg-deb -c`: path -> (mode string, owner/group).
fn listing(deb: &Path) -> BTreeMap<String, (String, String)> {
    stdout(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let path = cols[5].trim_start_matches('.').to_string();
            (path, (cols[0].to_string(), cols[1].to_string()))
        })
        .collect()
}

#[test]
fn the_amd64_package_holds_what_the_unit_and_binary_expect() {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        eprintln!("skipped: the amd64 package is built on x86_64 Linux");
        return;
    }
    for tool in ["dpkg-deb", "strip", "readelf"] {
        if !have(tool) {
            eprintln!("skipped: {tool} not installed (Debian: apt-get install dpkg binutils)");
            return;
        }
    }
    let tmp = Scratch::new();
    let script = root().join("scripts/package-deb.sh");
    let out = stdout(
        Command::new("bash")
            .arg(&script)
            .args(["--target", "x86_64-unknown-linux-gnu", "--fast", "--binary"])
            .arg(env!("CARGO_BIN_EXE_marquee"))
            .arg("--out")
            .arg(tmp.path()),
    );
    let deb = PathBuf::from(out.lines().last().unwrap().trim());
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!("marquee_{version}_amd64.deb")
    );

    // Control data.
    let field = |name: &str| stdout(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
    assert_eq!(field("Package").trim(), "marquee");
    assert_eq!(field("Version").trim(), version);
    assert_eq!(field("Architecture").trim(), "amd64");
    let depends = field("Depends");
    assert!(depends.starts_with("libc6 (>= 2."), "{depends}");

    // Files: where the unit (ExecStart, sysusers, tmpfiles), the default
    // config (model_dir) and the binary look for them; all root-owned.
    let files = listing(&deb);
    let mut expected: Vec<String> = vec![
        "/usr/bin/marquee".into(),
        "/usr/lib/systemd/system/marquee.service".into(),
        "/usr/lib/sysusers.d/marquee.conf".into(),
        "/usr/lib/tmpfiles.d/marquee.conf".into(),
        "/etc/marquee/marquee.toml".into(),
        "/usr/share/doc/marquee/copyright".into(),
    ];
    for dir in ["models", "firmware-config"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            expected.push(format!("/usr/share/marquee/{dir}/{name}"));
        }
    }
    for path in &expected {
        let (mode, owner) = files
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not in the package: {files:#?}"));
        assert_eq!(owner, "root/root", "{path}");
        let want = if path == "/usr/bin/marquee" {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        assert_eq!(mode, want, "{path}");
    }
    let regular = files.values().filter(|(m, _)| m.starts_with('-')).count();
    assert_eq!(regular, expected.len(), "unexpected files: {files:#?}");
    // /var/lib/marquee is made at install time (tmpfiles), not shipped.
    assert!(!files.keys().any(|p| p.starts_with("/var/")), "{files:#?}");

    // Maintainer scripts and the conffile.
    let control = tmp.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    assert_eq!(
        std::fs::read_to_string(control.join("conffiles")).unwrap(),
        "/etc/marquee/marquee.toml\n"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        run(Command::new("sh").arg("-n").arg(&path));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{script}");
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("systemd-sysusers /usr/lib/sysusers.d/marquee.conf"));
    assert!(postinst.contains("systemd-tmpfiles --create /usr/lib/tmpfiles.d/marquee.conf"));
    assert!(postinst.contains("deb-systemd-helper enable marquee.service"));
    let postrm = std::fs::read_to_string(control.join("postrm")).unwrap();
    let purge = postrm.find("purge)").expect("a purge branch");
    let rm = postrm
        .find("rm -rf /var/lib/marquee")
        .expect("purge removes the state");
    assert!(rm > purge, "the state directory goes only on purge");

    // Unpacked: the same bytes as the source tree, and the packaged binary
    // loads the packaged config and model.
    let unpacked = tmp.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked));
    for (shipped, source) in [
        (
            "usr/lib/systemd/system/marquee.service",
            "systemd/marquee.service",
        ),
        (
            "usr/lib/sysusers.d/marquee.conf",
            "systemd/marquee.sysusers",
        ),
        (
            "usr/lib/tmpfiles.d/marquee.conf",
            "systemd/marquee.tmpfiles",
        ),
        (
            "usr/share/marquee/models/manifest.json",
            "models/manifest.json",
        ),
    ] {
        assert_eq!(
            std::fs::read(unpacked.join(shipped)).unwrap(),
            std::fs::read(root().join(source)).unwrap(),
            "{shipped}"
        );
    }
    let bin = unpacked.join("usr/bin/marquee");
    let config = unpacked.join("etc/marquee/marquee.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("model_dir = \"/usr/share/marquee/models\""),
        "{text}"
    );
    let checked = stdout(
        Command::new(&bin)
            .arg("config")
            .arg("check")
            .arg("--config")
            .arg(&config),
    );
    assert!(checked.contains("configuration is valid"), "{checked}");
    assert!(checked.contains("/usr/share/marquee/models"), "{checked}");

    let line = stdout(
        Command::new(&bin)
            .args(["classify", "--format", "jsonl", "--model"])
            .arg(unpacked.join("usr/share/marquee/models"))
            .arg(root().join("tests/fixtures/drawn-224x320.png")),
    );
    let record: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(record["genres"].as_array().unwrap().len(), 19, "{line}");
}
