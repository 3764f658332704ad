//! Control-socket clients, each served in its own task: the request is read there (bounded in
//! time and size), handed to the event loop over a channel, and the answer written back there.
//! A silent, slow or flooding client therefore holds only its own task, never the agent.

use std::sync::Arc;

use tokio::{
    net::UnixStream,
    sync::{Semaphore, mpsc, oneshot},
};
use tracing::{debug, warn};
use xennet_agent::control::{self, Request, Response};

/// The most clients served at once; more are answered "busy" and closed.
pub(super) const MAX_CLIENTS: usize = 64;

/// A parsed request and where its answer goes.
pub(super) type Job = (Request, oneshot::Sender<Response>);

/// The clients of the control socket: at most [`MAX_CLIENTS`] at a time, their requests sent
/// to the event loop in the order they complete.
pub(super) struct Clients {
    slots: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
}

impl Clients {
    /// Clients whose requests arrive on the returned receiver.
    pub(super) fn new() -> (Clients, mpsc::Receiver<Job>) {
        let (jobs, rx) = mpsc::channel(MAX_CLIENTS);
        let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
        (Clients { slots, jobs }, rx)
    }

    /// Serve a new connection in a task of its own; returns at once.
    pub(super) fn spawn(&self, conn: UnixStream) {
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            warn!(
                max = MAX_CLIENTS,
                "control socket: too many clients, one refused"
            );
            tokio::spawn(refuse(conn));
            return;
        };
        let jobs = self.jobs.clone();
        tokio::spawn(async move {
            serve(conn, jobs).await;
            drop(slot);
        });
    }
}

/// Read a request, have the event loop answer it, write the answer.
async fn serve(mut conn: UnixStream, jobs: mpsc::Sender<Job>) {
    let resp = match control::read_request(&mut conn).await {
        Err(e) => {
            debug!(error = %format!("{e:#}"), "control client: bad request");
            Response::err(&e)
        }
        Ok(req) => {
            let (tx, rx) = oneshot::channel();
            if jobs.send((req, tx)).await.is_err() {
                // The agent is stopping.
                return;
            }
            match rx.await {
                Ok(r) => r,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = control::write_response(&mut conn, &resp).await {
        // A client that went away before its answer (a second agent probing whether the
        // socket is live does just that) is no concern of the operator's.
        let gone = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                )
            })
        });
        if gone {
            debug!(error = %format!("{e:#}"), "control client went away before its answer");
        } else {
            warn!(error = %format!("{e:#}"), "control client");
        }
    }
}

/// Tell a client over the limit to come back later.
async fn refuse(mut conn: UnixStream) {
    let e = anyhow::anyhow!("the agent is busy: {MAX_CLIENTS} clients connected; try again");
    let _ = control::write_response(&mut conn, &Response::err(&e)).await;
}
