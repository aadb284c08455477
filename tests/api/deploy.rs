//! The deployment files check out: deploy/scanlogin.service passes `systemd-analyze
//! verify` without a single warning (with the built binary in `ExecStart`).

use std::process::Command;

#[test]
fn the_systemd_unit_verifies_cleanly() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("systemd-analyze not installed: the unit check is skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/scanlogin.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/scanlogin"));
    let path = dir.path().join("scanlogin.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/scanlogin", env!("CARGO_BIN_EXE_scanlogin"))).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed: {stderr}");
    assert!(stderr.trim().is_empty(), "systemd-analyze verify warned: {stderr}");
}
