//! The accept loop of both listeners (the management API's and the gateway's): each connection
//! served by hyper (HTTP/1.1, or HTTP/2 with prior knowledge) in a task of its own, within the
//! limits of [`Limits`], with a graceful shutdown that has a deadline.
//!
//! - Headers must arrive within the header timeout, counted from the connection's start or the
//!   end of its previous request: hyper's own timer for HTTP/1.1, and a watchdog per connection
//!   for what that timer does not see (a client that sends nothing, or too little to tell the
//!   protocol; an idle HTTP/2 connection). So a slow or idle client holds its connection, and a
//!   file descriptor, for that long at most.
//! - Each request then has the request timeout (see [`super::pipeline`]). Where answers stream
//!   (the gateway), a request in flight whose bodies move nothing for the stall limit is cut off
//!   with its connection: a client that stops sending its body, or stops reading the answer.
//! - After the shutdown signal, requests in flight get the shutdown timeout; connections still
//!   open then are closed. Each connection learns of the shutdown through a channel of its own:
//!   a signal shared by every connection would be polled, and its lock taken, on every wake-up of
//!   every connection, from every core (measured: see docs/PERFORMANCE.md).
//! - hyper answers a request it cannot parse itself, with an empty body; [`ProblemReplies`]
//!   rewrites those answers into the contract's problem+json.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::error::{ApiError, RequestId};
use crate::config::Timeouts;

/// How long a connection may take at each stage.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// To send a request's headers, counted from the connection's start or the end of its
    /// previous request; also how long an idle connection stays open.
    pub header: Duration,
    /// How long a request in flight may move no byte of its bodies; `None`: no such limit (the
    /// handler answers within its own timeout, and its answers are small).
    pub stall: Option<Duration>,
    /// After the shutdown signal, for the requests in flight.
    pub shutdown: Duration,
}

impl From<Timeouts> for Limits {
    fn from(t: Timeouts) -> Self {
        Limits {
            header: t.header,
            stall: None,
            shutdown: t.shutdown,
        }
    }
}

/// What answers the requests of a connection.
pub trait Handler: Clone + Send + Sync + 'static {
    type Body: hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;

    /// Answers `req`, which came from `peer` (on a clone of the handler, so that the answer borrows
    /// nothing). The request counts as in flight until `in_flight` is dropped: a handler whose
    /// answer streams keeps it in the answer's body.
    fn call(
        self,
        req: hyper::Request<Incoming>,
        peer: SocketAddr,
        in_flight: InFlight,
    ) -> impl Future<Output = hyper::Response<Self::Body>> + Send + 'static;
}

/// The management application: its answer is complete once its head is.
impl Handler for axum::Router {
    type Body = Body;

    fn call(
        self,
        mut req: hyper::Request<Incoming>,
        peer: SocketAddr,
        in_flight: InFlight,
    ) -> impl Future<Output = hyper::Response<Body>> + Send + 'static {
        req.extensions_mut().insert(ConnectInfo(peer));
        let answer = self.oneshot(req.map(Body::new));
        async move {
            let res = answer.await;
            drop(in_flight);
            res.unwrap_or_else(|never| match never {})
        }
    }
}

/// Serves `handler` on `listener` until `shutdown` completes; then stops accepting, lets requests
/// in flight finish within `limits.shutdown`, and closes what is still open.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: H,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut connections = JoinSet::new();
    // Each connection learns of the shutdown through a channel of its own, so that connections on
    // different cores share nothing they poll.
    let mut stops: HashMap<tokio::task::Id, oneshot::Sender<()>> = HashMap::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let (stop, stopped) = oneshot::channel();
                    let conn = connection(tcp, peer, handler.clone(), limits, stopped);
                    stops.insert(connections.spawn(conn).id(), stop);
                }
                Err(e) => accept_failed(e).await,
            },
            Some(ended) = connections.join_next_with_id(), if !connections.is_empty() => {
                let id = match ended {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                stops.remove(&id);
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    for (_, stop) in stops.drain() {
        let _ = stop.send(());
    }
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.shutdown, drained)
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "closing the connections still open at the shutdown deadline"
        );
    }
    connections.shutdown().await;
}

/// Out of file descriptors (or a similar resource): wait a little rather than spin; a failed
/// handshake of one client is nothing to wait for.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept connections; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one connection.
fn connection<H: Handler>(
    tcp: TcpStream,
    peer: SocketAddr,
    handler: H,
    limits: Limits,
    mut stopped: oneshot::Receiver<()>,
) -> impl Future<Output = ()> + Send + 'static {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
    let activity = Arc::new(Activity::new());
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |req: hyper::Request<Incoming>| {
            let answer = handler.clone().call(req, peer, activity.begin());
            async move { Ok::<_, Infallible>(answer.await) }
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header)
        .max_headers(super::HEADERS_MAX_COUNT);
    builder.http2().timer(TokioTimer::new());
    let io = TokioIo::new(ProblemReplies::new(tcp));
    async move {
        // An upgraded connection (a WebSocket) leaves this task: its handler owns the stream.
        let conn = builder.serve_connection_with_upgrades(io, service);
        let idle = activity.idle_for(limits.header, limits.stall);
        let (mut conn, mut idle) = (pin!(conn), pin!(idle));
        let mut stopping = false;
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::trace!(error = %e, %peer, "connection ended with an error");
                    }
                    return;
                }
                _ = &mut stopped, if !stopping => {
                    // Finishes the request in flight, if any, and closes.
                    conn.as_mut().graceful_shutdown();
                    stopping = true;
                }
                () = idle.as_mut() => {
                    tracing::trace!(%peer, "closing a connection that sent no request, or moved no byte, in time");
                    return;
                }
            }
        }
    }
}

/// What a connection is doing, for its watchdog.
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `started` to the latest start or end of a request.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::SeqCst);
    }

    /// A request begins; it ends when the returned guard is dropped. (Only its end is timed: while
    /// it is in flight, the connection is not idle anyway; a handler that streams records
    /// progress through [`InFlight::progress`].)
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn last(&self) -> Instant {
        self.started + Duration::from_millis(self.last.load(Ordering::SeqCst))
    }

    /// Completes once the connection has had no request in flight for `idle`, or, with a
    /// `stall` limit, requests in flight but no progress for that long.
    async fn idle_for(&self, idle: Duration, stall: Option<Duration>) {
        loop {
            let busy = self.in_flight.load(Ordering::SeqCst) > 0;
            let limit = match (busy, stall) {
                (false, _) => idle,
                (true, Some(stall)) => stall,
                // A request in flight has its own timeout; look again after it could have ended.
                (true, None) => {
                    tokio::time::sleep(idle).await;
                    continue;
                }
            };
            tokio::time::sleep_until((self.last() + limit).into()).await;
            let still = (self.in_flight.load(Ordering::SeqCst) > 0) == busy;
            if still && self.last() + limit <= Instant::now() {
                return;
            }
        }
    }
}

/// A request in flight on a connection; it ends when this is dropped.
pub struct InFlight(Arc<Activity>);

impl InFlight {
    /// Records that the request's bodies moved: its connection is not stalled.
    pub fn progress(&self) {
        self.0.touch();
    }

    /// Records progress from elsewhere: the request's own body, moving while its answer is
    /// awaited.
    pub fn tracker(&self) -> Progress {
        Progress(self.0.clone())
    }
}

/// See [`InFlight::tracker`].
#[derive(Clone)]
pub struct Progress(Arc<Activity>);

impl Progress {
    pub fn touch(&self) {
        self.0.touch();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}

/// A connection's stream that rewrites hyper's own answers to requests it cannot parse (an empty
/// 400, 414 or 431) into problem+json, and passes everything else through.
///
/// Such an answer is recognized by its head: one of those statuses with `content-length: 0` at the
/// start of a write. Every answer of Keyward's own with those statuses has a problem+json body, and
/// no body Keyward sends starts with a status line, so nothing else matches.
struct ProblemReplies<S> {
    inner: S,
    /// Bytes of a rewritten answer still to be written, and how many were.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> ProblemReplies<S> {
    fn new(inner: S) -> Self {
        ProblemReplies {
            inner,
            pending: None,
        }
    }
}

/// The problem+json answer replacing hyper's answer `head`, if it is one of hyper's own.
fn rewritten(head: &[u8]) -> Option<Vec<u8>> {
    let error = match head.get(..12)? {
        b"HTTP/1.1 400" => ApiError::Status(axum::http::StatusCode::BAD_REQUEST),
        b"HTTP/1.1 414" => ApiError::UriTooLong,
        b"HTTP/1.1 431" => ApiError::HeadersTooLarge,
        _ => return None,
    };
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let empty = head[..end]
        .split(|&b| b == b'\n')
        .any(|line| line.trim_ascii().eq_ignore_ascii_case(b"content-length: 0"));
    if !empty {
        return None;
    }
    let id = RequestId::random();
    let mut problem = error.problem();
    problem.request_id = id.as_str().to_owned();
    let body = serde_json::to_vec(&problem).expect("a problem serializes");
    let status = error.status();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\nx-request-id: {}\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        body.len(),
        id.as_str()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

impl<S: AsyncWrite + Unpin> ProblemReplies<S> {
    /// Writes what is left of a rewritten answer; ready once it is all written.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, done)) = &mut self.pending {
            if *done == bytes.len() {
                self.pending = None;
                break;
            }
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ProblemReplies<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ProblemReplies<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        if let Some(replacement) = rewritten(buf) {
            self.pending = Some((replacement, 0));
            // The original is reported written: hyper is done with it.
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        let first = bufs.iter().find(|b| !b.is_empty());
        if let Some(replacement) = first.and_then(|b| rewritten(b)) {
            self.pending = Some((replacement, 0));
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_error_answers_are_rewritten() {
        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = rewritten(hyper_431).expect("rewritten");
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(head.contains("content-type: application/problem+json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 431);
        assert_eq!(problem["code"], "bad_request");
        assert!(problem["request_id"].as_str().unwrap().starts_with("req_"));
        assert!(rewritten(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").is_some());
        for kept in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 120\r\n\r\n{}"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"{\"valid\":true}",
            b"HTTP/1.1 400",
        ] {
            assert!(
                rewritten(kept).is_none(),
                "{}",
                String::from_utf8_lossy(kept)
            );
        }
    }
}
