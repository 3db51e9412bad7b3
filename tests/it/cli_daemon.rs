//! `marquee config check` and `marquee serve` as an operator runs them.

use crate::common::{closed_port_url, marquee_command as marquee, serve_command};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `marquee config check --board BOARD --config FILE`: its stdout, after
/// asserting that it succeeded (with its stderr as the message if not).
fn checked_config(board: &str, file: &std::path::Path) -> String {
    let out = config_check(board, "--config", file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `marquee config check --board BOARD FLAG PATH`.
fn config_check(board: &str, flag: &str, path: &std::path::Path) -> std::process::Output {
    marquee()
        .args(["config", "check", "--board", board, flag])
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn config_check_prints_the_effective_config_and_the_board() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("marquee.toml");
    std::fs::write(
        &file,
        "device_id = \"lobby\"\n[mqtt]\nurl = \"mqtt://broker.lan:1883\"\nusername = \"tagger\"\npassword = \"hunter2\"\n",
    )
    .unwrap();
    let stdout = checked_config("rpi4", &file);
    assert!(
        stdout.starts_with("# board: rpi4 (named with --board)"),
        "{stdout}"
    );
    assert!(stdout.contains("device_id = \"lobby\""), "{stdout}");
    assert!(
        stdout.contains("url = \"mqtt://broker.lan:1883\""),
        "{stdout}"
    );
    assert!(
        !stdout.contains("hunter2"),
        "the password is redacted: {stdout}"
    );
    // What it prints is itself a valid config file.
    let printed = dir.path().join("printed.toml");
    std::fs::write(&printed, stdout.as_bytes()).unwrap();
    checked_config("rpi4", &printed);
}

#[test]
fn config_check_fails_naming_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[inference]\nthread = 4\n").unwrap();
    let out = config_check("x86_64-generic", "--config", &file);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("inference.thread"), "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn serve_starts_answers_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // Port 0: the daemon binds a free port and writes it to the ready file
    // (a port picked here and released could be taken before it binds).
    let ready = dir.path().join("ready");
    let mut child = serve_command(&dir.path().join("m.db"), &ready)
        .env("MARQUEE__MQTT__URL", closed_port_url())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    // Ready when it says so (the log line follows READY=1), not after a sleep.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains("marquee is ready") => break,
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("never ready:\n{}", seen.join("\n"));
            }
        }
    }
    // The file is written right after the log line.
    let addr: SocketAddr = loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            break text.trim().parse().expect("an address in the ready file");
        }
        assert!(Instant::now() < deadline, "no ready file");
        std::thread::sleep(Duration::from_millis(20));
    };
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    let rest: Vec<String> = lines.iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("marquee stopped")),
        "{}",
        rest.join("\n")
    );
}

#[test]
fn config_check_redacts_every_password_in_a_url() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("marquee.toml");
    std::fs::write(
        &file,
        "[mqtt]\nurl = \"mqtts://broker.lan:8883\"\nusername = \"tagger\"\npassword = \"mqtt-s3cret\"\n\
         [http]\nmetrics_token = \"metrics-s3cret-0123456789\"\n\
         [[camera]]\nname = \"door\"\nsource = \"http://admin:cam-s3cret@cam.lan/snap.jpg\"\n\
         [[camera]]\nname = \"hall\"\nsource = \"mjpeg+http://viewer:mjpeg-s3cret@cam2.lan/video\"\n",
    )
    .unwrap();
    let stdout = checked_config("x86_64-generic", &file);
    assert!(stdout.contains("cam.lan/snap.jpg"), "{stdout}");
    assert!(stdout.contains("admin"), "the user name stays: {stdout}");
    assert!(!stdout.contains("s3cret"), "a secret printed: {stdout}");
}

#[test]
fn an_edited_profile_is_used_from_a_profile_folder() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/rpi4.toml"),
    )
    .unwrap();
    let edited = shipped.replace("queue_size = 6", "queue_size = 5");
    assert_ne!(
        edited, shipped,
        "the shipped rpi4 profile sets queue_size = 6"
    );
    std::fs::write(dir.path().join("rpi4.toml"), edited).unwrap();
    let out = config_check("rpi4", "--profile-dir", dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("queue_size = 5"), "{stdout}");
    // A board missing from the folder is an error naming the folder.
    let out = marquee()
        .args(["config", "check", "--board", "rpi5"])
        .env("MARQUEE_PROFILE_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&dir.path().display().to_string()),
        "{stderr}"
    );
}
