//! The control socket: a Unix stream socket (mode 0600, root only) through which the CLI asks
//! the running agent for its FDB and ports, or tells it to reload.
//!
//! Protocol: one JSON request line, one JSON response line, then the server closes.
//! Requests: `{"cmd":"fdb","bridge":null}`, `{"cmd":"ports"}`, `{"cmd":"stats"}`,
//! `{"cmd":"reload","config":null}`,
//! `{"cmd":"port_add",…}`, `{"cmd":"port_del","interface":"…"}`; at most [`MAX_REQUEST`]
//! bytes, sent within [`CLIENT_TIMEOUT`]. Responses: `{"ok":true,"data":…}` or
//! `{"ok":false,"error":"…"}`.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::{
        fs::{FileTypeExt as _, PermissionsExt as _},
        net::UnixStream,
    },
    path::Path,
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _},
    net::UnixListener,
};

/// A request to the agent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// The FDB, optionally of one bridge.
    Fdb {
        /// Bridge name.
        bridge: Option<String>,
    },
    /// The attached ports.
    Ports,
    /// Every port's counters, with the interface and bridge names of the agent's namespace.
    Stats,
    /// Re-read the configuration file and apply the difference.
    Reload {
        /// The file the client means (`reload -c FILE`): refused unless it is the agent's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config: Option<std::path::PathBuf>,
    },
    /// Attach an interface as a port at run time (the toolstack's hot-plug script).
    PortAdd(Box<PortAdd>),
    /// Detach a port added at run time.
    PortDel {
        /// Interface name.
        interface: String,
    },
}

/// A run-time port: `xennet-agent port add`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PortAdd {
    /// Interface name (e.g. `vif7.0`).
    pub interface: String,
    /// Bridge name (must be in the configuration).
    pub bridge: String,
    /// Access VLAN.
    pub access: Option<u16>,
    /// Trunk VLANs.
    pub trunk: Option<Vec<u16>>,
    /// Native VLAN of a trunk.
    pub native: Option<u16>,
    /// Static MACs, `MAC` or `MAC@VLAN`.
    #[serde(default)]
    pub macs: Vec<String>,
    /// Attach mode (`auto`, `xdp`, `xdp-generic`, `tc`).
    pub attach: Option<String>,
    /// Bandwidth limit, both directions (`100Mbit`).
    #[serde(default)]
    pub rate: Option<String>,
    /// Burst of the limit (`256KiB`).
    #[serde(default)]
    pub burst: Option<String>,
    /// `mac_move` (`--mac-move`); `None`: the matching rule's, else off.
    #[serde(default)]
    pub mac_move: Option<bool>,
    /// Port security (`--security`, `--ip`, …).
    #[serde(default)]
    pub security: SecurityRequest,
}

/// The port security keys of a `port add` request: the file's `security`, `ips`,
/// `allow_dhcp_server`, `allow_ra` and `allow_ethertypes`, checked by the same rules. Without
/// them, the matching rule's apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct SecurityRequest {
    /// Port security on or off [default: the matching rule's; else on for an access port
    /// given --ip].
    #[arg(long, value_name = "on|off", value_parser = clap::builder::BoolishValueParser::new())]
    pub security: Option<bool>,
    /// An address or prefix of the guest (`192.0.2.10`, `2001:db8::/64`): only these sources
    /// pass; repeatable [default: none: sources not checked].
    #[arg(long = "ip", value_name = "ADDR[/LEN]")]
    #[serde(default)]
    pub ips: Vec<String>,
    /// Allow DHCP server messages from the guest [default: the rule's, else off].
    #[arg(long, value_name = "on|off", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_dhcp_server: Option<bool>,
    /// Allow router advertisements from the guest [default: the rule's, else off].
    #[arg(long, value_name = "on|off", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_ra: Option<bool>,
    /// Ethertypes the guest may send, comma separated: ipv4, arp, ipv6, lldp, eapol or
    /// 0xNNNN [default: the rule's, else ipv4,arp,ipv6].
    #[arg(long = "allow-ethertypes", value_delimiter = ',', value_name = "LIST")]
    pub allow_ethertypes: Option<Vec<String>>,
}

/// What a reload changed: the ports, and the agent settings (`"fdb_aging_secs: 300 -> 60"`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Ports attached, detached, changed; static entries; ports left out.
    #[serde(flatten)]
    pub ports: crate::datapath::Changes,
    /// Settings that changed, as `key: old -> new` (those that wait for a restart say so).
    #[serde(default)]
    pub settings: Vec<String>,
}

/// The agent's answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// The result (on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// What went wrong (on failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A success carrying `data`.
    pub fn ok<T: Serialize>(data: &T) -> Self {
        match serde_json::to_value(data) {
            Ok(v) => Response {
                ok: true,
                data: Some(v),
                error: None,
            },
            Err(e) => Response::err(&anyhow!(e).context("encoding the answer")),
        }
    }

    /// A failure.
    #[must_use]
    pub fn err(e: &anyhow::Error) -> Self {
        Response {
            ok: false,
            data: None,
            error: Some(format!("{e:#}")),
        }
    }
}

/// The largest request the agent reads, in bytes (a request is a few hundred).
pub const MAX_REQUEST: usize = 64 * 1024;

/// How long a client has to send its whole request, and the agent to write its answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Bind the control socket at `path`, root-only. Something already at `path` is removed only
/// when it is a stale socket (a socket nobody listens on); a live socket (another agent), a
/// regular file, a directory or anything else is refused and left as it is.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("inspecting {}", path.display())),
        Ok(m) if m.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => bail!(
                "{} is in use: another xennet-agent is running with this socket",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)
                    .with_context(|| format!("removing the stale socket {}", path.display()))?;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "{} is a socket that neither answers nor refuses; not replacing it",
                        path.display()
                    )
                });
            }
        },
        Ok(m) => bail!(
            "{} exists and is {}, not a socket: refusing to replace it (remove it or set \
             another `socket`)",
            path.display(),
            file_kind(m.file_type())
        ),
    }
    let l = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(l)
}

/// What kind of file `t` is, for messages.
fn file_kind(t: std::fs::FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Read one request from a connection: one line (or everything up to end of file) of at most
/// [`MAX_REQUEST`] bytes, all of it within [`CLIENT_TIMEOUT`].
pub async fn read_request<R: tokio::io::AsyncRead + Unpin>(stream: R) -> anyhow::Result<Request> {
    let mut buf = Vec::new();
    let limit = u64::try_from(MAX_REQUEST + 1).unwrap_or(u64::MAX);
    let mut reader = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(stream, limit));
    tokio::time::timeout(CLIENT_TIMEOUT, reader.read_until(b'\n', &mut buf))
        .await
        .map_err(|_| {
            anyhow!(
                "no complete request within {} s ({} bytes received)",
                CLIENT_TIMEOUT.as_secs(),
                buf.len()
            )
        })?
        .context("reading the request")?;
    if buf.len() > MAX_REQUEST {
        bail!("request too large: more than {MAX_REQUEST} bytes");
    }
    let line = String::from_utf8_lossy(&buf);
    let line = line.trim();
    serde_json::from_str(line).with_context(|| format!("bad request {:?}", cut(line, 200)))
}

/// `s`, cut to at most `max` bytes (on a character boundary) with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let end = (0..=max)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}…", &s[..end])
}

/// Write the response to a connection.
pub async fn write_response(
    stream: &mut tokio::net::UnixStream,
    r: &Response,
) -> anyhow::Result<()> {
    let mut s = serde_json::to_string(r).context("encoding the response")?;
    s.push('\n');
    tokio::time::timeout(CLIENT_TIMEOUT, stream.write_all(s.as_bytes()))
        .await
        .context("timed out writing the response")?
        .context("writing the response")
}

/// Send `req` to the agent at `path` and return its data (client side, blocking).
pub fn call(path: &Path, req: &Request) -> anyhow::Result<serde_json::Value> {
    let mut s = UnixStream::connect(path).with_context(|| {
        format!(
            "connecting to {} (is xennet-agent running?)",
            path.display()
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .context("socket timeout")?;
    let mut line = serde_json::to_string(req).context("encoding the request")?;
    line.push('\n');
    s.write_all(line.as_bytes())
        .context("sending the request")?;
    let mut answer = String::new();
    BufReader::new(&s)
        .read_line(&mut answer)
        .context("reading the answer")?;
    let r: Response = serde_json::from_str(answer.trim())
        .with_context(|| format!("bad answer {:?}", answer.trim()))?;
    if r.ok {
        Ok(r.data.unwrap_or(serde_json::Value::Null))
    } else {
        bail!("{}", r.error.unwrap_or_else(|| "unknown error".into()))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener as StdListener;

    use tokio::io::AsyncWriteExt as _;

    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("xennet-control-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    async fn request_of(bytes: Vec<u8>, close: bool) -> anyhow::Result<Request> {
        let (mut client, server) = tokio::io::duplex(8 * 1024);
        let writer = tokio::spawn(async move {
            let _ = client.write_all(&bytes).await;
            if !close {
                // Keep the connection open, silent.
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        });
        let r = read_request(server).await;
        writer.abort();
        r
    }

    #[tokio::test]
    async fn a_request_line_is_read() {
        let r = request_of(b"{\"cmd\":\"ports\"}\n".to_vec(), false).await;
        assert!(matches!(r, Ok(Request::Ports)), "{r:?}");
        let r = request_of(b"{\"cmd\":\"reload\"}".to_vec(), true).await;
        assert!(
            matches!(r, Ok(Request::Reload { config: None })),
            "up to end of file: {r:?}"
        );
    }

    #[tokio::test]
    async fn an_oversized_request_is_refused_without_reading_it_all() {
        let r = request_of(vec![b'x'; MAX_REQUEST + 1000], false).await;
        let e = format!("{:#}", r.expect_err("oversized"));
        assert!(e.contains("request too large"), "{e}");
        // Exactly the bound, newline included, is fine.
        let mut line = b"{\"cmd\":\"ports\"}".to_vec();
        line.resize(MAX_REQUEST - 1, b' ');
        line.push(b'\n');
        assert!(matches!(request_of(line, false).await, Ok(Request::Ports)));
    }

    #[tokio::test]
    async fn a_silent_or_stalled_client_times_out() {
        let (silent, half) = tokio::join!(
            request_of(Vec::new(), false),
            request_of(b"{\"cmd\":".to_vec(), false)
        );
        let e = format!("{:#}", silent.expect_err("silent"));
        assert!(e.contains("no complete request within 2 s (0 bytes"), "{e}");
        let e = format!("{:#}", half.expect_err("half a request"));
        assert!(e.contains("(7 bytes received)"), "{e}");
    }

    #[tokio::test]
    async fn a_bad_request_is_quoted_cut() {
        let mut junk = b"{\"cmd\":\"".to_vec();
        junk.extend(std::iter::repeat_n(b'a', 10_000));
        junk.push(b'\n');
        let e = format!("{:#}", request_of(junk, false).await.expect_err("junk"));
        assert!(e.starts_with("bad request"), "{e}");
        assert!(
            e.len() < 600,
            "the request is cut in the message: {} bytes",
            e.len()
        );
    }

    #[tokio::test]
    async fn bind_replaces_only_a_stale_socket() {
        let dir = temp("bind");
        // A regular file is refused and left as it is.
        let file = dir.join("file.sock");
        std::fs::write(&file, "precious").expect("write");
        let e = format!("{:#}", bind(&file).expect_err("regular file"));
        assert!(e.contains("is a regular file, not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "precious");
        // So is a directory.
        let sub = dir.join("dir.sock");
        std::fs::create_dir(&sub).expect("mkdir");
        let e = format!("{:#}", bind(&sub).expect_err("directory"));
        assert!(e.contains("is a directory, not a socket"), "{e}");
        assert!(sub.is_dir());
        // A live socket (another agent) is refused and keeps working.
        let live = dir.join("live.sock");
        let other = StdListener::bind(&live).expect("bind");
        let e = format!("{:#}", bind(&live).expect_err("live socket"));
        assert!(e.contains("is in use"), "{e}");
        assert!(
            UnixStream::connect(&live).is_ok(),
            "the other listener still answers"
        );
        drop(other);
        // Now nobody listens: stale, replaced.
        let l = bind(&live).expect("stale socket replaced");
        assert!(
            UnixStream::connect(&live).is_ok(),
            "the new listener answers"
        );
        drop(l);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
