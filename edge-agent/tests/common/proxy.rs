//! A fault-injecting TCP proxy for the sync link: the gateway's `[cloud] sync_url` points here
//! (`https://localhost:PORT`) and every connection is relayed to the cloud's sync listener,
//! or not, as the current [`Fault`] says. It relays bytes, not HTTP: TLS passes through
//! untouched, so the gateway still verifies the cloud and the cloud the gateway, and the
//! faults are what a network does to a connection it cannot read.
//!
//! The fault can be changed at any moment ([`FaultProxy::set`]); it applies to new
//! connections and to the ones already open, as a network failing under a live connection
//! would. [`FaultProxy::stats`] counts what each fault did, so a test can show that a fault
//! really hit its traffic.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::WriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};

/// The latency [`Fault::Latency`] adds in each direction.
pub(crate) const LATENCY: Duration = Duration::from_secs(2);

/// How long a [`Fault::CutResponse`] connection swallows the cloud's answer before it closes:
/// the cloud commits and answers within milliseconds, so by then the answer was sent.
const CUT_AFTER: Duration = Duration::from_secs(1);

/// What the link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Bytes flow both ways untouched.
    PassThrough,
    /// The link is down: nothing listens (connections are refused) and open connections are
    /// closed.
    Drop,
    /// Connections are accepted and read, and never answered; open connections go silent
    /// (what is swallowed is never delivered, so they stay dead).
    Blackhole,
    /// The request reaches the cloud and the cloud answers, but the answer never reaches the
    /// gateway: once the TLS handshake is done (the second exchange of a connection), bytes
    /// from the cloud are swallowed and the connection closed [`CUT_AFTER`] the first of them.
    /// The cloud committed; the gateway never saw the ack.
    CutResponse,
    /// [`LATENCY`] each way.
    Latency,
    /// Every connection, open or new, ends with a TCP reset (SO_LINGER 0).
    Reset,
}

/// What the proxy did, as counts since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Connections accepted.
    pub(crate) accepted: u64,
    /// Connections closed because the link dropped.
    pub(crate) dropped: u64,
    /// Connections (new or open) that went into the black hole.
    pub(crate) blackholed: u64,
    /// Connections cut after the cloud answered.
    pub(crate) cut: u64,
    /// Chunks delivered late.
    pub(crate) delayed: u64,
    /// Connections reset.
    pub(crate) reset: u64,
}

impl std::ops::Sub for Stats {
    type Output = Stats;
    fn sub(self, rhs: Stats) -> Stats {
        Stats {
            accepted: self.accepted - rhs.accepted,
            dropped: self.dropped - rhs.dropped,
            blackholed: self.blackholed - rhs.blackholed,
            cut: self.cut - rhs.cut,
            delayed: self.delayed - rhs.delayed,
            reset: self.reset - rhs.reset,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    dropped: AtomicU64,
    blackholed: AtomicU64,
    cut: AtomicU64,
    delayed: AtomicU64,
    reset: AtomicU64,
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The proxy, listening on a loopback port until dropped.
pub(crate) struct FaultProxy {
    pub(crate) addr: SocketAddr,
    fault: watch::Sender<Fault>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and relays to `upstream`, passing everything through.
    pub(crate) async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (fault, faults) = watch::channel(Fault::PassThrough);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(accept_loop(
            listener,
            addr,
            upstream,
            faults,
            Arc::clone(&counters),
        ));
        FaultProxy {
            addr,
            fault,
            counters,
            task,
        }
    }

    /// The sync URL that leads through the proxy (the cloud's certificate names `localhost`).
    pub(crate) fn sync_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// From now on, the link does `fault`.
    pub(crate) fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            accepted: c.accepted.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            blackholed: c.blackholed.load(Ordering::Relaxed),
            cut: c.cut.load(Ordering::Relaxed),
            delayed: c.delayed.load(Ordering::Relaxed),
            reset: c.reset.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The connections end by themselves once the fault channel is closed.
        self.task.abort();
    }
}

/// Accepts while the link is not dropped; while it is, the listener is closed so connecting
/// is refused, and it is bound again on the same port when the link comes back.
async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut faults: watch::Receiver<Fault>,
    counters: Arc<Counters>,
) {
    let mut listener = Some(listener);
    loop {
        let fault = *faults.borrow_and_update();
        if fault == Fault::Drop {
            listener = None;
            if faults.changed().await.is_err() {
                return;
            }
            continue;
        }
        let current = match &listener {
            Some(listener) => listener,
            None => listener.insert(rebind(addr).await),
        };
        tokio::select! {
            changed = faults.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            accepted = current.accept() => {
                if let Ok((client, _)) = accepted {
                    count(&counters.accepted);
                    tokio::spawn(relay(client, upstream, faults.clone(), Arc::clone(&counters)));
                }
            }
        }
    }
}

async fn rebind(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "cannot listen on {addr} again: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// One connection, from accept to close.
async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    mut faults: watch::Receiver<Fault>,
    counters: Arc<Counters>,
) {
    let _ = client.set_nodelay(true);
    let fault = *faults.borrow_and_update();
    match fault {
        Fault::Drop => {
            count(&counters.dropped);
            return;
        }
        Fault::Reset => {
            count(&counters.reset);
            return reset(client);
        }
        Fault::Blackhole => {
            count(&counters.blackholed);
            return swallow(client, faults, &counters).await;
        }
        Fault::PassThrough | Fault::CutResponse | Fault::Latency => {}
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let _ = server.set_nodelay(true);
    Link::default().run(client, server, faults, &counters).await;
}

/// A black-holed connection: reads everything, answers nothing, until the client gives up
/// or the link drops or resets.
async fn swallow(mut client: TcpStream, mut faults: watch::Receiver<Fault>, counters: &Counters) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = client.read(&mut buf) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return;
                }
            }
            changed = faults.changed() => {
                if changed.is_err() {
                    return;
                }
                match *faults.borrow_and_update() {
                    Fault::Drop => {
                        count(&counters.dropped);
                        return;
                    }
                    Fault::Reset => {
                        count(&counters.reset);
                        return reset(client);
                    }
                    _ => {}
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Gateway → cloud.
    Up,
    /// Cloud → gateway.
    Down,
}

/// The state of one relayed connection.
#[derive(Debug, Default)]
struct Link {
    /// Chunks waiting for their delivery time, each way.
    up: VecDeque<(Instant, Vec<u8>)>,
    down: VecDeque<(Instant, Vec<u8>)>,
    /// Exchanges so far: one starts each time the client sends after the cloud did.
    exchanges: u32,
    last: Option<Dir>,
    /// Once black-holed, nothing more is delivered either way.
    blackholed: bool,
    /// When a cut connection closes.
    cut_at: Option<Instant>,
    client_done: bool,
    server_done: bool,
}

/// The end of the connection, and how.
enum End {
    Close,
    Reset,
}

impl Link {
    async fn run(
        mut self,
        mut client: TcpStream,
        mut server: TcpStream,
        mut faults: watch::Receiver<Fault>,
        counters: &Counters,
    ) {
        let end = {
            let (mut client_rx, mut client_tx) = client.split();
            let (mut server_rx, mut server_tx) = server.split();
            let mut client_buf = vec![0u8; 16 * 1024];
            let mut server_buf = vec![0u8; 16 * 1024];
            let far = Instant::now() + Duration::from_secs(3_600);
            loop {
                if (self.client_done && self.up.is_empty())
                    || (self.server_done && self.down.is_empty())
                {
                    break End::Close;
                }
                let fault = *faults.borrow();
                let next_up = self.up.front().map_or(far, |c| c.0);
                let next_down = self.down.front().map_or(far, |c| c.0);
                tokio::select! {
                    read = client_rx.read(&mut client_buf), if !self.client_done => match read {
                        Ok(n) if n > 0 => self.take(Dir::Up, &client_buf[..n], fault, counters),
                        _ => self.client_done = true,
                    },
                    read = server_rx.read(&mut server_buf), if !self.server_done => match read {
                        Ok(n) if n > 0 => self.take(Dir::Down, &server_buf[..n], fault, counters),
                        _ => self.server_done = true,
                    },
                    () = sleep_until(next_up), if !self.up.is_empty() => {
                        if let Some((_, bytes)) = self.up.pop_front()
                            && !deliver(&mut server_tx, &bytes).await
                        {
                            break End::Close;
                        }
                    }
                    () = sleep_until(next_down), if !self.down.is_empty() => {
                        if let Some((_, bytes)) = self.down.pop_front()
                            && !deliver(&mut client_tx, &bytes).await
                        {
                            break End::Close;
                        }
                    }
                    () = sleep_until(self.cut_at.unwrap_or(far)), if self.cut_at.is_some() => {
                        count(&counters.cut);
                        break End::Close;
                    }
                    changed = faults.changed() => {
                        if changed.is_err() {
                            break End::Close;
                        }
                        match *faults.borrow_and_update() {
                            Fault::Drop => {
                                count(&counters.dropped);
                                break End::Close;
                            }
                            Fault::Reset => {
                                count(&counters.reset);
                                break End::Reset;
                            }
                            Fault::Blackhole if !self.blackholed => {
                                count(&counters.blackholed);
                                self.blackholed = true;
                                self.up.clear();
                                self.down.clear();
                            }
                            _ => {}
                        }
                    }
                }
            }
        };
        if let End::Reset = end {
            reset(client);
            reset(server);
        }
    }

    /// A chunk read from one side: queued for the other side, delayed, or swallowed.
    fn take(&mut self, dir: Dir, bytes: &[u8], fault: Fault, counters: &Counters) {
        if dir == Dir::Up && self.last != Some(Dir::Up) {
            self.exchanges += 1;
        }
        self.last = Some(dir);
        if self.blackholed {
            return;
        }
        if dir == Dir::Down
            && (self.cut_at.is_some() || (fault == Fault::CutResponse && self.exchanges >= 2))
        {
            self.cut_at
                .get_or_insert_with(|| Instant::now() + CUT_AFTER);
            return;
        }
        let mut at = Instant::now();
        if fault == Fault::Latency {
            count(&counters.delayed);
            at += LATENCY;
        }
        let queue = match dir {
            Dir::Up => &mut self.up,
            Dir::Down => &mut self.down,
        };
        queue.push_back((at, bytes.to_vec()));
    }
}

/// Writes a chunk; `false` if that side is gone (or stopped reading for 10 s).
async fn deliver(to: &mut WriteHalf<'_>, bytes: &[u8]) -> bool {
    matches!(
        timeout(Duration::from_secs(10), to.write_all(bytes)).await,
        Ok(Ok(()))
    )
}
