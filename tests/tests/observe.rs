//! The operator's view, with real processes: a real Prometheus (Debian's `prometheus`) scrapes
//! a running agent while frames flow and its `PromQL` answers match the frames sent; a scrape
//! passes `promtool check metrics`; reloads are counted.
#![allow(clippy::too_many_lines, reason = "scenario tests")]

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use xennet_tests::{
    Netns,
    counters::get,
    frame::{q_tag, test_frame},
    require_root,
    topo::{Mode, start_seed},
    wait::poll,
};

/// Where the agent serves `/metrics` by default (inside its namespace).
const METRICS: &str = "127.0.0.1:9417";
/// Frames g1 sends to g2 (forwarded), and tagged ones (dropped on its access port).
const FORWARDED: u64 = 40;
const TAGGED: u64 = 7;
/// Where the test's Prometheus listens (inside the same namespace).
const PROMETHEUS: &str = "127.0.0.1:9090";

/// `GET path` from `addr` inside `ns` (HTTP/1.0, so the body is neither chunked nor kept
/// alive); the head and the body.
fn http_get(ns: &Netns, addr: &str, path: &str, accept: Option<&str>) -> Result<(String, String)> {
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{}\r\n",
        accept
            .map(|a| format!("Accept: {a}\r\n"))
            .unwrap_or_default()
    );
    let addr = addr.to_owned();
    let answer = ns.run_in(move || -> Result<String> {
        let mut s = TcpStream::connect(&addr).with_context(|| format!("connecting to {addr}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(request.as_bytes())?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })??;
    let Some((head, body)) = answer.split_once("\r\n\r\n") else {
        bail!("no HTTP head in {answer:?}");
    };
    Ok((head.to_owned(), body.to_owned()))
}

/// Percent-encode a query parameter.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A Prometheus server in `ns`, scraping the agent every second; killed on drop.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    ns_name: String,
}

impl Prometheus {
    fn start(ns: &Netns) -> Result<Prometheus> {
        let dir = std::env::temp_dir().join(format!("xennet-prometheus-{}", ns.name()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data"))?;
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
                 - job_name: xennet\n    static_configs:\n      - targets: ['{METRICS}']\n"
            ),
        )?;
        let log = std::fs::File::create(dir.join("log"))?;
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", ns.name()))
            .arg("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={PROMETHEUS}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting prometheus (Debian package `prometheus`)")?;
        let p = Prometheus {
            child,
            dir,
            ns_name: ns.name().to_owned(),
        };
        let (ready, _) = poll(
            Duration::from_secs(20),
            Duration::from_millis(100),
            || http_get(ns, PROMETHEUS, "/-/ready", None).is_ok_and(|(h, _)| h.contains(" 200 ")),
            |ok| *ok,
        );
        if !ready {
            bail!("prometheus did not become ready: {}", p.log());
        }
        Ok(p)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The value of the instant query `q`: the one sample's value, `None` for no sample.
    fn value(&self, ns: &Netns, q: &str) -> Result<Option<f64>> {
        debug_assert_eq!(ns.name(), self.ns_name);
        let (_, body) = http_get(
            ns,
            PROMETHEUS,
            &format!("/api/v1/query?query={}", encode(q)),
            None,
        )?;
        let v: serde_json::Value = serde_json::from_str(&body).with_context(|| body.clone())?;
        let result = v["data"]["result"]
            .as_array()
            .with_context(|| format!("no result in {body}"))?;
        match result.as_slice() {
            [] => Ok(None),
            [one] => Ok(one["value"][1].as_str().and_then(|s| s.parse().ok())),
            _ => bail!("{q}: more than one sample: {body}"),
        }
    }

    /// Poll `q` until it equals `want` (scrapes come every second); the last value.
    fn wait_for(&self, ns: &Netns, q: &str, want: f64) -> Option<f64> {
        poll(
            Duration::from_secs(15),
            Duration::from_millis(200),
            || self.value(ns, q).ok().flatten(),
            |v| *v == Some(want),
        )
        .0
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The agent's own scrape (classic text format, as curl gets it).
fn scrape(ns: &Netns) -> String {
    let (head, body) = http_get(ns, METRICS, "/metrics", None).expect("scraping the agent");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body
}

/// Every expression of a dashboard (panel targets and variable queries).
fn dashboard_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// dist/grafana/xennet.json uses only metrics of a real scrape (`text`), and each of its panel
/// queries is valid `PromQL` that Prometheus answers.
fn dashboard_matches(ns: &Netns, text: &str) {
    let path = xennet_tests::topo::workspace_root().join("dist/grafana/xennet.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("JSON");
    let mut exprs = Vec::new();
    dashboard_exprs(&dash, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let scraped: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let mut used = std::collections::BTreeSet::new();
    for e in &exprs {
        let mut rest = e.as_str();
        while let Some(i) = rest.find("xennet_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[i + name.len()..];
            used.insert(name);
        }
    }
    for name in &used {
        assert!(
            scraped.contains(name.as_str()),
            "the dashboard uses {name}, not in the scrape:\n{text}"
        );
    }
    assert!(used.len() >= 12, "{used:?}");
    for e in exprs.iter().filter(|e| !e.starts_with("label_values")) {
        let q = e
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*")
            .replace("$bridge", ".*")
            .replace("$port", ".*");
        let (_, body) = http_get(
            ns,
            PROMETHEUS,
            &format!("/api/v1/query?query={}", encode(&q)),
            None,
        )
        .expect("query");
        assert!(body.contains("\"status\":\"success\""), "{q}: {body}");
    }
}

/// One sample of a scrape, by its exact name and labels.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn prometheus_scrapes_counts_that_match_the_frames_sent() {
    if !require_root() {
        return;
    }
    let (sim, _fs, agent) = start_seed("prom", Mode::VifsTc, "").expect("seed setup");
    let dom0 = &sim.dom0;
    let prom = Prometheus::start(dom0).expect("prometheus");
    let g1 = sim.guest("vif1.0").expect("g1");
    let g2 = sim.guest("vif2.0").expect("g2");
    let before = agent.counters().expect("stats");
    let tx = sim.guest_socket("vif1.0").expect("socket on g1");
    for i in 0..FORWARDED {
        tx.send(&test_frame(g2.mac, g1.mac, &[], u32::try_from(i).unwrap()))
            .expect("send");
    }
    for i in 0..TAGGED {
        tx.send(&test_frame(
            g2.mac,
            g1.mac,
            &[q_tag(4094)],
            1000 + u32::try_from(i).unwrap(),
        ))
        .expect("send");
    }
    let rx0 = get(&before, "vif1.0", "rx_packets");
    let q = |s: &str| s.to_owned();
    let checks = [
        (
            q(r#"xennet_port_rx_packets_total{port="vif1.0",bridge="trunk"}"#),
            rx0 + FORWARDED + TAGGED,
        ),
        (
            q(r#"xennet_port_forwarded_packets_total{port="vif1.0",bridge="trunk"}"#),
            get(&before, "vif1.0", "forward") + FORWARDED,
        ),
        (
            q(r#"xennet_port_tx_packets_total{port="vif2.0",bridge="trunk"}"#),
            get(&before, "vif2.0", "tx_packets") + FORWARDED,
        ),
        (
            q(r#"xennet_port_dropped_packets_total{port="vif1.0",reason="tagged_on_access"}"#),
            get(&before, "vif1.0", "drop_tagged_on_access") + TAGGED,
        ),
        (
            q(r#"sum(xennet_port_dropped_packets_total{port="vif1.0"})"#),
            TAGGED
                + before["vif1.0"]
                    .iter()
                    .filter(|(k, _)| k.starts_with("drop_"))
                    .map(|(_, v)| *v)
                    .sum::<u64>(),
        ),
        // The seed pins 5 static MACs (3 guests, the router on 2 VLANs); nothing is learned
        // from test frames of static sources.
        (q(r#"xennet_fdb_entries{bridge="trunk",type="static"}"#), 5),
        (
            q(r#"xennet_port_info{port="vif1.0",bridge="trunk",attach="tc"}"#),
            1,
        ),
        (
            q(r#"xennet_port_info{port="eth1",bridge="trunk",attach="xdp"}"#),
            1,
        ),
        (q(r#"xennet_agent_info{version!=""}"#), 1),
        (q("xennet_datapath_up"), 1),
        (q(r#"up{job="xennet"}"#), 1),
    ];
    for (query, want) in &checks {
        #[expect(clippy::cast_precision_loss, reason = "small counts")]
        let want = *want as f64;
        let got = prom.wait_for(dom0, query, want);
        assert_eq!(got, Some(want), "{query}\nprometheus log:\n{}", prom.log());
    }
    // The CLI agrees with Prometheus.
    let after = agent.counters().expect("stats");
    assert_eq!(
        get(&after, "vif1.0", "rx_packets"),
        rx0 + FORWARDED + TAGGED
    );

    // promtool lints a scrape without a problem.
    let text = scrape(dom0);
    let file = std::env::temp_dir().join(format!("xennet-scrape-{}.txt", dom0.name()));
    std::fs::write(&file, &text).expect("writing the scrape");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", file.display()))
        .output()
        .expect("promtool (Debian package `prometheus`)");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {out:?}\nstdout: {}\nstderr: {}\nscrape:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dashboard_matches(dom0, &text);
    // Prometheus gets OpenMetrics (it asks for it).
    let (head, body) = http_get(
        dom0,
        METRICS,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .expect("scrape");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(body.ends_with("# EOF\n"), "{body}");

    // Reloads are counted, failed ones too: start_seed removed the configuration file, so the
    // first SIGHUP fails; with the file back the second succeeds.
    assert_eq!(sample(&text, "xennet_reloads_total"), Some(0.0), "{text}");
    let reloads = |want: f64, failed: f64| {
        agent.signal(libc::SIGHUP).expect("SIGHUP");
        let (t, _) = poll(
            Duration::from_secs(10),
            Duration::from_millis(100),
            || scrape(dom0),
            |t| sample(t, "xennet_reloads_total") == Some(want),
        );
        assert_eq!(sample(&t, "xennet_reloads_total"), Some(want), "{t}");
        assert_eq!(
            sample(&t, "xennet_reload_failures_total"),
            Some(failed),
            "{t}"
        );
    };
    reloads(1.0, 1.0);
    let cfg = Mode::VifsTc.config(dom0.name(), "").expect("config back");
    reloads(2.0, 1.0);
    let _ = std::fs::remove_file(cfg);
    drop(prom);
    drop(agent);
}

#[test]
fn metrics_off_serves_nothing() {
    if !require_root() {
        return;
    }
    let (sim, _fs, agent) = start_seed("nomet", Mode::AllTc, "").expect("seed setup");
    // The seed configuration keeps the default: the endpoint answers.
    assert!(scrape(&sim.dom0).contains("xennet_port_rx_packets_total{port=\"vif1.0\""));
    drop(agent);
    // `metrics = "off"` in [agent]: nothing listens.
    let tag = format!("{}-off", sim.dom0.name());
    let cfg = Mode::AllTc.config(&tag, "").expect("config");
    let text = std::fs::read_to_string(&cfg).expect("read");
    std::fs::write(
        &cfg,
        text.replacen("[agent]\n", "[agent]\nmetrics = \"off\"\n", 1),
    )
    .expect("write");
    let fs = xennet_tests::topo::BpfFs::new(&tag).expect("bpffs");
    let agent = xennet_tests::topo::Agent::start(&sim.dom0, &cfg, &fs.pin_dir());
    let _ = std::fs::remove_file(&cfg);
    let agent = agent.expect("agent");
    assert!(http_get(&sim.dom0, METRICS, "/metrics", None).is_err());
    assert!(
        agent.log_text().contains("metrics endpoint off"),
        "{}",
        agent.log_text()
    );
    drop(agent);
}

/// Logs written to a file (as by `run` under a service manager) carry no colour codes;
/// `--log-format json` writes one JSON object a line.
#[test]
fn logs_to_a_file_are_plain_text_or_json_lines() {
    if !require_root() {
        return;
    }
    let (sim, fs, agent) = start_seed("logs", Mode::AllTc, "").expect("seed setup");
    // The harness sends the agent's stderr to a file.
    let text = agent.log_text();
    drop(agent);
    assert!(text.contains("running"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "colour codes in a log file:\n{text:?}"
    );

    let cfg = Mode::AllTc.config("logs-json", "").expect("config");
    let log = std::env::temp_dir().join(format!("xennet-json-{}.log", sim.dom0.name()));
    let bin = xennet_tests::topo::agent_bin().expect("agent binary");
    let pins = fs.pin_dir().to_string_lossy().into_owned();
    let socket = xennet_tests::topo::Agent::socket_for(&sim.dom0);
    let mut child = xennet_tests::topo::agent_command(
        &bin,
        &sim.dom0,
        &[
            "--log-format",
            "json",
            "run",
            "--config",
            &cfg.to_string_lossy(),
            "--pin-dir",
            &pins,
            "--socket",
            &socket.to_string_lossy(),
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(std::fs::File::create(&log).expect("log file"))
    .spawn()
    .expect("starting the agent");
    let mut ready = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut ready).expect("ready");
    assert!(ready.starts_with("xennet-agent: ready"), "{ready}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    let json = std::fs::read_to_string(&log).expect("log");
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&cfg);
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l:?}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|v| v["fields"]["message"].as_str())
        .collect();
    assert!(messages.contains(&"running"), "{json}");
    assert!(
        messages.iter().any(|m| m.starts_with("SIGTERM: stopping")),
        "{json}"
    );
    assert!(
        lines
            .iter()
            .all(|v| v["level"].is_string() && v["timestamp"].is_string()),
        "{json}"
    );
    assert!(!json.contains('\x1b'), "{json:?}");
}
