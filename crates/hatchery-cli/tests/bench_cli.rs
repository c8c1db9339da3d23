//! `hatchery bench api` runs its scenarios against a real in-process server and reports
//! every one of them; a failing request would make it exit non-zero.

use std::process::Command;

#[test]
fn bench_api_reports_every_scenario_without_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_hatchery"))
        .args(["bench", "api", "--duration", "300ms", "--connections", "2"])
        .output()
        .expect("run hatchery bench api");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    for scenario in [
        "GET /health (baseline)",
        "POST /workspaces",
        "GET /workspaces/:id",
    ] {
        let row = stdout
            .lines()
            .find(|line| line.starts_with(&format!("| {scenario} |")))
            .unwrap_or_else(|| panic!("no row for {scenario} in:\n{stdout}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let per_second: f64 = cells[2].parse().expect("requests/s is a number");
        assert!(per_second > 0.0, "{row}");
        assert_eq!(cells[5], "0", "errors in {row}");
    }
}

#[test]
fn bench_api_refuses_a_bad_duration() {
    let out = Command::new(env!("CARGO_BIN_EXE_hatchery"))
        .args(["bench", "api", "--duration", "soon"])
        .output()
        .expect("run hatchery bench api");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--duration"));
}

#[test]
fn bench_heartbeats_and_events_run_end_to_end() {
    let heartbeats = Command::new(env!("CARGO_BIN_EXE_hatchery"))
        .args([
            "bench",
            "heartbeats",
            "--workspaces",
            "20",
            "--duration",
            "300ms",
            "--connections",
            "2",
        ])
        .output()
        .expect("run hatchery bench heartbeats");
    let stdout = String::from_utf8_lossy(&heartbeats.stdout);
    assert!(
        heartbeats.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&heartbeats.stderr)
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| POST /registry/heartbeat |"))
        .unwrap_or_else(|| panic!("no heartbeat row in:\n{stdout}"));
    assert_eq!(row.split('|').map(str::trim).nth(5), Some("0"), "{row}");

    let events = Command::new(env!("CARGO_BIN_EXE_hatchery"))
        .args([
            "bench",
            "events",
            "--subscribers",
            "5",
            "--rate",
            "50",
            "--duration",
            "400ms",
        ])
        .output()
        .expect("run hatchery bench events");
    let stdout = String::from_utf8_lossy(&events.stdout);
    assert!(
        events.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&events.stderr)
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| 5 |"))
        .unwrap_or_else(|| panic!("no fan-out row in:\n{stdout}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let events_sent: usize = cells[3].parse().unwrap();
    assert!(events_sent >= 10, "{row}");
    assert_eq!(
        cells[4].parse::<usize>().unwrap(),
        events_sent * 5,
        "every subscriber got every event: {row}"
    );
    assert_eq!(cells[5], "0", "{row}");
}

#[test]
fn bench_create_online_starts_sandboxed_agents_and_reports() {
    let out = Command::new(env!("CARGO_BIN_EXE_hatchery"))
        .args(["bench", "create-online", "--creates", "3", "--burst", "3"])
        .output()
        .expect("run hatchery bench create-online");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("| create → online |"), "{stdout}");
    assert!(
        stdout.contains("3 concurrent creates all online"),
        "{stdout}"
    );
}

#[test]
fn bench_a2a_measures_both_paths_and_streams() {
    let out = Command::new(env!("CARGO_BIN_EXE_hatchery"))
        .args([
            "bench",
            "a2a",
            "--messages",
            "200",
            "--connections",
            "4",
            "--rounds",
            "2",
            "--streams",
            "20",
            "--stream-words",
            "5",
        ])
        .output()
        .expect("run hatchery bench a2a");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for path in ["agent's socket, direct (baseline)", "through the proxy"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {path} | 200 |")))
            .unwrap_or_else(|| panic!("no message row for {path} in:\n{stdout}"));
        assert_eq!(row.split('|').map(str::trim).nth(7), Some("0"), "{row}");
        let streams = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {path} | 20 |")))
            .unwrap_or_else(|| panic!("no stream row for {path} in:\n{stdout}"));
        assert_eq!(
            streams.split('|').map(str::trim).nth(3),
            Some("0"),
            "{streams}"
        );
    }
    assert!(stdout.contains("proxy overhead: p50 "), "{stdout}");
}
