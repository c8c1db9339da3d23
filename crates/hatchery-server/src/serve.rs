//! Serving the router on a listener (TCP or the agents' Unix socket) with the bounds
//! `axum::serve` has no knob for: at most so many open connections (past that, new ones
//! wait in the kernel's backlog instead of costing memory here), and a deadline for a
//! request's headers, which also closes a keep-alive connection left idle. Shutdown is
//! graceful: no new connections, requests in flight finish.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

/// The bounds of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections at most; more wait to be accepted.
    pub max_connections: usize,
    /// How long a client has to send a request's headers, counted from when the server
    /// starts waiting for them (so also how long an idle keep-alive connection stays).
    pub header_timeout: Duration,
    /// How long a write may wait for a client that reads nothing before the connection is
    /// closed (a stalled stream subscriber otherwise holds its buffers for good).
    pub write_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Serve `router` on `listener` until `shutdown` resolves, then wait for the connections
/// still open to finish what they are doing.
pub async fn serve<L: Listener>(
    mut listener: L,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A permit first: at the cap, the next connection is not even accepted.
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let io = tokio::select! {
            (io, _) = listener.accept() => io,
            () = &mut shutdown => break,
        };
        // Finished connections are reaped as they go, so the set stays as large as the
        // number open.
        while connections.try_join_next().is_some() {}
        let service = TowerToHyperService::new(router.clone());
        let mut closed = closed.clone();
        connections.spawn(async move {
            // HTTP/1.1, as the API's clients speak it; the header deadline runs from the
            // moment the connection is accepted, so one that never sends a byte is closed.
            // The permit travels with the connection's IO, so a connection upgraded to a
            // WebSocket (which outlives this task) still holds its place.
            let io = Capped {
                io,
                _permit: permit,
                write_timeout: limits.write_timeout,
                write_stalled: None,
            };
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::trace!(%error, "connection ended with an error");
                    }
                }
                () = async { let _ = closed.wait_for(|closing| *closing).await; } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
}

/// A connection's IO holding its place under the cap until it is dropped, and failing a
/// write the client has not let through for the write timeout.
struct Capped<Io> {
    io: Io,
    _permit: OwnedSemaphorePermit,
    write_timeout: Duration,
    /// Running while writes wait for the client.
    write_stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<Io> Capped<Io> {
    /// Pass a write's outcome on; while it waits, fail it once the client has read nothing
    /// for the write timeout (the timer wakes the connection to say so).
    fn bound_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if written.is_ready() {
            self.write_stalled = None;
            return written;
        }
        let timeout = self.write_timeout;
        let stalled = self
            .write_stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client read nothing for the write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Capped<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Capped<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.bound_write(cx, written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let flushed = Pin::new(&mut self.io).poll_flush(cx);
        self.bound_write(cx, flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.bound_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
