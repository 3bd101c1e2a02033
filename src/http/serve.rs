//! The accept loop: each connection served by hyper (HTTP/1.1, or HTTP/2 with prior knowledge) in
//! its own task, with [`Guarded`] as its service, and a graceful shutdown that lets open
//! connections finish the requests they have begun.
//!
//! Like `axum::serve`, but a connection learns of the shutdown from a flag it reads when polled,
//! instead of polling a shared channel that takes a lock on every poll: requests on different
//! cores then share no memory that either writes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Waker;

use axum::body::Body;
use axum::response::Response;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;

use super::{Connections, Guarded};

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and waits for the
/// open connections: each finishes the request it is answering, if any, and closes.
pub async fn serve<L>(mut listener: L, app: Connections, shutdown: impl Future<Output = ()>)
where
    L: Listener<Addr = SocketAddr>,
{
    let stopping = Arc::new(Stopping::default());
    // Every connection task holds a receiver: once all are dropped, every connection is closed.
    let (closed_tx, closed_rx) = tokio::sync::watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let service = app.connection(peer);
        let stopping = stopping.clone();
        let closed_rx = closed_rx.clone();
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
            let ended = stopping.watch(conn, |c| c.graceful_shutdown()).await;
            if let Err(e) = ended {
                tracing::trace!(error = %e, %peer, "connection ended with an error");
            }
            drop(closed_rx);
        });
    }
    drop(listener);
    drop(closed_rx);
    stopping.begin();
    closed_tx.closed().await;
}

impl hyper::service::Service<hyper::Request<Incoming>> for Guarded {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        self.handle(req.map(Body::new))
    }
}

/// Whether the server is shutting down, and how to wake the connections that must learn it.
#[derive(Default)]
struct Stopping {
    begun: AtomicBool,
    /// The wakers of the connections being served, by a number of each.
    waiting: Mutex<(u64, HashMap<u64, Waker>)>,
}

impl Stopping {
    /// Drives `conn` to its end, asking it to shut down gracefully once the shutdown begins.
    /// `shut_down` asks the connection to finish its current request and close.
    async fn watch<C: Future>(&self, conn: C, shut_down: impl Fn(Pin<&mut C>)) -> C::Output {
        let mut conn = pin!(conn);
        let mut registered = None;
        let mut asked = false;
        let ended = std::future::poll_fn(|cx| {
            if !asked {
                // Registered once: the task's waker stays the same for all its polls. Read after
                // registering, so that a shutdown beginning meanwhile is either seen here or
                // wakes this task.
                if registered.is_none() {
                    registered = Some(self.register(cx.waker()));
                }
                if self.begun.load(Ordering::SeqCst) {
                    shut_down(conn.as_mut());
                    asked = true;
                }
            }
            conn.as_mut().poll(cx)
        })
        .await;
        if let Some(n) = registered {
            self.waiting.lock().1.remove(&n);
        }
        ended
    }

    fn register(&self, waker: &Waker) -> u64 {
        let mut waiting = self.waiting.lock();
        let n = waiting.0;
        waiting.0 += 1;
        waiting.1.insert(n, waker.clone());
        n
    }

    /// Begins the shutdown: every connection is woken to learn it.
    fn begin(&self) {
        self.begun.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = self.waiting.lock().1.drain().map(|(_, w)| w).collect();
        for w in wakers {
            w.wake();
        }
    }
}
