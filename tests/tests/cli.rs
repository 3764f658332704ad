//! The command line as an operator meets it (issue 17): names, defaults, positional files,
//! ranges, tables and `--json`, precise errors, examples in `--help`, and every example of the
//! README and docs run as written. Real agent in a namespace, or the binary alone for usage.
#![allow(clippy::too_many_lines, reason = "scenario tests")]

use std::{
    io::BufRead as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use xennet_tests::{
    Netns, add_addr, require_root, set_gro,
    topo::{Agent, BpfFs, agent_bin, agent_command, workspace_root},
    veth,
};

/// Run the agent binary in this (the test's) namespace.
fn bin(args: &[&str]) -> Output {
    Command::new(agent_bin().expect("XENNET_AGENT"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running xennet-agent")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("xennet-cli-{}-{name}", std::process::id()))
}

/// dom0 with guests `g1`, `g2` behind `xc1`, `xc2` (access 10, 10.9.0.x/24) and a spare
/// `xc3` for `port add`; the agent on `cfg`. Fields drop in order.
struct Bed {
    agent: Agent,
    _fs: BpfFs,
    guests: Vec<Netns>,
    dom0: Netns,
    cfg: PathBuf,
}

fn config(tag: &str, dom0: &Netns, aging: u32) -> String {
    format!(
        "[agent]\nsocket = {:?}\n\n[[bridge]]\nname = \"lan\"\nfdb_aging_secs = {aging}\n\n\
         [[bridge.port]]\ninterface = \"xc1\"\naccess = 10\n\n[[bridge.port]]\n\
         interface = \"xc2\"\naccess = 10\n\n# {tag}\n",
        Agent::socket_for(dom0).display().to_string()
    )
}

impl Bed {
    fn new(tag: &str) -> Bed {
        let dom0 = Netns::new(&format!("{tag}-d0")).expect("dom0");
        let mut guests = Vec::new();
        for i in 1..=3 {
            let g = Netns::new(&format!("{tag}-g{i}")).expect("guest");
            veth(&dom0, &format!("xc{i}"), &g, "eth0").expect("veth");
            add_addr(&g, "eth0", &format!("10.9.0.{i}/24")).expect("address");
            // XDP redirects into a veth reach the peer only with GRO (or XDP) on it.
            set_gro(&g, "eth0", true).expect("GRO");
            guests.push(g);
        }
        let cfg = temp(&format!("{tag}.toml"));
        std::fs::write(&cfg, config(tag, &dom0, 300)).expect("config");
        let fs = BpfFs::new(tag).expect("bpffs");
        let agent = Agent::start(&dom0, &cfg, &fs.pin_dir()).expect("agent");
        Bed {
            agent,
            _fs: fs,
            guests,
            dom0,
            cfg,
        }
    }

    fn sock(&self) -> String {
        self.agent.socket().display().to_string()
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.cfg);
    }
}

/// Item 1: `stats` run from another namespace (here: the test's) shows the agent's interface
/// names and the bridge's name; `--watch` prints per-second rates of real traffic.
#[test]
fn stats_names_come_from_the_agent_and_watch_gives_rates() {
    if !require_root() {
        return;
    }
    let bed = Bed::new("xcst");
    let sock = bed.sock();
    let out = bin(&["stats", "--json", "--socket", &sock]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
    let rows = v.as_array().expect("array");
    let names: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["interface"].as_str())
        .collect();
    assert_eq!(names, ["xc1", "xc2"], "the agent's names: {v}");
    for r in rows {
        assert_eq!(r["bridge"], "lan", "bridge by name: {r}");
    }
    let table = text(&bin(&["stats", "--socket", &sock]).stdout);
    assert!(table.contains("xc1") && table.contains(" lan "), "{table}");

    // Rates: g1 pings g2 five times a second through the agent.
    let mut ping = bed.guests[0]
        .spawn(&["ping", "-q", "-i", "0.2", "-c", "25", "10.9.0.2"])
        .expect("ping");
    std::thread::sleep(Duration::from_millis(600));
    let out = bin(&[
        "stats", "--json", "--socket", &sock, "--watch", "2", "--count", "1",
    ]);
    let _ = ping.kill();
    let _ = ping.wait();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("rates JSON");
    let xc1 = v
        .as_array()
        .and_then(|a| a.iter().find(|r| r["interface"] == "xc1"))
        .expect("xc1");
    let rate = xc1["counters"]["rx_packets"].as_u64().expect("rate");
    assert!(
        (4..=7).contains(&rate),
        "about 5 requests/s into xc1: {xc1}"
    );
    let table = text(&bin(&["stats", "--socket", &sock, "--watch", "1", "--count", "1"]).stdout);
    assert!(table.contains("RX_PKTS/s"), "{table}");
}

/// Items 5, 6 and 9: `reload` prints a table (or `--json`) naming changed settings, refuses a
/// file that is not the agent's, says when it never asked; `fdb show --bridge` of an unknown
/// bridge fails; a refused second agent leaves no warning in the first one's log.
#[test]
fn reload_fdb_and_a_second_agent_as_an_operator_expects() {
    if !require_root() {
        return;
    }
    let bed = Bed::new("xcrl");
    let sock = bed.sock();
    std::fs::write(&bed.cfg, config("xcrl", &bed.dom0, 60)).expect("config");
    let out = bed.agent.ctl(&["reload"]).expect("reload");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.starts_with("CHANGE"), "a table: {table}");
    assert!(
        table.contains("bridge \"lan\": fdb_aging_secs: 300 -> 60"),
        "{table}"
    );
    std::fs::write(&bed.cfg, config("xcrl", &bed.dom0, 30)).expect("config");
    let v = bed.agent.ctl_json(&["reload"]).expect("reload --json");
    assert_eq!(
        v["settings"][0], "bridge \"lan\": fdb_aging_secs: 60 -> 30",
        "{v}"
    );

    // Another file: refused by the agent, saying which file it runs with.
    let other = temp("xcrl-other.toml");
    std::fs::write(&other, config("other", &bed.dom0, 10)).expect("other");
    let o = other.display().to_string();
    let out = bed.agent.cli(&["reload", "-c", &o]).expect("reload -c");
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(
        e.contains("the agent runs with") && e.contains("nothing changed"),
        "{e}"
    );
    // An invalid file: the agent is never asked, and the message says so.
    std::fs::write(&other, "[[bridge]]\nname = 1\n").expect("invalid");
    let out = bed.agent.cli(&["reload", "-c", &o]).expect("reload -c");
    let e = text(&out.stderr);
    assert!(
        !out.status.success() && e.contains("the agent was not asked"),
        "{e}"
    );
    let _ = std::fs::remove_file(&other);

    // fdb show of a bridge that does not exist fails, naming the ones that do.
    let out = bed
        .agent
        .ctl(&["fdb", "show", "--bridge", "nosuch"])
        .expect("fdb");
    let e = text(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(e.contains("no bridge \"nosuch\" (bridges: lan)"), "{e}");
    assert!(
        bed.agent
            .ctl(&["fdb", "show", "--bridge", "lan"])
            .expect("fdb")
            .status
            .success()
    );

    // A second agent on the same socket is refused; the first logs nothing about it.
    let fs2 = BpfFs::new("xcrl2").expect("bpffs");
    let pins = fs2.pin_dir().display().to_string();
    let c = bed.cfg.display().to_string();
    let out = agent_command(
        &agent_bin().expect("bin"),
        &bed.dom0,
        &["run", &c, "--pin-dir", &pins, "--socket", &sock],
    )
    .output()
    .expect("second agent");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is in use"),
        "{}",
        text(&out.stderr)
    );
    // Its probe is served (and answered) by then: another request goes after it.
    assert!(bed.agent.ctl(&["ports"]).expect("ports").status.success());
    std::thread::sleep(Duration::from_millis(200));
    let log = bed.agent.log_text();
    assert!(
        !log.contains("Broken pipe") && !log.contains("WARN"),
        "the first agent's log: {log}"
    );
}

/// Item 4: `port add --trunk` takes ranges as the file does; `--access 5000` is refused with
/// the file's message, without mentioning a --native nobody gave.
#[test]
fn port_add_takes_trunk_ranges_and_says_what_is_wrong() {
    if !require_root() {
        return;
    }
    let bed = Bed::new("xcpa");
    let out = bed
        .agent
        .ctl(&["port", "add", "xc3", "--bridge", "lan", "--access", "5000"])
        .expect("port add");
    let e = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        e.contains("`access` = 5000 is not a VLAN id (1-4094)"),
        "{e}"
    );
    assert!(!e.contains("native"), "{e}");
    let out = bed
        .agent
        .ctl(&[
            "port", "add", "xc3", "--bridge", "lan", "--trunk", "10-20,30",
        ])
        .expect("port add");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ports = bed.agent.ports().expect("ports");
    let xc3 = ports
        .iter()
        .find(|p| p["interface"] == "xc3")
        .expect("xc3 attached");
    let all: Vec<String> = (10..=20).chain([30]).map(|v| v.to_string()).collect();
    assert_eq!(xc3["vlans"], format!("trunk {}", all.join(",")), "{xc3}");
}

/// Items 2, 7, 8, 11: `check FILE` and `check -c FILE` alike, the default file named when
/// missing, counts that agree in number, type errors naming bridge, port and key, a read error
/// giving its reason once, every error line prefixed.
#[test]
fn check_reads_files_as_documented() {
    if agent_bin().is_err() {
        return;
    }
    let f = temp("check.toml");
    std::fs::write(
        &f,
        "[[bridge]]\nname = \"b\"\n\n[[bridge.port]]\ninterface = \"eth1\"\ntrunk = [10]\n",
    )
    .expect("write");
    let p = f.display().to_string();
    for args in [["check", p.as_str()], ["check", "-c"]] {
        let mut a: Vec<&str> = args.to_vec();
        if a[1] == "-c" {
            a.push(&p);
        }
        let out = bin(&a);
        assert!(out.status.success(), "{a:?}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            format!("{p}: ok (1 bridge, 1 port entry (exact names and rules))\n")
        );
    }
    let out = bin(&["check"]);
    let e = text(&out.stderr);
    assert!(e.contains("/etc/xennet/xennet.toml"), "the default: {e}");
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");

    std::fs::write(
        &f,
        "[[bridge]]\nname = \"b\"\n\n[[bridge.port]]\ninterface = \"vif1.0\"\naccess = \"10\"\n",
    )
    .expect("write");
    let e = text(&bin(&["check", &p]).stderr);
    assert!(
        e.contains("bridge \"b\", port \"vif1.0\": `access`: invalid type: string \"10\", expected an integer"),
        "{e}"
    );
    std::fs::write(
        &f,
        "[[bridge]]\nname = \"b\"\nmtu = 1\n\n[[bridge.port]]\ninterface = \"x\"\naccess = 0\n",
    )
    .expect("write");
    let e = text(&bin(&["check", &p]).stderr);
    assert!(e.lines().count() >= 2, "{e}");
    assert!(e.lines().all(|l| l.starts_with("error: ")), "{e}");
    let _ = std::fs::remove_file(&f);
}

/// Item 3: without privileges, the error says what is missing.
#[test]
fn permission_errors_say_what_is_missing() {
    if !require_root() {
        return;
    }
    let f = temp("perm.toml");
    std::fs::write(
        &f,
        "[[bridge]]\nname = \"b\"\n\n[[bridge.port]]\ninterface = \"eth9\"\naccess = 1\n",
    )
    .expect("write");
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    // A pin directory nobody but root may enter.
    let fs = BpfFs::new("xcperm").expect("bpffs");
    let pins = fs.pin_dir().display().to_string();
    std::fs::create_dir_all(fs.pin_dir()).expect("pin dir");
    std::fs::set_permissions(
        fs.pin_dir(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    let bin = agent_bin().expect("bin");
    let b = bin.display().to_string();
    let p = f.display().to_string();
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    for args in [
        vec![b.as_str(), "stats", "--pin-dir", &pins],
        vec![
            b.as_str(),
            "run",
            &p,
            "--pin-dir",
            "/sys/fs/bpf/xennet-cli-perm",
            "--socket",
            "/tmp/xennet-cli-perm.sock",
        ],
    ] {
        let out = Command::new(nobody[0])
            .args(&nobody[1..])
            .args(&args)
            .output()
            .expect("setpriv");
        let e = text(&out.stderr);
        assert!(!out.status.success());
        assert!(
            e.contains("needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"),
            "{args:?}: {e}"
        );
        if args[1] == "run" {
            // The cause is given once, not repeated by its context (the first refusal is now
            // the lock file beside the pins, before any map is created).
            assert_eq!(e.matches("Permission denied").count(), 1, "{e}");
            assert!(
                e.matches("failed to create map").count() <= 1,
                "a map named twice: {e}"
            );
        }
    }
    let _ = std::fs::remove_file(&f);
}

/// Item 10: every subcommand's `--help` has an example and shows its defaults; `stats`
/// takes `--socket` like every other client command, and every table has `--json`.
#[test]
fn help_has_examples_defaults_and_one_json_switch() {
    if agent_bin().is_err() {
        return;
    }
    let cmds: [&[&str]; 9] = [
        &["run"],
        &["check"],
        &["stats"],
        &["ports"],
        &["reload"],
        &["fdb", "show"],
        &["port", "add"],
        &["port", "del"],
        &["fdb", "show"],
    ];
    for c in cmds {
        let mut a = c.to_vec();
        a.push("--help");
        let h = text(&bin(&a).stdout);
        assert!(h.contains("Example:\n  xennet-agent "), "{c:?}: {h}");
        if c != ["port", "del"] {
            assert!(h.contains("[default: "), "{c:?}: {h}");
        }
    }
    for c in [&["stats"][..], &["ports"], &["reload"], &["fdb", "show"]] {
        let mut a = c.to_vec();
        a.push("--help");
        let h = text(&bin(&a).stdout);
        assert!(
            h.contains("--json") && h.contains("--socket <PATH>"),
            "{c:?}: {h}"
        );
    }
    let h = text(&bin(&["port", "add", "--help"]).stdout);
    assert!(h.contains("else auto]"), "--attach's default: {h}");
}

/// The fenced `toml` blocks of README.md and docs/*.md that hold a whole configuration (a
/// `[[bridge]]` with a `name`), with their file, unless marked `# fragment`.
fn doc_blocks(lang: &str) -> Vec<(PathBuf, String)> {
    let root = workspace_root();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for f in files {
        let t = std::fs::read_to_string(&f).expect("doc");
        let mut inside: Option<String> = None;
        for line in t.lines() {
            match &mut inside {
                None if line.trim_start().starts_with(&format!("```{lang}")) => {
                    inside = Some(String::new());
                }
                None => {}
                Some(b) if line.trim_start().starts_with("```") => {
                    out.push((f.clone(), std::mem::take(b)));
                    inside = None;
                }
                Some(b) => {
                    b.push_str(line);
                    b.push('\n');
                }
            }
        }
    }
    out
}

/// The texts of `doc` that may hold a command: lines of fenced blocks, and inline code spans.
fn command_texts(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            out.push(line.to_owned());
        } else {
            out.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
        }
    }
    out
}

/// Every whole configuration in the README and docs passes `check`; every `xennet-agent`
/// command line in them parses (checked with `--help` appended, which stops before running).
#[test]
fn every_doc_example_runs_as_written() {
    if agent_bin().is_err() {
        return;
    }
    let mut checked = 0;
    for (file, block) in doc_blocks("toml") {
        if !block.contains("[[bridge]]") || block.contains("# fragment") {
            continue;
        }
        let f = temp("doc.toml");
        std::fs::write(&f, &block).expect("write");
        let out = bin(&["check", &f.display().to_string()]);
        let _ = std::fs::remove_file(&f);
        assert!(
            out.status.success(),
            "{}: a configuration that does not check:\n{block}\n{}",
            file.display(),
            text(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 3, "whole configurations found: {checked}");
    let mut lines = 0;
    let root = workspace_root();
    let mut files = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs"))
        .expect("docs")
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "md") {
            files.push(e.path());
        }
    }
    for f in files {
        for line in command_texts(&std::fs::read_to_string(&f).expect("doc")) {
            let line = line.as_str();
            let Some(at) = line.find("xennet-agent ") else {
                continue;
            };
            let cmd = &line[at + "xennet-agent ".len()..];
            let cmd = cmd
                .split(['#', '`', '|', ';', '>', '\''])
                .next()
                .unwrap_or("");
            let words: Vec<&str> = cmd.split_whitespace().collect();
            let known = ["run", "check", "stats", "ports", "reload", "fdb", "port"];
            // Prose such as `port add/del`, not a path.
            // (and diagrams)
            let prose = |w: &&str| (w.contains('/') && !w.starts_with(['/', '.'])) || !w.is_ascii();
            if words.is_empty()
                || !known.contains(&words[0])
                || words.iter().any(prose)
                || words
                    .iter()
                    .any(|w| w.contains(['[', '…', '<', '{', '*']) || *w == "...")
                || words.iter().any(|w| w.chars().all(char::is_uppercase))
            {
                continue;
            }
            let mut a = words.clone();
            a.push("--help");
            let out = bin(&a);
            assert!(
                out.status.success(),
                "{}: `xennet-agent {cmd}` does not parse: {}",
                f.display(),
                text(&out.stderr)
            );
            lines += 1;
        }
    }
    assert!(lines >= 5, "command lines found: {lines}");
    let _ = Path::new("");
}

/// Item 7: `run` counts as `check` does, in the right number: one bridge, one port attached.
#[test]
fn run_says_ready_in_the_right_number() {
    if !require_root() {
        return;
    }
    let dom0 = Netns::new("xcrd-d0").expect("dom0");
    let g = Netns::new("xcrd-g1").expect("guest");
    veth(&dom0, "xc1", &g, "eth0").expect("veth");
    let fs = BpfFs::new("xcrd").expect("bpffs");
    let cfg = temp("ready.toml");
    let sock = Agent::socket_for(&dom0).display().to_string();
    std::fs::write(
        &cfg,
        "[[bridge]]\nname = \"lan\"\n\n[[bridge.port]]\ninterface = \"xc1\"\naccess = 10\n",
    )
    .expect("config");
    let c = cfg.display().to_string();
    let pins = fs.pin_dir().display().to_string();
    let mut child = agent_command(
        &agent_bin().expect("bin"),
        &dom0,
        &["run", "-c", &c, "--pin-dir", &pins, "--socket", &sock],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("agent");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(20));
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = child.wait();
    let _ = std::fs::remove_file(&cfg);
    assert_eq!(
        line.as_deref(),
        Ok("xennet-agent: ready (1 bridge, 1 port attached)")
    );
}
