//! The HTTP form: the model behind a hyper server on a loopback port.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::error::SimErrorKind;
use crate::handle::SimHandle;
use crate::model::Model;
use crate::service::respond;
use crate::stats::Stats;

/// How long a graceful shutdown waits for requests in flight before dropping
/// their connections.
const GRACE: Duration = Duration::from_secs(10);

/// What the handle asks a running server to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Close the listener and drop every connection, then acknowledge.
    Kill(oneshot::Sender<()>),
    /// Listen again on the same address.
    Revive(oneshot::Sender<io::Result<()>>),
}

/// A running HTTP/1.1 + HTTP/2 server wrapping a [`Sim`](crate::Sim), made by
/// [`Sim::serve`](crate::Sim::serve).
///
/// HTTP/2 is spoken with prior knowledge (`h2c`); one port serves both.
/// Dropping the server starts a graceful shutdown in the background (the
/// port closes at once; requests in flight finish, for at most 10 s);
/// [`shutdown`](Self::shutdown) does the same and waits for it.
///
/// An injected reset drops an HTTP/1 connection without an answer (a TCP
/// RST, so the client reads `ConnectionReset`); on HTTP/2 it resets the
/// stream, leaving the other streams of the connection alone.
pub struct SimServer {
    addr: SocketAddr,
    handle: SimHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for SimServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SimServer {
    pub(crate) async fn start(model: Arc<Model>, addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (shutdown, shutdown_rx) = oneshot::channel();
        let listener = if model.is_killed() {
            None
        } else {
            Some(listener)
        };
        model.attach_server(commands);
        let task = tokio::spawn(run(
            Arc::clone(&model),
            addr,
            listener,
            command_rx,
            shutdown_rx,
        ));
        Ok(Self {
            addr,
            handle: SimHandle { model },
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// The address the server listens on (the real port when `0` was asked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A handle to the sim this server wraps.
    pub fn handle(&self) -> SimHandle {
        self.handle.clone()
    }

    /// A snapshot of the sim's counters.
    pub fn stats(&self) -> Stats {
        self.handle.stats()
    }

    /// Stops accepting, lets requests in flight finish (for at most 10 s),
    /// then closes every connection and returns.
    pub async fn shutdown(mut self) {
        drop(self.shutdown.take());
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// The accept loop, plus the kill switch.
async fn run(
    model: Arc<Model>,
    addr: SocketAddr,
    mut listener: Option<TcpListener>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            command = commands.recv() => match command {
                None => break,
                Some(Command::Kill(ack)) => {
                    listener = None;
                    connections.shutdown().await;
                    let _ = ack.send(());
                }
                Some(Command::Revive(ack)) => {
                    let result = match listener {
                        Some(_) => Ok(()),
                        None => TcpListener::bind(addr).await.map(|l| listener = Some(l)),
                    };
                    let _ = ack.send(result);
                }
            },
            accepted = accept(listener.as_ref()) => match accepted {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(
                        &builder,
                        graceful.watcher(),
                        Arc::clone(&model),
                        stream,
                    ));
                }
                // Out of file descriptors and the like: back off briefly.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(GRACE, graceful.shutdown()).await;
    connections.shutdown().await;
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<TcpStream> {
    match listener {
        Some(l) => l.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

/// One connection, HTTP/1 or HTTP/2, watched for graceful shutdown.
fn serve_connection(
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    model: Arc<Model>,
    stream: TcpStream,
) -> impl Future<Output = ()> + Send + 'static {
    let reset = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(ResetOnDrop {
        stream,
        reset: Arc::clone(&reset),
    });
    let service = service_fn(move |req: Request<Incoming>| {
        let model = Arc::clone(&model);
        let reset = Arc::clone(&reset);
        async move {
            let http1 = req.version() != Version::HTTP_2;
            let result = respond(model, req).await;
            if let Err(err) = &result
                && http1
                && err.kind() == SimErrorKind::Reset
            {
                reset.store(true, Ordering::Relaxed);
            }
            result
        }
    });
    let conn = watcher.watch(builder.serve_connection(io, service).into_owned());
    async move {
        // A connection error is the client's business (or an injected reset).
        let _ = conn.await;
    }
}

/// A TCP stream that closes with a RST instead of a FIN once its connection
/// is marked reset: the closest a server gets to "connection reset by peer".
#[derive(Debug)]
struct ResetOnDrop {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl ResetOnDrop {
    fn is_reset(&self) -> bool {
        self.reset.load(Ordering::Relaxed)
    }
}

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        if self.is_reset() {
            // A zero linger makes close send a RST and never blocks.
            #[allow(deprecated)]
            let _ = self.stream.set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for ResetOnDrop {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResetOnDrop {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.is_reset() {
            // No FIN before the RST: the client must not see a clean close.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}
