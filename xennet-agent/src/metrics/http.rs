//! A minimal HTTP/1.1 server for `GET /metrics`: one route, one method, one response per
//! connection (`Connection: close`). Enough for Prometheus and curl; it keeps hyper's stack
//! (hyper, hyper-util, http, http-body) out of the agent for a single read-only endpoint.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tracing::{debug, warn};

use super::format::{CLASSIC, OPENMETRICS, classic, wants_openmetrics};

/// Longest request head read (request line and headers); Prometheus sends a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request, and to take the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapes encoded at once; more connections wait for a turn.
const MAX_CONCURRENT: usize = 4;

/// Accept connections forever, each in a task of its own.
pub(super) async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    let turns = Arc::new(Semaphore::new(MAX_CONCURRENT));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let registry = Arc::clone(&registry);
                let turns = Arc::clone(&turns);
                tokio::spawn(async move {
                    if let Err(e) = answer(stream, &registry, &turns).await {
                        debug!(%peer, error = %format!("{e:#}"), "metrics client");
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "metrics accept");
                // E.g. out of file descriptors: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(
    mut stream: TcpStream,
    registry: &Arc<Registry>,
    turns: &Semaphore,
) -> anyhow::Result<()> {
    let head = tokio::time::timeout(CLIENT_TIMEOUT, read_head(&mut stream))
        .await
        .context("timed out reading the request")??;
    let (status, ctype, body) = match route(&head) {
        Route::Metrics => {
            let _turn = turns.acquire().await.context("semaphore closed")?;
            let registry = Arc::clone(registry);
            let openmetrics = wants_openmetrics(&head);
            match tokio::task::spawn_blocking(move || scrape(&registry)).await {
                Ok(Ok(body)) if openmetrics => ("200 OK", OPENMETRICS, body),
                Ok(Ok(body)) => ("200 OK", CLASSIC, classic(&body)),
                Ok(Err(e)) => (
                    "500 Internal Server Error",
                    "text/plain",
                    format!("{e:#}\n"),
                ),
                Err(e) => ("500 Internal Server Error", "text/plain", format!("{e}\n")),
            }
        }
        Route::Root => (
            "200 OK",
            "text/plain; charset=utf-8",
            "xennet-agent: metrics at /metrics\n".to_owned(),
        ),
        Route::NotFound => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        Route::BadMethod => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_owned(),
        ),
        Route::Bad => ("400 Bad Request", "text/plain", "bad request\n".to_owned()),
    };
    let head_only = head.starts_with("HEAD ");
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        out.push_str(&body);
    }
    tokio::time::timeout(CLIENT_TIMEOUT, async {
        stream.write_all(out.as_bytes()).await?;
        stream.shutdown().await
    })
    .await
    .context("timed out writing the answer")?
    .context("writing the answer")
}

fn scrape(registry: &Registry) -> anyhow::Result<String> {
    let mut body = String::new();
    encode(&mut body, registry).context("encoding the metrics")?;
    Ok(body)
}

/// The request line and headers, up to the blank line.
async fn read_head(stream: &mut TcpStream) -> anyhow::Result<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .context("reading the request")?;
        if n == 0 {
            bail!("the client closed the connection before a full request");
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        if buf.len() > MAX_HEAD {
            bail!("request head longer than {MAX_HEAD} bytes");
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    Root,
    NotFound,
    BadMethod,
    Bad,
}

fn route(head: &str) -> Route {
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return Route::Bad;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::Bad;
    }
    if method != "GET" && method != "HEAD" {
        return Route::BadMethod;
    }
    match target.split('?').next().unwrap_or("") {
        "/metrics" => Route::Metrics,
        "/" => Route::Root,
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |s: &str| route(s);
        assert_eq!(
            r("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(r("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(r("HEAD /metrics HTTP/1.1\r\n\r\n"), Route::Metrics);
        assert_eq!(r("GET / HTTP/1.1\r\n\r\n"), Route::Root);
        assert_eq!(r("GET /other HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(r("POST /metrics HTTP/1.1\r\n\r\n"), Route::BadMethod);
        assert_eq!(r("GET /metrics\r\n\r\n"), Route::Bad);
        assert_eq!(r("GET /metrics SPDY/3\r\n\r\n"), Route::Bad);
        assert_eq!(r(""), Route::Bad);
    }
}
