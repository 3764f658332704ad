//! `scripts/vif-xennet`, the Xen hotplug script, run as libxl runs it, without Xen.
//!
//! The script is executed by its path with libxl's arguments (`online|offline type_if=vif`,
//! `add|remove type_if=tap`) and libxl's environment on top of this process's own, as libxl
//! adds its variables to xl's (`libxl_linux.c` `get_hotplug_env`: `script`, `XENBUS_TYPE`,
//! `XENBUS_PATH`, `XENBUS_BASE_PATH`, `netdev`, `vif`, and `INTERFACE` for an HVM guest's
//! emulated NIC), stdin from `/dev/null`. Stand-ins first on `PATH` play the toolstack's side:
//! `xenstore-read` prints files of a directory tree (relative paths under `/local/domain/0`, as
//! for dom0's tools), `xenstore-write` records what it is asked to write, `logger` records the
//! syslog messages. The script logs to a file of the test (`XENNET_HOTPLUG_LOG`, in place of
//! `/var/log/xen/xen-hotplug.log`). It runs in a test network namespace holding veths named
//! like vifs (`vif7.0`), so its `ip link` commands never touch the host's interfaces.
//!
//! The first tests use a stand-in `xennet-agent` that records its argv: which agent commands the
//! script issues for one xenstore content and action. The `real_*` tests run the real agent
//! (`$XENNET_AGENT`, set by `cargo xtask test`) and check its ports and FDB after each step: a
//! PV vif, a renamed vif and a `vifname=` clash, an HVM guest's vif and emulated NIC (a real tap),
//! a stub domain, `mtu=`, an agent that does not answer, and `offline`/`remove`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use xennet_tests::{
    Netns,
    output::{self},
    require_root,
    topo::{Agent, BpfFs, workspace_root},
};

/// One vif as libxl knows it: domain, device id, and whether it is an HVM guest's NIC with an
/// emulated twin (`type=ioemu`, libxl's `LIBXL_NIC_TYPE_VIF_IOEMU`).
#[derive(Clone, Copy, Debug)]
struct Nic {
    domid: u32,
    devid: u32,
    ioemu: bool,
}

impl Nic {
    const fn pv(domid: u32) -> Nic {
        Nic {
            domid,
            devid: 0,
            ioemu: false,
        }
    }

    const fn hvm(domid: u32) -> Nic {
        Nic {
            domid,
            devid: 0,
            ioemu: true,
        }
    }

    /// `vifD.N`: netback's name, `$vif`.
    fn vif(self) -> String {
        format!("vif{}.{}", self.domid, self.devid)
    }

    /// `vifD.N-emu`: QEMU's tap, `$INTERFACE`.
    fn tap(self) -> String {
        format!("{}-emu", self.vif())
    }

    /// `backend/vif/D/N`: `$XENBUS_PATH`.
    fn backend(self) -> String {
        format!("backend/vif/{}/{}", self.domid, self.devid)
    }
}

/// The PV guest most tests attach.
const PV: Nic = Nic::pv(7);
/// `$XENBUS_PATH` of [`PV`].
const XENBUS_PATH: &str = "backend/vif/7/0";
/// `$vif` of [`PV`].
const VIF: &str = "vif7.0";
/// The script's default control socket (when the configuration file does not exist).
const SOCKET: &str = "/run/xennet/xennet.sock";
const MAC: &str = "00:16:3e:00:00:07";

const XENSTORE_READ: &str = r#"#!/bin/sh
# Stand-in xenstore-read: prints $STUB_DIR/xs/PATH for each absolute PATH, and
# $STUB_DIR/xs/local/domain/0/PATH for a relative one (dom0's home).
for p in "$@"; do
    case $p in /*) f="$STUB_DIR/xs$p" ;; *) f="$STUB_DIR/xs/local/domain/0/$p" ;; esac
    if [ ! -f "$f" ]; then
        echo "xenstore-read: couldn't read path $p" >&2
        exit 1
    fi
    printf '%s\n' "$(cat "$f")"
done
"#;

const XENSTORE_WRITE: &str = r#"#!/bin/sh
# Stand-in xenstore-write: records PATH=VALUE pairs; fails if $XS_WRITE_FAIL is set.
if [ -n "${XS_WRITE_FAIL:-}" ]; then
    echo "xenstore-write: could not write path $1" >&2
    exit 1
fi
while [ $# -ge 2 ]; do
    printf '%s=%s\n' "$1" "$2" >>"$STUB_DIR/xs-writes.log"
    shift 2
done
"#;

const AGENT: &str = r#"#!/bin/sh
# Stand-in xennet-agent: records its argv (tab-separated, one call per line) and, for
# `port add IFACE`, whether IFACE was up; keeps the list of ports for `ports`; fails for the
# subcommands named in $AGENT_FAIL.
printf '%s\t' "$@" >>"$STUB_DIR/agent.log"
printf '\n' >>"$STUB_DIR/agent.log"
if [ "$1" = port ] && [ "$2" = add ]; then
    if ip -o link show dev "$3" | grep -q '[<,]UP[,>]'; then
        echo up >>"$STUB_DIR/agent-link.log"
    else
        echo down >>"$STUB_DIR/agent-link.log"
    fi
fi
case "$1 $2" in
"port add") printf '%s\n' "$3" >>"$STUB_DIR/ports" ;;
"port del") grep -vxF "$3" "$STUB_DIR/ports" >"$STUB_DIR/ports.new"; mv "$STUB_DIR/ports.new" "$STUB_DIR/ports" ;;
"ports "*)
    # The ports added (all but those named in $AGENT_LEAVE_OUT), as `ports --json` lists them.
    while read -r p; do
        case " ${AGENT_LEAVE_OUT:-} " in *" $p "*) continue ;; esac
        printf '  {\n    "interface": "%s"\n  }\n' "$p"
    done <"$STUB_DIR/ports"
    exit 0
    ;;
esac
case " ${AGENT_FAIL:-} " in
*" $2 "*)
    echo "error: stand-in agent told to fail \`$1 $2\`" >&2
    exit 1
    ;;
esac
echo '{"added":[]}'
"#;

const LOGGER: &str = r#"#!/bin/sh
# Stand-in logger: records its arguments.
printf '%s\n' "$*" >>"$STUB_DIR/syslog.log"
"#;

static DIRS: AtomicU32 = AtomicU32::new(0);

/// A namespace with a down veth `vif7.0`, and a directory with the stand-ins (`bin/`), the
/// xenstore tree (`xs/`), the hotplug log and the stand-ins' records. The directory is removed
/// on drop.
struct Bench {
    ns: Netns,
    dir: PathBuf,
}

/// One run of the script: its exit status and output, and what it appended to the hotplug log.
struct Run {
    out: Output,
    log: String,
    took: Duration,
}

impl Bench {
    fn new(tag: &str) -> Bench {
        let ns = Netns::new(tag).expect("netns");
        let dir = std::env::temp_dir().join(format!(
            "xennet-vif-script-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        let bench = Bench { ns, dir };
        fs::create_dir_all(bench.dir.join("bin")).expect("stub dir");
        for (name, text) in [
            ("xenstore-read", XENSTORE_READ),
            ("xenstore-write", XENSTORE_WRITE),
            ("xennet-agent", AGENT),
            ("logger", LOGGER),
        ] {
            write_executable(&bench.dir.join("bin").join(name), text);
        }
        bench.add_link(VIF);
        bench
    }

    /// Create a veth `name` (peer `name` + "p"), left down as netback leaves a new vif.
    fn add_link(&self, name: &str) {
        let peer = format!("{}p", &name[..name.len().min(14)]);
        self.ns
            .exec_ok(&[
                "ip", "link", "add", name, "type", "veth", "peer", "name", &peer,
            ])
            .expect("creating the vif stand-in");
    }

    /// Create a tap `name`, as QEMU does for an HVM guest's emulated NIC.
    fn add_tap(&self, name: &str) {
        self.ns
            .exec_ok(&["ip", "tuntap", "add", "dev", name, "mode", "tap"])
            .expect("creating the tap");
    }

    /// Set xenstore `path` (relative to dom0's home, or absolute) in the stand-in xenstore.
    fn xs_path(&self, path: &str, value: &str) {
        let file = match path.strip_prefix('/') {
            Some(abs) => self.dir.join("xs").join(abs),
            None => self.dir.join("xs/local/domain/0").join(path),
        };
        fs::create_dir_all(file.parent().expect("a parent")).expect("xenstore dir");
        fs::write(file, value).expect("xenstore key");
    }

    /// Set backend key `key` of `nic`.
    fn xs_nic(&self, nic: Nic, key: &str, value: &str) -> &Self {
        self.xs_path(&format!("{}/{key}", nic.backend()), value);
        self
    }

    /// Set backend key `key` of [`PV`].
    fn xs(&self, key: &str, value: &str) -> &Self {
        self.xs_nic(PV, key, value)
    }

    /// Run the script for [`PV`] with `args` and the extra environment `env`.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run_nic(PV, None, args, env)
    }

    /// Run `scripts/vif-xennet ARGS` in the namespace as libxl runs it for `nic`: by its path
    /// (or through `shell`), with this process's environment plus libxl's, stdin from
    /// `/dev/null`. On top: the stand-ins first on `PATH`, the stand-in agent, no configuration
    /// file (so the default socket), the hotplug log in the bench, and `env`.
    fn run_nic(&self, nic: Nic, shell: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Run {
        let script = workspace_root().join("scripts/vif-xennet");
        let script = script.to_str().expect("script path is UTF-8");
        let mut words: Vec<&str> = shell.into_iter().collect();
        words.push(script);
        words.extend(args);
        let mut cmd = self.ns.command(&words).expect("command");
        // libxl_linux.c, get_hotplug_env().
        cmd.env("script", script)
            .env("XENBUS_TYPE", "vif")
            .env("XENBUS_PATH", nic.backend())
            .env("XENBUS_BASE_PATH", "backend")
            .env("netdev", "");
        if nic.ioemu {
            cmd.env("INTERFACE", nic.tap());
        }
        cmd.env("vif", nic.vif());
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", self.dir.join("bin").display()))
            .env("STUB_DIR", &self.dir)
            .env("XENNET_AGENT", self.dir.join("bin/xennet-agent"))
            .env("XENNET_CONFIG", self.dir.join("no-such-xennet.toml"))
            .env("XENNET_HOTPLUG_LOG", self.log_path())
            .env_remove("XENNET_HOTPLUG_TIMEOUT");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let before = self.log().len();
        let start = Instant::now();
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .expect("running vif-xennet");
        let took = start.elapsed();
        let log = self.log().get(before..).unwrap_or_default().to_owned();
        Run { out, log, took }
    }

    /// `online type_if=vif` for `nic`, as libxl runs it when the vif appears.
    fn online(&self, nic: Nic, env: &[(&str, &str)]) -> Run {
        self.run_nic(nic, None, &["online", "type_if=vif"], env)
    }

    /// `offline type_if=vif` for `nic`.
    fn offline(&self, nic: Nic, env: &[(&str, &str)]) -> Run {
        self.run_nic(nic, None, &["offline", "type_if=vif"], env)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("xen-hotplug.log")
    }

    /// The whole hotplug log.
    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn record(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Every agent invocation but `ports` (which the script runs after each `port add`), as
    /// its argv.
    fn agent_calls(&self) -> Vec<Vec<String>> {
        self.record("agent.log")
            .lines()
            .filter(|l| !l.starts_with("ports\t"))
            .map(|l| {
                l.strip_suffix('\t')
                    .unwrap_or(l)
                    .split('\t')
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }

    /// `up`/`down` per `port add`: the port's link state when the agent was called.
    fn link_when_added(&self) -> Vec<String> {
        self.record("agent-link.log")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn xs_writes(&self) -> Vec<String> {
        self.record("xs-writes.log")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn clear_xs_writes(&self) {
        fs::remove_file(self.dir.join("xs-writes.log")).ok();
    }

    fn syslog(&self) -> String {
        self.record("syslog.log")
    }

    fn link_up(&self, name: &str) -> bool {
        let out = self
            .ns
            .exec_ok(&["ip", "-o", "link", "show", "dev", name])
            .expect("ip link show");
        let text = String::from_utf8_lossy(&out.stdout);
        let flags = text.split('<').nth(1).and_then(|s| s.split('>').next());
        flags.is_some_and(|f| f.split(',').any(|x| x == "UP"))
    }

    fn link_mtu(&self, name: &str) -> u32 {
        let out = self
            .ns
            .exec_ok(&["ip", "-o", "link", "show", "dev", name])
            .expect("ip link show");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split(" mtu ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no MTU in {text}"))
    }

    fn has_link(&self, name: &str) -> bool {
        self.ns
            .exec(&["ip", "link", "show", "dev", name])
            .expect("ip link show")
            .status
            .success()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("removing {}: {e}", self.dir.display());
        }
    }
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    fs::write(path, text).expect("writing a stand-in");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// The `port add` argv for `iface` with the default socket, followed by `rest`.
fn port_add(iface: &str, rest: &[&str]) -> Vec<String> {
    let mut v = strings(&["port", "add", iface, "--socket", SOCKET]);
    v.extend(strings(rest));
    v
}

fn port_del(iface: &str) -> Vec<String> {
    strings(&["port", "del", iface, "--socket", SOCKET])
}

/// What the script logged in `r`.
fn stderr(r: &Run) -> String {
    r.log.clone()
}

/// `r`'s exit status, output and log, for assertion messages.
fn show(r: &Run) -> String {
    format!("{}\nhotplug log:\n{}", output::show(&r.out), r.log)
}

fn assert_ok(r: &Run) {
    assert!(r.out.status.success(), "vif-xennet failed:\n{}", show(r));
}

fn assert_failed(r: &Run) {
    assert_eq!(
        r.out.status.code(),
        Some(1),
        "vif-xennet should exit 1:\n{}",
        show(r)
    );
}

fn connected() -> String {
    format!("{XENBUS_PATH}/hotplug-status=connected")
}

/// Online with an access VLAN: the vif is brought up first, then added with the guest's MAC
/// (lower-cased) as a static entry, and netback is told the vif is connected.
#[test]
fn online_access_vlan() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifacc");
    b.xs("bridge", "trunk/4094").xs("mac", "00:16:3E:00:00:07");
    assert!(!b.link_up(VIF), "the stand-in vif starts down");
    let out = b.run(&["online", "type_if=vif"], &[]);
    assert_ok(&out);
    assert_eq!(
        b.agent_calls(),
        vec![port_add(
            VIF,
            &["--bridge", "trunk", "--access", "4094", "--mac", MAC]
        )]
    );
    assert_eq!(b.link_when_added(), ["up"], "vif not up before `port add`");
    assert!(b.link_up(VIF));
    assert_eq!(b.xs_writes(), [connected()]);
    assert!(
        b.syslog().contains("attached to xennet bridge trunk"),
        "syslog: {}",
        b.syslog()
    );
    // Like Xen's scripts: messages go to the hotplug log, nothing to xl's terminal.
    assert!(
        out.log.contains("vif-xennet[") && out.log.contains("vif7.0: online: attached"),
        "{}",
        show(&out)
    );
    assert!(
        out.out.stderr.is_empty() && out.out.stdout.is_empty(),
        "{}",
        show(&out)
    );
}

/// A trunk with a native VLAN: tagged list and native VLAN, MAC pinned in the native VLAN.
#[test]
fn online_trunk_with_native() {
    if !require_root() {
        return;
    }
    let b = Bench::new("viftrn");
    b.xs("bridge", "trunk/4094,4093/native=4094").xs("mac", MAC);
    let out = b.run(&["online"], &[]);
    assert_ok(&out);
    assert_eq!(
        b.agent_calls(),
        vec![port_add(
            VIF,
            &[
                "--bridge",
                "trunk",
                "--trunk",
                "4093,4094",
                "--native",
                "4094",
                "--mac",
                MAC
            ]
        )]
    );
    assert_eq!(b.xs_writes(), [connected()]);
}

/// The xl.cfg spelling (`:` between items, since xl splits a vif spec at commas) with a
/// range, no native VLAN: ids expanded, sorted, deduplicated; no MAC (nowhere untagged).
#[test]
fn online_trunk_xl_cfg_spelling_without_native() {
    if !require_root() {
        return;
    }
    let b = Bench::new("viftr2");
    b.xs("bridge", "trunk/4094:100-102:4093:101").xs("mac", MAC);
    let out = b.run(&["online"], &[]);
    assert_ok(&out);
    assert_eq!(
        b.agent_calls(),
        vec![port_add(
            VIF,
            &["--bridge", "trunk", "--trunk", "100,101,102,4093,4094"]
        )]
    );
    assert!(stderr(&out).contains("MAC learned"), "{}", show(&out));
    assert_eq!(b.xs_writes(), [connected()]);
}

/// A plain bridge name: the agent's rule for the bridge decides the VLANs; the MAC goes along.
#[test]
fn online_plain_bridge() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifpln");
    b.xs("bridge", "internal").xs("mac", MAC);
    let out = b.run(&["online"], &[]);
    assert_ok(&out);
    assert_eq!(
        b.agent_calls(),
        vec![port_add(VIF, &["--bridge", "internal", "--mac", MAC])]
    );
    assert_eq!(b.xs_writes(), [connected()]);
}

/// Offline (and remove) detach the vif; nothing is written to xenstore and nothing is
/// brought up.
#[test]
fn offline_detaches() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifoff");
    b.xs("bridge", "trunk/4094").xs("mac", MAC);
    assert_ok(&b.run(&["offline", "type_if=vif"], &[]));
    assert_ok(&b.run(&["remove"], &[]));
    assert_eq!(b.agent_calls(), vec![port_del(VIF), port_del(VIF)]);
    assert!(b.xs_writes().is_empty(), "{:?}", b.xs_writes());
    assert!(!b.link_up(VIF));
}

/// `XENNET_AGENT` chooses the binary; an existing configuration file (`XENNET_CONFIG`, by
/// default /etc/xennet/xennet.toml) is handed to the agent, which reads its `[agent] socket`.
#[test]
fn agent_and_config_overrides() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifovr");
    b.xs("bridge", "trunk/10").xs("mac", MAC);
    let other = b.dir.join("other-agent");
    write_executable(&other, AGENT);
    let other = other.to_str().expect("UTF-8 path");
    let cfg = b.dir.join("xennet.toml");
    fs::write(&cfg, "# the stand-in agent does not read it\n").expect("config");
    let cfg = cfg.to_str().expect("UTF-8 path");
    let env = [("XENNET_AGENT", other), ("XENNET_CONFIG", cfg)];
    assert_ok(&b.run(&["online"], &env));
    assert_ok(&b.run(&["offline"], &env));
    assert_eq!(
        b.agent_calls(),
        vec![
            strings(&[
                "port", "add", VIF, "--config", cfg, "--bridge", "trunk", "--access", "10",
                "--mac", MAC
            ]),
            strings(&["port", "del", VIF, "--config", cfg]),
        ]
    );
}

/// Bad bridge specs fail before anything happens: the agent is not called, the vif stays
/// down, and the toolstack gets hotplug-status=error with the reason.
#[test]
fn bad_bridge_spec_fails_without_calling_the_agent() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifbad");
    b.xs("mac", MAC);
    for (spec, says) in [
        ("trunk/4095", "4095 is not a VLAN id"),
        ("trunk/0", "0 is not a VLAN id"),
        ("trunk/04094", "04094 is not a VLAN id"),
        ("trunk/40944", "40944 is not a VLAN id"),
        ("trunk/vlan10", "vlan10 is not a VLAN id"),
        ("trunk/", "nothing after the last '/'"),
        ("trunk/10/", "nothing after the last '/'"),
        ("trunk/10,,20", "is not a list of VLAN ids"),
        ("trunk/10,20,", "is not a list of VLAN ids"),
        ("trunk/20-10", "20-10 is not a VLAN range"),
        ("trunk/10-4095", "10-4095 is not a VLAN range"),
        (
            "trunk/10,20/native=4095",
            "native VLAN '4095' is not a VLAN id",
        ),
        ("trunk/10,20/native=", "native VLAN '' is not a VLAN id"),
        ("trunk/10/pvid=10", "unknown option 'pvid=10'"),
        (
            "trunk/10/native=10/x",
            "native VLAN '10/x' is not a VLAN id",
        ),
        ("/10", "'' is not a bridge name"),
        ("my bridge", "is not a bridge name"),
        ("..", "'..' is not a bridge name"),
        ("a-bridge-name-too-long", "longer than 15 characters"),
    ] {
        fs::remove_file(b.dir.join("xs-writes.log")).ok();
        b.xs("bridge", spec);
        let out = b.run(&["online"], &[]);
        assert_failed(&out);
        assert!(
            stderr(&out).contains(says),
            "bridge {spec:?}: expected {says:?} in\n{}",
            show(&out)
        );
        let writes = b.xs_writes();
        assert!(
            writes.contains(&format!("{XENBUS_PATH}/hotplug-status=error")),
            "bridge {spec:?}: {writes:?}"
        );
        assert!(
            writes.iter().any(
                |w| w.starts_with(&format!("{XENBUS_PATH}/hotplug-error=")) && w.contains(says)
            ),
            "bridge {spec:?}: {writes:?}"
        );
    }
    b.xs("bridge", "");
    let out = b.run(&["online"], &[]);
    assert_failed(&out);
    assert!(stderr(&out).contains("no bridge"), "{}", show(&out));

    assert!(b.agent_calls().is_empty(), "{:?}", b.agent_calls());
    assert!(!b.link_up(VIF), "a refused vif must stay down");
    assert!(
        b.syslog().contains("4095 is not a VLAN id"),
        "syslog: {}",
        b.syslog()
    );
}

/// A malformed, multicast or zero MAC fails before the agent is called.
#[test]
fn bad_mac_fails_without_calling_the_agent() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifmac");
    b.xs("bridge", "trunk/4094");
    for (mac, says) in [
        ("00:16:3e:00:00", "is not a MAC address"),
        ("00:16:3e:00:00:0g", "is not a MAC address"),
        ("00-16-3e-00-00-07", "is not a MAC address"),
        ("00:16:3e:00:00:007", "is not a MAC address"),
        ("01:00:5e:00:00:01", "multicast"),
        ("ff:ff:ff:ff:ff:ff", "multicast"),
        ("00:00:00:00:00:00", "all-zero"),
    ] {
        b.xs("mac", mac);
        let out = b.run(&["online"], &[]);
        assert_failed(&out);
        assert!(
            stderr(&out).contains(says),
            "mac {mac:?}: expected {says:?} in\n{}",
            show(&out)
        );
    }
    assert!(b.agent_calls().is_empty(), "{:?}", b.agent_calls());
    assert!(!b.link_up(VIF));
    assert!(!b.xs_writes().contains(&connected()));
}

/// No `mac` key: attached without a static entry (learned).
#[test]
fn missing_mac_attaches_without_static_entry() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifnom");
    b.xs("bridge", "trunk/4094");
    let out = b.run(&["online"], &[]);
    assert_ok(&out);
    assert_eq!(
        b.agent_calls(),
        vec![port_add(VIF, &["--bridge", "trunk", "--access", "4094"])]
    );
}

/// The agent refusing `port add` fails the script with the agent's message, and the
/// toolstack learns it through hotplug-status=error (never "connected").
#[test]
fn agent_failure_on_add_fails() {
    if !require_root() {
        return;
    }
    let b = Bench::new("viffad");
    b.xs("bridge", "trunk/4094").xs("mac", MAC);
    let out = b.run(&["online"], &[("AGENT_FAIL", "add")]);
    assert_failed(&out);
    assert!(
        stderr(&out).contains("stand-in agent told to fail `port add`"),
        "{}",
        show(&out)
    );
    assert_eq!(
        b.agent_calls(),
        vec![port_add(
            VIF,
            &["--bridge", "trunk", "--access", "4094", "--mac", MAC]
        )]
    );
    let writes = b.xs_writes();
    assert!(!writes.contains(&connected()), "{writes:?}");
    assert!(
        writes.contains(&format!("{XENBUS_PATH}/hotplug-status=error")),
        "{writes:?}"
    );
}

/// The agent failing `port del` (unknown port, agent gone) does not fail offline.
#[test]
fn agent_failure_on_del_is_ignored() {
    if !require_root() {
        return;
    }
    let b = Bench::new("viffdl");
    let out = b.run(&["offline"], &[("AGENT_FAIL", "del")]);
    assert_ok(&out);
    assert_eq!(b.agent_calls(), vec![port_del(VIF)]);
    assert!(
        stderr(&out).contains("port del' failed; ignored"),
        "{}",
        show(&out)
    );
    assert!(
        b.syslog().contains("stand-in agent told to fail"),
        "syslog: {}",
        b.syslog()
    );
    // Not even an agent binary: still fine.
    let out = b.run(
        &["offline"],
        &[("XENNET_AGENT", "/nonexistent/xennet-agent")],
    );
    assert_ok(&out);
}

/// A vif that does not exist cannot be brought up: failure, agent not called.
#[test]
fn missing_vif_fails() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifmis");
    b.xs("bridge", "trunk/4094").xs("mac", MAC);
    let out = b.run(&["online"], &[("vif", "vif9.0")]);
    assert_failed(&out);
    assert!(
        stderr(&out).contains("vif9.0: cannot bring the interface up"),
        "{}",
        show(&out)
    );
    assert!(b.agent_calls().is_empty(), "{:?}", b.agent_calls());
}

/// `vifname=` in the vif spec: the vif is renamed (as vif-common.sh does) and attached, and
/// detached, under that name.
#[test]
fn vifname_renames_and_attaches_under_the_new_name() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifren");
    b.xs("bridge", "trunk/4094")
        .xs("mac", MAC)
        .xs("vifname", "web1.0");
    assert_ok(&b.run(&["online"], &[]));
    assert!(b.has_link("web1.0") && !b.has_link(VIF));
    assert!(b.link_up("web1.0"));
    assert_ok(&b.run(&["offline"], &[]));
    assert_eq!(
        b.agent_calls(),
        vec![
            port_add(
                "web1.0",
                &["--bridge", "trunk", "--access", "4094", "--mac", MAC]
            ),
            port_del("web1.0"),
        ]
    );
}

/// An HVM guest with an emulated NIC (`type=ioemu`): its vif and its tap
/// (`add type_if=tap`, name in `$INTERFACE`) are both attached, neither with a static MAC
/// (the guest may use either); only the vif reports hotplug-status.
#[test]
fn hvm_emulated_nic_vif_and_tap_without_static_mac() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifhvm");
    b.add_link("vif7.0-emu");
    b.xs("bridge", "trunk/4094")
        .xs("mac", MAC)
        .xs("type", "vif_ioemu");
    let hvm = Nic::hvm(7);
    assert_ok(&b.online(hvm, &[]));
    assert_ok(&b.run_nic(hvm, None, &["add", "type_if=tap"], &[]));
    assert!(b.link_up("vif7.0-emu"));
    assert_ok(&b.run_nic(hvm, None, &["remove", "type_if=tap"], &[]));
    let attach = ["--bridge", "trunk", "--access", "4094"];
    assert_eq!(
        b.agent_calls(),
        vec![
            port_add(VIF, &attach),
            port_add("vif7.0-emu", &attach),
            port_del("vif7.0-emu"),
        ]
    );
    assert_eq!(b.xs_writes(), [connected()]);
}

/// The agent answering `port add` with success but leaving the port out (not among its
/// `ports`): the script takes the port back and fails with hotplug-status=error.
#[test]
fn port_left_out_by_the_agent_fails() {
    if !require_root() {
        return;
    }
    let b = Bench::new("viflft");
    b.xs("bridge", "trunk/4094").xs("mac", MAC);
    let out = b.run(&["online"], &[("AGENT_LEAVE_OUT", VIF)]);
    assert_failed(&out);
    assert!(
        stderr(&out).contains("accepted the port on bridge trunk but did not attach it"),
        "{}",
        show(&out)
    );
    assert_eq!(
        b.agent_calls(),
        vec![
            port_add(
                VIF,
                &["--bridge", "trunk", "--access", "4094", "--mac", MAC]
            ),
            port_del(VIF),
        ]
    );
    let writes = b.xs_writes();
    assert!(!writes.contains(&connected()), "{writes:?}");
    assert!(
        writes.contains(&format!("{XENBUS_PATH}/hotplug-status=error")),
        "{writes:?}"
    );
}

/// If hotplug-status cannot be written, netback would never connect the guest: the port is
/// removed again and the script fails.
#[test]
fn hotplug_status_write_failure_rolls_back() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifxsw");
    b.xs("bridge", "trunk/4094").xs("mac", MAC);
    let out = b.run(&["online"], &[("XS_WRITE_FAIL", "1")]);
    assert_failed(&out);
    assert_eq!(
        b.agent_calls(),
        vec![
            port_add(
                VIF,
                &["--bridge", "trunk", "--access", "4094", "--mac", MAC]
            ),
            port_del(VIF),
        ]
    );
}

/// Usage errors exit 1 without calling the agent.
#[test]
fn usage_errors() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifuse");
    b.xs("bridge", "trunk/4094").xs("mac", MAC);
    for (args, env, says) in [
        (&[][..], &[][..], "no action given"),
        (&["start"][..], &[][..], "unknown action 'start'"),
        (
            &["online", "type_if=tun"][..],
            &[][..],
            "unknown type_if 'tun'",
        ),
        (&["online"][..], &[("vif", "")][..], "$vif is not set"),
        (
            &["online"][..],
            &[("XENBUS_PATH", "")][..],
            "$XENBUS_PATH is not set",
        ),
        (
            &["add", "type_if=tap"][..],
            &[][..],
            "$INTERFACE is not set",
        ),
    ] {
        let out = b.run(args, env);
        assert_failed(&out);
        assert!(
            stderr(&out).contains(says),
            "{args:?} {env:?}: expected {says:?} in\n{}",
            show(&out)
        );
    }
    assert!(b.agent_calls().is_empty(), "{:?}", b.agent_calls());
    let out = b.run(&[], &[]);
    assert!(
        String::from_utf8_lossy(&out.out.stdout).contains("usage:"),
        "{}",
        show(&out)
    );
}

/// `ip=` (libxl writes it to `ip`, space-separated): one `--ip` per address after the MAC.
/// Without a static MAC (an HVM guest's emulated NIC) it is not passed, and the log says so.
#[test]
fn ip_becomes_the_ports_addresses() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifip");
    b.xs("bridge", "trunk/4094")
        .xs("mac", MAC)
        .xs("ip", "192.0.2.7 2001:db8::7");
    let out = b.run(&["online", "type_if=vif"], &[]);
    assert_ok(&out);
    assert_eq!(
        b.agent_calls(),
        vec![port_add(
            VIF,
            &[
                "--bridge",
                "trunk",
                "--access",
                "4094",
                "--mac",
                MAC,
                "--ip",
                "192.0.2.7",
                "--ip",
                "2001:db8::7"
            ]
        )]
    );
    assert_eq!(b.xs_writes(), [connected()]);

    let b = Bench::new("vifipemu");
    b.xs("bridge", "trunk/4094")
        .xs("mac", MAC)
        .xs("type", "vif_ioemu")
        .xs("ip", "192.0.2.7");
    let out = b.run(&["online", "type_if=vif"], &[]);
    assert_ok(&out);
    assert_eq!(
        b.agent_calls(),
        vec![port_add(VIF, &["--bridge", "trunk", "--access", "4094"])]
    );
    assert!(
        out.log
            .contains("ip=192.0.2.7 is not enforced: no static MAC"),
        "{}",
        show(&out)
    );
}

/// The script is POSIX sh (the tests use Debian's dash); bash runs it the same way.
#[test]
fn runs_under_bash_too() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifbsh");
    b.xs("bridge", "trunk/4093:4094/native=4094").xs("mac", MAC);
    assert_ok(&b.run_nic(PV, Some("bash"), &["online"], &[]));
    assert_ok(&b.run_nic(PV, Some("bash"), &["offline"], &[("AGENT_FAIL", "del")]));
    assert_eq!(
        b.agent_calls(),
        vec![
            port_add(
                VIF,
                &[
                    "--bridge",
                    "trunk",
                    "--trunk",
                    "4093,4094",
                    "--native",
                    "4094",
                    "--mac",
                    MAC
                ]
            ),
            port_del(VIF),
        ]
    );
}

//--- with the real agent ---------------------------------------------------------------------

/// A bench with the real agent running on bridge `trunk` (uplink `eth1`, trunk 4093-4094, and
/// `bridge_extra` lines), its configuration file naming its socket in `[agent] socket`, the
/// script pointed at the real agent and that file. Drop order: agent, bpffs, bench.
struct Real {
    agent: Agent,
    _fs: BpfFs,
    b: Bench,
    bin: String,
    cfg: String,
}

impl Real {
    /// `None` (test skipped) without root or without `$XENNET_AGENT`.
    fn start(tag: &str, bridge_extra: &str) -> Option<Real> {
        if !require_root() {
            return None;
        }
        let Some(bin) = std::env::var_os("XENNET_AGENT") else {
            eprintln!("skipping: XENNET_AGENT is not set (run `cargo xtask test`)");
            return None;
        };
        let b = Bench::new(tag);
        b.add_link("eth1");
        let cfg = b.dir.join("xennet.toml");
        fs::write(
            &cfg,
            format!(
                "[agent]\nsocket = \"{}\"\n\n[[bridge]]\nname = \"trunk\"\n{bridge_extra}\n\n\
                 [[bridge.port]]\ninterface = \"eth1\"\ntrunk = [4093, 4094]\n",
                Agent::socket_for(&b.ns).display()
            ),
        )
        .expect("config");
        let fs = BpfFs::new(b.ns.name()).expect("bpffs");
        let agent = Agent::start(&b.ns, &cfg, &fs.pin_dir()).expect("starting the agent");
        Some(Real {
            agent,
            _fs: fs,
            b,
            bin: bin.to_str().expect("UTF-8 agent path").to_owned(),
            cfg: cfg.to_str().expect("UTF-8 config path").to_owned(),
        })
    }

    /// The script's settings for the real agent, then `more`.
    fn env<'a>(&'a self, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("XENNET_AGENT", self.bin.as_str()),
            ("XENNET_CONFIG", self.cfg.as_str()),
        ];
        env.extend_from_slice(more);
        env
    }

    fn online(&self, nic: Nic) -> Run {
        self.b.online(nic, &self.env(&[]))
    }

    fn offline(&self, nic: Nic) -> Run {
        self.b.offline(nic, &self.env(&[]))
    }

    fn tap(&self, nic: Nic, action: &str) -> Run {
        self.b
            .run_nic(nic, None, &[action, "type_if=tap"], &self.env(&[]))
    }

    /// The agent's ports other than the uplink: (interface, VLANs), sorted.
    fn ports(&self) -> Vec<(String, String)> {
        let mut ports: Vec<(String, String)> = self
            .agent
            .ports()
            .expect("ports")
            .into_iter()
            .map(|p| {
                (
                    p["interface"].as_str().unwrap_or_default().to_owned(),
                    p["vlans"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .filter(|(i, _)| i != "eth1")
            .collect();
        ports.sort();
        ports
    }

    /// The static FDB entries: (MAC, VLAN, port).
    fn statics(&self) -> Vec<(String, u16, String)> {
        self.agent
            .fdb(None)
            .expect("fdb show")
            .into_iter()
            .filter(|e| e.is_static)
            .map(|e| (e.mac, e.vlan, e.port))
            .collect()
    }
}

fn port(iface: &str, vlans: &str) -> (String, String) {
    (iface.to_owned(), vlans.to_owned())
}

fn pinned(mac: &str, vlan: u16, iface: &str) -> (String, u16, String) {
    (mac.to_owned(), vlan, iface.to_owned())
}

/// A PV vif: online attaches it with the guest's MAC pinned, offline detaches it; the xl.cfg
/// trunk spelling; offline twice; the agent's refusals reach hotplug-error.
#[test]
fn real_pv_vif() {
    let Some(r) = Real::start("vifreal", "") else {
        return;
    };
    let b = &r.b;

    // Access VLAN, MAC pinned there.
    b.xs("bridge", "trunk/4094").xs("mac", MAC);
    let out = r.online(PV);
    assert_ok(&out);
    assert_eq!(
        r.ports(),
        [port(VIF, "access 4094")],
        "{}",
        r.agent.log_text()
    );
    assert_eq!(r.statics(), [pinned(MAC, 4094, VIF)]);
    assert_eq!(b.xs_writes(), [connected()]);
    assert!(b.link_up(VIF));
    assert!(
        out.log.contains("attached to xennet bridge trunk"),
        "{}",
        show(&out)
    );

    // Re-plugged as a trunk with native VLAN (the xl.cfg spelling).
    assert_ok(&r.offline(PV));
    assert!(r.ports().is_empty(), "{:?}", r.ports());
    assert!(r.statics().is_empty(), "{:?}", r.statics());
    b.xs("bridge", "trunk/4093:4094/native=4093");
    assert_ok(&r.online(PV));
    assert_eq!(r.ports(), [port(VIF, "trunk 4093,4094 native 4093")]);
    assert_eq!(r.statics(), [pinned(MAC, 4093, VIF)]);

    // Offline twice: the second `port del` is refused by the agent, the script shrugs.
    assert_ok(&r.offline(PV));
    let out = r.offline(PV);
    assert_ok(&out);
    assert!(
        out.log.contains("not a port added with `port add`"),
        "{}",
        show(&out)
    );
    assert!(r.ports().is_empty());

    // The agent refusing: an unknown bridge, and a plain bridge with no rule for the vif.
    for (spec, says) in [
        ("nosuch/10", "no bridge \"nosuch\""),
        ("trunk", "has no port rule matching"),
    ] {
        b.clear_xs_writes();
        b.xs("bridge", spec);
        let out = r.online(PV);
        assert_failed(&out);
        assert!(out.log.contains(says), "{spec}: {}", show(&out));
        let writes = b.xs_writes();
        assert_eq!(
            writes.last().map(String::as_str),
            Some(format!("{XENBUS_PATH}/hotplug-status=error").as_str()),
            "{spec}"
        );
        assert!(
            writes.iter().any(
                |w| w.starts_with(&format!("{XENBUS_PATH}/hotplug-error=")) && w.contains(says)
            ),
            "{spec}: {writes:?}"
        );
        assert!(r.ports().is_empty());
    }
}

/// `ip=` from xenstore becomes the port's addresses in the real agent: port security on,
/// enforcing those sources (`ports --json`).
#[test]
fn real_ip_becomes_port_security() {
    let Some(r) = Real::start("vifrealip", "") else {
        return;
    };
    r.b.xs("bridge", "trunk/4094")
        .xs("mac", MAC)
        .xs("ip", "192.0.2.7 2001:db8::7");
    let out = r.online(PV);
    assert_ok(&out);
    let ports = r.agent.ports().expect("ports");
    let sec = ports.iter().find(|p| p["interface"] == VIF).map_or_else(
        || panic!("{VIF} not a port: {ports:?}"),
        |p| p["security"].clone(),
    );
    assert_eq!(sec["enabled"], true, "{sec}");
    assert_eq!(
        sec["ips"],
        serde_json::json!(["192.0.2.7/32", "2001:db8::7/128"]),
        "{sec}"
    );
    assert_eq!(r.statics(), [pinned(MAC, 4094, VIF)]);
}

/// `vifname=`: the vif is renamed and attached under its vifname. A second guest asking for
/// the same vifname fails (hotplug-status=error, the reason in hotplug-error) without touching
/// the first guest's port or static MAC, and its offline leaves that port alone too.
#[test]
fn real_renamed_vif_and_a_clash() {
    let Some(r) = Real::start("vifren", "") else {
        return;
    };
    let b = &r.b;
    let other = Nic::pv(8);
    let other_mac = "00:16:3e:00:00:08";
    b.add_link(&other.vif());
    b.xs("bridge", "trunk/4094")
        .xs("mac", MAC)
        .xs("vifname", "web0");
    b.xs_nic(other, "bridge", "trunk/4094")
        .xs_nic(other, "mac", other_mac)
        .xs_nic(other, "vifname", "web0");

    assert_ok(&r.online(PV));
    assert!(b.has_link("web0") && !b.has_link(VIF));
    assert!(b.link_up("web0"));
    assert_eq!(r.ports(), [port("web0", "access 4094")]);
    assert_eq!(r.statics(), [pinned(MAC, 4094, "web0")]);

    let out = r.online(other);
    assert_failed(&out);
    let says = "an interface named web0 already exists";
    assert!(out.log.contains(says), "{}", show(&out));
    let backend = other.backend();
    let writes = b.xs_writes();
    assert!(
        writes.contains(&format!("{backend}/hotplug-status=error")),
        "{writes:?}"
    );
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with(&format!("{backend}/hotplug-error=")) && w.contains(says)),
        "{writes:?}"
    );
    assert!(!writes.contains(&format!("{backend}/hotplug-status=connected")));
    assert_eq!(r.ports(), [port("web0", "access 4094")]);
    assert_eq!(r.statics(), [pinned(MAC, 4094, "web0")]);
    assert!(b.has_link(&other.vif()) && !b.link_up(&other.vif()));

    // libxl destroys the failed guest: its offline must not take web0 away.
    assert_ok(&r.offline(other));
    assert_eq!(r.ports(), [port("web0", "access 4094")]);
    assert_eq!(r.statics(), [pinned(MAC, 4094, "web0")]);

    assert_ok(&r.offline(PV));
    assert!(r.ports().is_empty(), "{:?}", r.ports());
    assert!(r.statics().is_empty(), "{:?}", r.statics());
}

/// An HVM guest with an emulated NIC (`type=ioemu`, libxl writes `type = vif_ioemu`) and
/// `vifname=`: `online type_if=vif` attaches the vif as NAME, `add type_if=tap` QEMU's real tap
/// as NAME-emu; neither pins the MAC (the guest may use either); only the vif reports
/// hotplug-status; `remove` and `offline` detach each.
#[test]
fn real_hvm_guest_with_emulated_nic() {
    let Some(r) = Real::start("vifhvm", "") else {
        return;
    };
    let b = &r.b;
    let hvm = Nic::hvm(7);
    b.add_tap(&hvm.tap());
    b.xs("bridge", "trunk/4094")
        .xs("mac", MAC)
        .xs("type", "vif_ioemu")
        .xs("vifname", "web7");

    assert_ok(&r.online(hvm));
    assert_ok(&r.tap(hvm, "add"));
    assert!(b.has_link("web7") && b.has_link("web7-emu"));
    assert!(!b.has_link(&hvm.vif()) && !b.has_link(&hvm.tap()));
    assert!(b.link_up("web7-emu"));
    assert_eq!(
        r.ports(),
        [port("web7", "access 4094"), port("web7-emu", "access 4094")]
    );
    assert!(r.statics().is_empty(), "{:?}", r.statics());
    assert_eq!(b.xs_writes(), [connected()]);

    assert_ok(&r.tap(hvm, "remove"));
    assert_eq!(r.ports(), [port("web7", "access 4094")]);
    assert_ok(&r.offline(hvm));
    assert!(r.ports().is_empty(), "{:?}", r.ports());
}

/// An HVM guest with a stub domain (domain 8, `/local/domain/8/target = 7`): libxl runs no tap
/// script; it runs `online` for the guest's vif (`type = vif_ioemu`) and for the stub domain's
/// own vif (`type = vif`, the guest's MAC, carrying the emulated NIC). Neither pins the MAC:
/// pinned on the stub domain's vif, it would drop the guest's PV-driver traffic.
#[test]
fn real_stub_domain() {
    let Some(r) = Real::start("vifstub", "") else {
        return;
    };
    let b = &r.b;
    let guest = Nic::hvm(7);
    let stub = Nic::pv(8);
    b.add_link(&stub.vif());
    b.xs("bridge", "trunk/4094")
        .xs("mac", MAC)
        .xs("type", "vif_ioemu");
    b.xs_path("/local/domain/8/target", "7");
    b.xs_nic(stub, "bridge", "trunk/4094")
        .xs_nic(stub, "mac", MAC)
        .xs_nic(stub, "type", "vif");

    assert_ok(&r.online(guest));
    let out = r.online(stub);
    assert_ok(&out);
    assert_eq!(
        r.ports(),
        [port(VIF, "access 4094"), port("vif8.0", "access 4094")]
    );
    assert!(r.statics().is_empty(), "{:?}", r.statics());
    assert!(out.log.contains("a stub domain's vif"), "{}", show(&out));

    assert_ok(&r.offline(stub));
    assert_ok(&r.offline(guest));
    assert!(r.ports().is_empty(), "{:?}", r.ports());
}

/// `mtu=` on a bridge with `mtu = 9000`: a guest with the bridge's MTU is attached with it; a
/// guest with another MTU is refused with both numbers (and not left a port); a guest without
/// `mtu=` gets the bridge's MTU and is told it through its frontend's `mtu`, as vif-bridge does.
#[test]
fn real_mtu() {
    let Some(r) = Real::start("vifmtu", "mtu = 9000") else {
        return;
    };
    let b = &r.b;
    let (small, plain) = (Nic::pv(8), Nic::pv(9));
    for nic in [small, plain] {
        b.add_link(&nic.vif());
    }
    for (nic, mac) in [
        (PV, MAC),
        (small, "00:16:3e:00:00:08"),
        (plain, "00:16:3e:00:00:09"),
    ] {
        b.xs_nic(nic, "bridge", "trunk/4094")
            .xs_nic(nic, "mac", mac);
    }
    b.xs("mtu", "9000").xs_nic(small, "mtu", "4000");

    assert_ok(&r.online(PV));
    assert_eq!(b.link_mtu(VIF), 9000);
    assert_eq!(r.ports(), [port(VIF, "access 4094")]);

    let out = r.online(small);
    assert_failed(&out);
    let says = "mtu=4000 differs from the MTU 9000 that bridge trunk sets";
    assert!(out.log.contains(says), "{}", show(&out));
    assert!(
        b.xs_writes()
            .iter()
            .any(|w| w.starts_with("backend/vif/8/0/hotplug-error=") && w.contains(says)),
        "{:?}",
        b.xs_writes()
    );
    assert_eq!(r.ports(), [port(VIF, "access 4094")]);

    b.clear_xs_writes();
    assert_ok(&r.online(plain));
    assert_eq!(b.link_mtu("vif9.0"), 9000);
    assert_eq!(
        b.xs_writes(),
        [
            "/local/domain/9/device/vif/0/mtu=9000".to_owned(),
            "backend/vif/9/0/hotplug-status=connected".to_owned()
        ]
    );
    assert_eq!(
        r.ports(),
        [port(VIF, "access 4094"), port("vif9.0", "access 4094")]
    );
}

/// Without a bridge `mtu`, the agent's MTU rule decides: a guest whose `mtu=` differs from the
/// bridge's other ports is refused with the agent's reason.
#[test]
fn real_mtu_against_the_bridge_rule() {
    let Some(r) = Real::start("vifmtr", "") else {
        return;
    };
    let b = &r.b;
    b.xs("bridge", "trunk/4094")
        .xs("mac", MAC)
        .xs("mtu", "9000");
    let out = r.online(PV);
    assert_failed(&out);
    // The agent refuses the port with its reason, which the script passes on.
    let says = "port \"vif7.0\": MTU 9000 differs from the bridge's 1500";
    assert!(out.log.contains(says), "{}", show(&out));
    assert!(
        r.agent
            .log_text()
            .contains("vif7.0 has MTU 9000, the bridge 1500"),
        "{}",
        r.agent.log_text()
    );
    assert!(r.ports().is_empty(), "{:?}", r.ports());
    assert!(
        b.xs_writes()
            .iter()
            .any(|w| w.starts_with(&format!("{XENBUS_PATH}/hotplug-error=")) && w.contains(says)),
        "{:?}",
        b.xs_writes()
    );
    // The script took the port back: the agent no longer knows it.
    let out = r.offline(PV);
    assert!(
        out.log.contains("not a port added with `port add`"),
        "{}",
        show(&out)
    );
}

/// An agent that does not answer (stopped): the script gives up after
/// `XENNET_HOTPLUG_TIMEOUT` seconds, well inside libxl's 40 s, with hotplug-status=error and a
/// reason. Once the agent runs again, libxl's `offline` (destroying the failed guest) leaves no
/// port or static MAC behind.
#[test]
fn real_agent_not_answering() {
    let Some(r) = Real::start("vifstop", "") else {
        return;
    };
    let b = &r.b;
    b.xs("bridge", "trunk/4094").xs("mac", MAC);
    r.agent.signal(libc::SIGSTOP).expect("SIGSTOP");
    let out = b.online(PV, &r.env(&[("XENNET_HOTPLUG_TIMEOUT", "2")]));
    r.agent.signal(libc::SIGCONT).expect("SIGCONT");
    assert_failed(&out);
    assert!(
        out.took < Duration::from_secs(6),
        "took {:?}:\n{}",
        out.took,
        show(&out)
    );
    let says = "did not answer within 2 s";
    assert!(out.log.contains(says), "{}", show(&out));
    let writes = b.xs_writes();
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with(&format!("{XENBUS_PATH}/hotplug-error=")) && w.contains(says)),
        "{writes:?}"
    );
    assert_eq!(
        writes.last().map(String::as_str),
        Some(format!("{XENBUS_PATH}/hotplug-status=error").as_str())
    );

    assert_ok(&r.offline(PV));
    assert!(r.ports().is_empty(), "{:?}", r.ports());
    assert!(r.statics().is_empty(), "{:?}", r.statics());
}

/// The default bound is well inside libxl's 40 s, and a larger one is refused.
#[test]
fn hotplug_timeout_is_bounded() {
    if !require_root() {
        return;
    }
    let b = Bench::new("viftmo");
    b.xs("bridge", "trunk/4094").xs("mac", MAC);
    let out = b.run(&["online"], &[("XENNET_HOTPLUG_TIMEOUT", "40")]);
    assert_failed(&out);
    assert!(out.log.contains("more than 35 s"), "{}", show(&out));
    assert!(b.agent_calls().is_empty());
}

/// xl's `rate=` reaches xenstore as libxl writes it, `BYTES,USECS` per interval (`10Mb/s` is
/// 62500 bytes every 50 ms): the script turns it into `--rate` in bits per second. Anything
/// else fails the vif without calling the agent.
#[test]
fn rate_becomes_a_limit() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifrate");
    b.xs("bridge", "trunk/4094")
        .xs("mac", "00:16:3E:00:00:07")
        .xs("rate", "62500,50000");
    assert_ok(&b.run(&["online", "type_if=vif"], &[]));
    assert_eq!(
        b.agent_calls(),
        vec![port_add(
            VIF,
            &[
                "--bridge",
                "trunk",
                "--access",
                "4094",
                "--mac",
                MAC,
                "--rate",
                "10000000bit"
            ]
        )]
    );
    for bad in [
        "10Mb/s", "62500", "62500,", ",50000", "62500,0", "1,2,3", "-5,50000",
    ] {
        let b = Bench::new("vifrbad");
        b.xs("bridge", "trunk/4094").xs("rate", bad);
        let out = b.run(&["online", "type_if=vif"], &[]);
        assert_failed(&out);
        assert!(
            stderr(&out).contains("/rate: '"),
            "rate {bad:?}: {}",
            show(&out)
        );
        assert!(
            b.agent_calls().is_empty(),
            "rate {bad:?}: the agent was called"
        );
    }
}
