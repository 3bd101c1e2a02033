//! Bodies streamed through the gateway, never buffered whole: each frame passes as it arrives, and
//! records that the request moved, so that the connection's watchdog cuts off only a request whose
//! bodies stall (see [`crate::http::Limits::stall`]).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::http::{InFlight, Progress};

/// When a request's body last moved, for the upstream timeout: an upstream is given its timeout
/// from the end of a body still arriving, not from the request's start.
pub struct Moved {
    base: Instant,
    /// Milliseconds from `base`.
    last: AtomicU64,
}

impl Moved {
    pub fn new() -> Moved {
        Moved {
            base: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    pub fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

/// A client's request body on its way upstream.
pub struct Upload {
    inner: Incoming,
    conn: Progress,
    /// `None` for a request without a body.
    moved: Option<Arc<Moved>>,
}

impl Upload {
    pub fn new(inner: Incoming, conn: Progress, moved: Option<Arc<Moved>>) -> Upload {
        Upload { inner, conn, moved }
    }
}

impl Body for Upload {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            self.conn.touch();
            if let Some(m) = &self.moved {
                m.touch();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An upstream's answer body on its way to the client. The request stays in flight until it is
/// sent whole (or dropped).
pub struct Download {
    inner: Incoming,
    in_flight: InFlight,
}

impl Download {
    pub fn new(inner: Incoming, in_flight: InFlight) -> Download {
        Download { inner, in_flight }
    }
}

impl Body for Download {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            self.in_flight.progress();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
