//! `scripts/vif-xennet`, the Xen hotplug script, without Xen.
//!
//! Stand-ins on `PATH` play the toolstack's side and the agent: `xenstore-read` prints files of
//! a directory tree (the backend's keys), `xenstore-write` records what it is asked to write,
//! `xennet-agent` records its argv (and whether the port's link was up when it was called) and
//! fails when told to, `logger` records the syslog messages. Each test checks exactly which
//! agent commands the script issues for one xenstore content and action. The script runs in a
//! test network namespace holding a veth named like a vif (`vif7.0`), so its
//! `ip link set ... up` never touches the host's interfaces; its environment is only what the
//! test gives it (`env -i`), as libxl gives a hotplug script its own.
//!
//! The last test runs the script against the real agent (`$XENNET_AGENT`, set by
//! `cargo xtask test`): the ports and FDB it reports after `online` and `offline`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};

use xennet_tests::{
    Netns,
    output::{self, show},
    require_root,
    topo::{Agent, BpfFs, workspace_root},
};

/// The vif the tests attach, and its backend directory in the stand-in xenstore.
const VIF: &str = "vif7.0";
const XENBUS_PATH: &str = "backend/vif/7/0";
/// The script's default control socket.
const SOCKET: &str = "/run/xennet/xennet.sock";
const MAC: &str = "00:16:3e:00:00:07";

const XENSTORE_READ: &str = r#"#!/bin/sh
# Stand-in xenstore-read: prints $STUB_DIR/xs/PATH for each PATH.
for p in "$@"; do
    if [ ! -f "$STUB_DIR/xs/$p" ]; then
        echo "xenstore-read: couldn't read path $p" >&2
        exit 1
    fi
    printf '%s\n' "$(cat "$STUB_DIR/xs/$p")"
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
# `port add IFACE`, whether IFACE was up; fails for the subcommands named in $AGENT_FAIL.
printf '%s\t' "$@" >>"$STUB_DIR/agent.log"
printf '\n' >>"$STUB_DIR/agent.log"
if [ "$1" = port ] && [ "$2" = add ]; then
    if ip -o link show dev "$3" | grep -q '[<,]UP[,>]'; then
        echo up >>"$STUB_DIR/agent-link.log"
    else
        echo down >>"$STUB_DIR/agent-link.log"
    fi
fi
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
/// xenstore tree (`xs/`) and the stand-ins' records. The directory is removed on drop.
struct Bench {
    ns: Netns,
    dir: PathBuf,
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
        fs::create_dir_all(bench.dir.join("xs").join(XENBUS_PATH)).expect("xenstore dir");
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
        let peer = format!("{name}p");
        self.ns
            .exec_ok(&[
                "ip", "link", "add", name, "type", "veth", "peer", "name", &peer,
            ])
            .expect("creating the vif stand-in");
    }

    /// Set backend key `key` (under `XENBUS_PATH`) in the stand-in xenstore.
    fn xs(&self, key: &str, value: &str) -> &Self {
        fs::write(self.dir.join("xs").join(XENBUS_PATH).join(key), value).expect("xenstore key");
        self
    }

    /// Run `sh scripts/vif-xennet ARGS` in the namespace with only the toolstack's
    /// environment (`vif`, `XENBUS_PATH`), the stand-ins first on `PATH`, and `env`
    /// (which overrides those).
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.run_with("sh", args, env)
    }

    fn run_with(&self, shell: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let script = workspace_root().join("scripts/vif-xennet");
        let mut vars = vec![
            format!(
                "PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                self.dir.join("bin").display()
            ),
            format!("STUB_DIR={}", self.dir.display()),
            format!("vif={VIF}"),
            format!("XENBUS_PATH={XENBUS_PATH}"),
        ];
        vars.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        let mut cmd: Vec<&str> = vec!["env", "-i"];
        cmd.extend(vars.iter().map(String::as_str));
        let script = script.to_str().expect("script path is UTF-8");
        cmd.extend([shell, script]);
        cmd.extend(args);
        self.ns.exec(&cmd).expect("running vif-xennet")
    }

    fn record(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Every agent invocation, as its argv.
    fn agent_calls(&self) -> Vec<Vec<String>> {
        self.record("agent.log")
            .lines()
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

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output) {
    output::assert_ok(out, "vif-xennet", "");
}

fn assert_failed(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "vif-xennet should exit 1:\n{}",
        show(out)
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

/// `XENNET_AGENT` and `XENNET_SOCKET` choose the binary and the socket.
#[test]
fn agent_and_socket_overrides() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifovr");
    b.xs("bridge", "trunk/10").xs("mac", MAC);
    let other = b.dir.join("other-agent");
    write_executable(&other, AGENT);
    let other = other.to_str().expect("UTF-8 path");
    let env = [
        ("XENNET_AGENT", other),
        ("XENNET_SOCKET", "/tmp/xn-test.sock"),
    ];
    assert_ok(&b.run(&["online"], &env));
    assert_ok(&b.run(&["offline"], &env));
    assert_eq!(
        b.agent_calls(),
        vec![
            strings(&[
                "port",
                "add",
                VIF,
                "--socket",
                "/tmp/xn-test.sock",
                "--bridge",
                "trunk",
                "--access",
                "10",
                "--mac",
                MAC
            ]),
            strings(&["port", "del", VIF, "--socket", "/tmp/xn-test.sock"]),
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
        stderr(&out).contains("cannot bring vif9.0 up"),
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
    let tap_env = [("INTERFACE", "vif7.0-emu")];
    assert_ok(&b.run(&["online", "type_if=vif"], &tap_env));
    assert_ok(&b.run(&["add", "type_if=tap"], &tap_env));
    assert!(b.link_up("vif7.0-emu"));
    assert_ok(&b.run(&["remove", "type_if=tap"], &tap_env));
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
        (&[][..], &[][..], "usage:"),
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
}

/// The script is POSIX sh (the tests use Debian's dash); bash runs it the same way.
#[test]
fn runs_under_bash_too() {
    if !require_root() {
        return;
    }
    let b = Bench::new("vifbsh");
    b.xs("bridge", "trunk/4093:4094/native=4094").xs("mac", MAC);
    assert_ok(&b.run_with("bash", &["online"], &[]));
    assert_ok(&b.run_with("bash", &["offline"], &[("AGENT_FAIL", "del")]));
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

/// The real agent: what the script's commands do to its ports and FDB.
#[test]
fn with_the_real_agent() {
    if !require_root() {
        return;
    }
    let Some(bin) = std::env::var_os("XENNET_AGENT") else {
        eprintln!("skipping: XENNET_AGENT is not set (run `cargo xtask test`)");
        return;
    };
    let b = Bench::new("vifreal");
    b.add_link("eth1");
    let cfg = b.dir.join("xennet.toml");
    fs::write(
        &cfg,
        "[[bridge]]\nname = \"trunk\"\n\n[[bridge.port]]\ninterface = \"eth1\"\ntrunk = [4093, 4094]\n",
    )
    .expect("config");
    let fs = BpfFs::new(b.ns.name()).expect("bpffs");
    let agent = Agent::start(&b.ns, &cfg, &fs.pin_dir()).expect("starting the agent");
    let bin = bin.to_str().expect("UTF-8 agent path").to_owned();
    let socket = agent
        .socket()
        .to_str()
        .expect("UTF-8 socket path")
        .to_owned();
    let env = [
        ("XENNET_AGENT", bin.as_str()),
        ("XENNET_SOCKET", socket.as_str()),
    ];
    let port = |name: &str| -> Option<serde_json::Value> {
        agent
            .ports()
            .expect("ports")
            .into_iter()
            .find(|p| p["interface"] == name)
    };
    let statics = || -> Vec<(String, u16, String)> {
        agent
            .fdb(None)
            .expect("fdb show")
            .into_iter()
            .filter(|e| e.is_static)
            .map(|e| (e.mac, e.vlan, e.port))
            .collect()
    };

    // Access VLAN, MAC pinned there.
    b.xs("bridge", "trunk/4094").xs("mac", MAC);
    let out = b.run(&["online", "type_if=vif"], &env);
    assert_ok(&out);
    let p = port(VIF).unwrap_or_else(|| panic!("{VIF} not a port; log:\n{}", agent.log_text()));
    assert_eq!(p["bridge"], "trunk");
    assert_eq!(p["vlans"], "access 4094");
    assert_eq!(statics(), [(MAC.to_owned(), 4094, VIF.to_owned())]);
    assert_eq!(b.xs_writes(), [connected()]);

    // Re-plugged as a trunk with native VLAN (the xl.cfg spelling).
    assert_ok(&b.run(&["offline", "type_if=vif"], &env));
    assert!(port(VIF).is_none(), "{VIF} still a port after offline");
    assert!(statics().is_empty(), "{:?}", statics());
    b.xs("bridge", "trunk/4093:4094/native=4093");
    assert_ok(&b.run(&["online", "type_if=vif"], &env));
    let p = port(VIF).expect("trunk port");
    assert_eq!(p["vlans"], "trunk 4093,4094 native 4093");
    assert_eq!(statics(), [(MAC.to_owned(), 4093, VIF.to_owned())]);

    // Offline twice: the second `port del` is refused by the agent, the script shrugs.
    assert_ok(&b.run(&["offline"], &env));
    let out = b.run(&["offline"], &env);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("not a port added with `port add`"),
        "{}",
        show(&out)
    );
    assert!(port(VIF).is_none());

    // The agent refusing: an unknown bridge, and a plain bridge with no rule for the vif.
    for (spec, says) in [
        ("nosuch/10", "no bridge \"nosuch\""),
        ("trunk", "has no port rule matching"),
    ] {
        fs::remove_file(b.dir.join("xs-writes.log")).ok();
        b.xs("bridge", spec);
        let out = b.run(&["online"], &env);
        assert_failed(&out);
        assert!(stderr(&out).contains(says), "{spec}: {}", show(&out));
        assert_eq!(
            b.xs_writes().last().map(String::as_str),
            Some(format!("{XENBUS_PATH}/hotplug-status=error").as_str()),
            "{spec}"
        );
        assert!(port(VIF).is_none());
    }
    assert!(
        agent.stop().expect("stopping the agent"),
        "agent exit status"
    );
}
