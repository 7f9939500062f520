//! Health checks (`--check ADDR`) and the metrics endpoint (`--metrics-address`), against the
//! real agent binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::HashMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use vaccel_rpc::proto::vaccel::genop as pg;

fn check(address: &str, extra: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new(AGENT)
        .arg("--check")
        .arg(address)
        .args(extra)
        .output()
        .unwrap();
    (out, start.elapsed())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_succeeds_against_a_live_agent_on_unix_and_tcp() {
    for agent in [AgentProc::unix(&[]), AgentProc::tcp(&[])] {
        let address = agent.address.to_string();
        let (out, elapsed) = check(&address, &[]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{address}: {:?}\n{stdout}\n{}",
            out.status,
            text(&out.stderr)
        );
        assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
        assert!(
            stdout.starts_with(&format!("ok: {address} answered in ")),
            "{stdout}"
        );
        assert!(stdout.contains("(extensions v1)"), "{stdout}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        // The probe's connection leaves nothing behind.
        assert!(agent.lacks_log("panicked"));
    }
}

#[test]
fn check_fails_fast_against_dead_addresses() {
    // A port nobody listens on any more, a socket file that does not exist.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let dead = [
        format!("tcp://127.0.0.1:{port}"),
        format!("unix://{}", dir.path().join("none.sock").display()),
    ];
    for address in &dead {
        let (out, elapsed) = check(address, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{address}: {stderr}");
        assert!(
            stderr.starts_with("vaccel-rpc-agent: check failed: cannot connect to"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(out.stdout.is_empty());
        assert!(elapsed < Duration::from_secs(2), "{address}: {elapsed:?}");
    }

    // Something that accepts but never answers: bounded by --check-timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("tcp://{}", silent.local_addr().unwrap());
    let (out, elapsed) = check(&address, &["--check-timeout", "0.5"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("check failed"));
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");

    // A bad address or timeout is a usage error, not a hang.
    let (out, _) = check("http://x", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unsupported protocol"));
    let (out, _) = check(&dead[0], &["--check-timeout", "0"]);
    assert_eq!(out.status.code(), Some(1));
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `{a="x",b="y\"z"}`, returning the labels; panics on bad syntax.
fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").expect("label=\"value\"");
        assert!(
            is_metric_name(name) && !name.contains(':'),
            "label name {name}"
        );
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next().expect("closing quote");
            match c {
                '\\' => match chars.next().expect("escape").1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => panic!("bad escape \\{c}"),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        out.push((name.to_owned(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    out
}

type Samples = HashMap<String, f64>;

/// Validates the text exposition format (0.0.4) strictly enough for Prometheus to ingest it,
/// and returns every sample keyed by `name{labels}` as written.
fn parse_exposition(text: &str) -> Samples {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped = std::collections::HashSet::new();
    let mut samples = Samples::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').expect("HELP name text");
            assert!(is_metric_name(name), "{line}");
            assert!(helped.insert(name.to_owned()), "HELP twice: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(is_metric_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice: {line}"
            );
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "line: {line:?}");
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, parse_labels(l.strip_suffix('}').expect("closing brace"))),
            None => (series, Vec::new()),
        };
        assert!(is_metric_name(name), "{line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        let kind = types
            .get(family)
            .unwrap_or_else(|| panic!("no TYPE before {line}"));
        if kind == "histogram" {
            assert_ne!(name, family, "a histogram sample needs a suffix: {line}");
            if name.ends_with("_bucket") {
                assert!(labels.iter().any(|(k, _)| k == "le"), "{line}");
            }
        }
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {line}")),
        };
        if kind == "counter" {
            assert!(v >= 0.0, "{line}");
        }
        assert!(
            samples.insert(series.to_owned(), v).is_none(),
            "twice: {line}"
        );
    }
    samples
}

fn sample(s: &Samples, key: &str) -> f64 {
    *s.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {:#?}", s.keys().collect::<Vec<_>>()))
}

#[test]
fn metrics_are_valid_prometheus_text_and_move_with_calls() {
    let mut agent = AgentProc::unix(&["--metrics-address", "127.0.0.1:0"]);
    let addr = agent.metrics_address();

    let (code, head, body) = http_get(&addr, "/healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    assert!(head.contains("Connection: close"));
    assert_eq!(http_get(&addr, "/nope").0, 404);

    let (code, head, before) = http_get(&addr, "/metrics");
    assert_eq!(code, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let before = parse_exposition(&before);
    assert_eq!(sample(&before, "vaccel_agent_sessions"), 0.0);
    assert_eq!(
        sample(
            &before,
            "vaccel_agent_requests_total{method=\"CreateSession\"}"
        ),
        0.0
    );

    let mut c = agent.connect();
    let s = c.create_session(0);
    for _ in 0..3 {
        let r: pg::Response = c
            .call("Genop", &classify_genop(s, vec![7; 100], 64))
            .unwrap();
        assert_eq!(r.write_args.len(), 2);
    }
    // An error: an unknown session.
    assert!(
        c.call::<pg::Response>("Genop", &classify_genop(s + 100, vec![1], 8))
            .is_err()
    );

    let (_, _, during) = http_get(&addr, "/metrics");
    let m = parse_exposition(&during);
    let genop = "{method=\"Genop\",op=\"image_classify\"}";
    assert_eq!(
        sample(&m, &format!("vaccel_agent_requests_total{genop}")),
        4.0
    );
    assert_eq!(
        sample(&m, &format!("vaccel_agent_errors_total{genop}")),
        1.0
    );
    assert_eq!(
        sample(&m, "vaccel_agent_requests_total{method=\"CreateSession\"}"),
        1.0
    );
    assert_eq!(
        sample(&m, "vaccel_agent_errors_total{method=\"CreateSession\"}"),
        0.0
    );
    assert!(sample(&m, "vaccel_agent_received_bytes_total{method=\"Genop\"}") >= 400.0);
    assert!(sample(&m, "vaccel_agent_sent_bytes_total{method=\"Genop\"}") >= 3.0 * 128.0);
    let h = "vaccel_agent_request_duration_seconds";
    assert_eq!(sample(&m, &format!("{h}_count{{method=\"Genop\"}}")), 4.0);
    assert_eq!(
        sample(&m, &format!("{h}_bucket{{method=\"Genop\",le=\"+Inf\"}}")),
        4.0
    );
    assert!(sample(&m, &format!("{h}_sum{{method=\"Genop\"}}")) > 0.0);
    assert_eq!(sample(&m, "vaccel_agent_sessions"), 1.0);
    assert_eq!(sample(&m, "vaccel_agent_connections"), 1.0);
    assert_eq!(sample(&m, "vaccel_agent_clients"), 1.0);

    // The client goes: its session with it; the connection gauge drops. One scrape reads the
    // gauges one after the other while the release runs, so wait for both to settle.
    drop(c);
    let end = Instant::now() + DEADLINE;
    loop {
        let m = parse_exposition(&http_get(&addr, "/metrics").2);
        if sample(&m, "vaccel_agent_connections") == 0.0
            && sample(&m, "vaccel_agent_sessions") == 0.0
        {
            assert_eq!(sample(&m, "vaccel_agent_connections_total"), 1.0);
            break;
        }
        assert!(
            Instant::now() < end,
            "the connection and session gauges never dropped to 0"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let status = agent.signal_and_wait(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn metrics_are_off_by_default() {
    let agent = AgentProc::unix(&[]);
    assert!(agent.lacks_log("Metrics on"));
}

#[test]
fn a_taken_metrics_port_fails_clearly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(AGENT)
        .args([
            "-a",
            &format!("unix://{}", dir.path().join("a.sock").display()),
        ])
        .args([
            "--vaccel-config",
            "plugins=noop",
            "--metrics-address",
            &port,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot serve metrics on"),
        "{}",
        text(&out.stderr)
    );
}
