//! The authorisation hook's HTTP client: one per worker and mount, on the worker's own event
//! loop, so a request waiting for the backend holds no thread and no other client waits for
//! it. It keeps connections alive between questions, bounds the questions in flight, and gives
//! each decision a deadline; what it reads is judged by `policy::hook`.

use super::io::read_more;
use crate::config::HookConfig;
use crate::http::body::ChunkedDecoder;
use crate::policy::hook::AskBackend;
use crate::policy::hook::{Failure, MAX_ANSWER, Verdict, verdict};
use bytes::{Buf, BytesMut};
use futures::channel::oneshot;
use futures::future::LocalBoxFuture;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

/// Most response headers read from the backend.
const MAX_HEADERS: usize = 32;
/// Most bytes of a response head.
const MAX_HEAD: usize = 8 * 1024;

/// A worker's client of one mount's backend.
pub struct HookClient {
    config: HookConfig,
    /// Connections kept alive after an answer, most recent last.
    idle: RefCell<Vec<TcpStream>>,
    in_flight: Cell<usize>,
    /// Questions waiting for a request slot, each woken once one is free.
    waiting: RefCell<VecDeque<oneshot::Sender<()>>>,
    /// When a failure was last logged.
    warned: Cell<Option<std::time::Instant>>,
}

/// Least time between two logged failures of one worker's hook client.
const WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// How one exchange on a connection ended, when it gave no answer.
enum Broken {
    /// Closed before the first byte of an answer: on a kept-alive connection, the backend
    /// closed it while idle, and the question may be asked again on a new one.
    BeforeAnswer,
    Failed(Failure),
}

/// A request slot, given back when dropped (answer, failure or timeout alike).
struct Slot<'c>(&'c HookClient);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let client = self.0;
        client.in_flight.set(client.in_flight.get() - 1);
        // The first waiter still waiting (one that timed out dropped its receiver).
        while let Some(next) = client.waiting.borrow_mut().pop_front() {
            if next.send(()).is_ok() {
                break;
            }
        }
    }
}

impl HookClient {
    pub fn new(config: HookConfig) -> Rc<HookClient> {
        Rc::new(HookClient {
            config,
            idle: RefCell::new(Vec::new()),
            in_flight: Cell::new(0),
            waiting: RefCell::new(VecDeque::new()),
            warned: Cell::new(None),
        })
    }

    /// Asks the backend about one message: its verdict, or why there is none. Bounded by the
    /// configured timeout, the wait for a request slot included; a question that times out
    /// closes its connection, so a hung backend holds no more than `max_in_flight` of them.
    pub async fn decide(&self, body: Vec<u8>, denied: &str) -> Result<Verdict, Failure> {
        let asking = self.ask_in_time(body, denied);
        let decided = match monoio::time::timeout(self.config.timeout, asking).await {
            Ok(decided) => decided,
            Err(_) => Err(Failure::Timeout),
        };
        if let Err(failure) = &decided {
            self.warn(failure);
        }
        decided
    }

    /// Logs a failure, at most once per [`WARN_EVERY`] per worker (a backend that is down fails
    /// every question); the counts are in the metrics.
    fn warn(&self, failure: &Failure) {
        let now = std::time::Instant::now();
        if self.warned.get().is_some_and(|at| now - at < WARN_EVERY) {
            return;
        }
        self.warned.set(Some(now));
        tracing::warn!(
            hook = %self.config.shown,
            reason = failure.reason(),
            policy = ?self.config.failure,
            "authorisation hook gave no answer; the failure policy decides \
             (bayou_auth_hook_failures_total counts them)"
        );
    }

    async fn ask_in_time(&self, body: Vec<u8>, denied: &str) -> Result<Verdict, Failure> {
        let _slot = self.slot().await;
        let mut request = self.request(&body);
        let kept = self.idle.borrow_mut().pop();
        if let Some(stream) = kept {
            match self.exchange(stream, request).await {
                Ok((status, answer)) => return verdict(status, &answer, denied),
                Err((Broken::Failed(f), _)) => return Err(f),
                Err((Broken::BeforeAnswer, again)) => request = again,
            }
        }
        let stream = TcpStream::connect(self.config.addr)
            .await
            .map_err(|_| Failure::Unreachable)?;
        let _ = stream.set_nodelay(true);
        match self.exchange(stream, request).await {
            Ok((status, answer)) => verdict(status, &answer, denied),
            Err((Broken::Failed(f), _)) => Err(f),
            Err((Broken::BeforeAnswer, _)) => Err(Failure::Unreachable),
        }
    }

    /// Waits for one of the `max_in_flight` request slots.
    async fn slot(&self) -> Slot<'_> {
        loop {
            if self.in_flight.get() < self.config.max_in_flight {
                self.in_flight.set(self.in_flight.get() + 1);
                return Slot(self);
            }
            let (tx, rx) = oneshot::channel();
            self.waiting.borrow_mut().push_back(tx);
            let _ = rx.await;
        }
    }

    fn request(&self, body: &[u8]) -> Vec<u8> {
        let c = &self.config;
        let mut out = Vec::with_capacity(body.len() + 160);
        out.extend_from_slice(b"POST ");
        out.extend_from_slice(c.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(c.host.as_bytes());
        out.extend_from_slice(b"\r\nContent-Type: application/json\r\nContent-Length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\nUser-Agent: bayou-auth-hook\r\n\r\n");
        out.extend_from_slice(body);
        out
    }

    /// Sends one request on `stream` and reads its answer: status and body. The connection
    /// goes back to the idle ones when the answer leaves it usable. On failure the request
    /// comes back, to be sent again when nothing of an answer had arrived.
    async fn exchange(
        &self,
        mut stream: TcpStream,
        request: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), (Broken, Vec<u8>)> {
        let (written, request) = stream.write_all(request).await;
        if written.is_err() {
            return Err((Broken::BeforeAnswer, request));
        }
        let mut buf = BytesMut::with_capacity(4096);
        // The head.
        let (status, framing, keep_alive) = loop {
            let (read, b) = read_more(&mut stream, buf).await;
            buf = b;
            match read {
                Ok(n) if n > 0 => {}
                _ if buf.is_empty() => return Err((Broken::BeforeAnswer, request)),
                _ => return Err((Broken::Failed(Failure::Unreachable), request)),
            }
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&buf) {
                Ok(httparse::Status::Complete(used)) => {
                    let head = head_of(&response);
                    buf.advance(used);
                    break head;
                }
                Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => continue,
                _ => return Err((Broken::Failed(Failure::BadAnswer), request)),
            }
        };
        // The body.
        let fail = |f| Err((Broken::Failed(f), Vec::new()));
        let mut body = Vec::new();
        match framing {
            Framing::Length(n) if n > MAX_ANSWER => return fail(Failure::TooLarge),
            Framing::Length(n) => {
                while buf.len() < n {
                    let (read, b) = read_more(&mut stream, buf).await;
                    buf = b;
                    if !matches!(read, Ok(k) if k > 0) {
                        return fail(Failure::Unreachable);
                    }
                }
                body.extend_from_slice(&buf[..n]);
                buf.advance(n);
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::new(MAX_ANSWER);
                loop {
                    match decoder.decode(&mut buf, &mut body) {
                        Ok(true) => break,
                        Ok(false) => {}
                        Err(_) => return fail(Failure::TooLarge),
                    }
                    let (read, b) = read_more(&mut stream, buf).await;
                    buf = b;
                    if !matches!(read, Ok(k) if k > 0) {
                        return fail(Failure::Unreachable);
                    }
                }
            }
            Framing::UntilClose => loop {
                let (read, b) = read_more(&mut stream, buf).await;
                buf = b;
                if buf.len() > MAX_ANSWER {
                    return fail(Failure::TooLarge);
                }
                match read {
                    Ok(0) => {
                        body.extend_from_slice(&buf);
                        return Ok((status, body));
                    }
                    Ok(_) => {}
                    Err(_) => return fail(Failure::Unreachable),
                }
            },
        }
        // Nothing more may follow an answer to one request.
        if keep_alive && buf.is_empty() {
            let mut idle = self.idle.borrow_mut();
            if idle.len() < self.config.max_in_flight {
                idle.push(stream);
            }
        }
        Ok((status, body))
    }
}

/// How an answer's body ends.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Status, body framing and whether the connection stays usable, from a response head.
fn head_of(response: &httparse::Response) -> (u16, Framing, bool) {
    let mut framing = Framing::UntilClose;
    let mut chunked = false;
    let mut keep_alive = response.version == Some(1);
    for h in response.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or_default().trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            // Unreadable reads as too large.
            framing = Framing::Length(value.parse().unwrap_or(usize::MAX));
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().ends_with("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            keep_alive &= !value.eq_ignore_ascii_case("close");
        }
    }
    // Transfer-Encoding wins over Content-Length (RFC 9112, 6.3).
    if chunked {
        framing = Framing::Chunked;
    }
    if matches!(framing, Framing::UntilClose) {
        keep_alive = false;
    }
    (response.code.unwrap_or(0), framing, keep_alive)
}

impl AskBackend for HookClient {
    fn ask(self: Rc<Self>, body: Vec<u8>, denied: String) -> LocalBoxFuture<'static, Asked> {
        Box::pin(async move { self.decide(body, &denied).await })
    }
}

/// What [`AskBackend::ask`] resolves to.
type Asked = Result<Verdict, Failure>;
