//! The control socket: a Unix stream socket (mode 0600, root only) through which the CLI asks
//! the running agent for its FDB and ports, or tells it to reload.
//!
//! Protocol: one JSON request line, one JSON response line, then the server closes.
//! Requests: `{"cmd":"fdb","bridge":null}`, `{"cmd":"ports"}`, `{"cmd":"reload"}`.
//! Responses: `{"ok":true,"data":…}` or `{"ok":false,"error":"…"}`.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::{fs::PermissionsExt as _, net::UnixStream},
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
    /// Re-read the configuration file and apply the difference.
    Reload,
    /// Attach an interface as a port at run time (the toolstack's hot-plug script).
    PortAdd(PortAdd),
    /// Detach a port added at run time.
    PortDel {
        /// Interface name.
        interface: String,
    },
}

/// A run-time port: `xennet-agent port add`.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// Bind the control socket at `path` (replacing a stale one), root-only.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!(
                "{} is in use: another xennet-agent is running with this socket",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    let l = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(l)
}

/// Read one request from a connection (bounded in time and size).
pub async fn read_request(stream: &mut tokio::net::UnixStream) -> anyhow::Result<Request> {
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(stream, 64 * 1024));
    tokio::time::timeout(Duration::from_secs(2), reader.read_line(&mut line))
        .await
        .context("timed out reading the request")?
        .context("reading the request")?;
    serde_json::from_str(line.trim()).with_context(|| format!("bad request {:?}", line.trim()))
}

/// Write the response to a connection.
pub async fn write_response(
    stream: &mut tokio::net::UnixStream,
    r: &Response,
) -> anyhow::Result<()> {
    let mut s = serde_json::to_string(r).context("encoding the response")?;
    s.push('\n');
    tokio::time::timeout(Duration::from_secs(2), stream.write_all(s.as_bytes()))
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
