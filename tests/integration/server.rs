//! A scriptable HTTP/1.1 server on 127.0.0.1 for integration tests and benchmarks: it
//! records every request (unless told not to) and answers each from a handler, which can
//! also answer after a delay, stream with delays, cut a stream, reset the connection or
//! hang. Its own thread and runtime, so tests stay synchronous and run the real binary
//! against it. `benches/` include this file too.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Request {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The last user message of a chat request.
    /// The roles of the request's messages, in order.
    pub fn roles(&self) -> Vec<String> {
        self.json()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn last_user(&self) -> String {
        let v = self.json();
        v["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string()
    }
}

pub enum Reply {
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// A chunked response: each piece after its delay. `reset` drops the connection at the
    /// end instead of finishing the response.
    Chunks {
        status: u16,
        headers: Vec<(String, String)>,
        chunks: Vec<(Duration, Vec<u8>)>,
        reset: bool,
    },
    /// Close the connection at once with a TCP reset, sending nothing.
    Reset,
    /// Say nothing for this long, then close.
    Hang(Duration),
    /// Wait, then give this reply (a fixed latency).
    After(Duration, Box<Reply>),
}

impl Reply {
    pub fn json(status: u16, v: &Value) -> Reply {
        Reply::Full {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
        }
    }

    pub fn with_header(mut self, k: &str, v: &str) -> Reply {
        match &mut self {
            Reply::Full { headers, .. } | Reply::Chunks { headers, .. } => headers.push((k.into(), v.into())),
            _ => {}
        }
        self
    }
}

type Handler = dyn Fn(&Request, usize) -> Reply + Send + Sync;

pub struct Server {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    /// Requests received, kept or not.
    count: Arc<AtomicUsize>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Start a server whose handler gets each request and its 0-based index.
    pub fn start(handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Server {
        Self::start_with(handler, true)
    }

    /// `start`, keeping no copy of the requests (`keep` false): for benchmarks that send
    /// thousands and only count them (`received`).
    pub fn start_with(handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static, keep: bool) -> Server {
        let handler: Arc<Handler> = Arc::new(handler);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::new(AtomicUsize::new(0));
        let count = counter.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let reqs = requests.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let accept = async {
                    loop {
                        let Ok((sock, _)) = listener.accept().await else {
                            continue;
                        };
                        let _ = sock.set_nodelay(true);
                        let (h, c) = (handler.clone(), counter.clone());
                        let r = keep.then(|| reqs.clone());
                        tokio::spawn(async move {
                            let _ = serve_conn(sock, h, r, c).await;
                        });
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = rx => {}
                }
            });
            rt.shutdown_background();
        });
        let addr = addr_rx.recv().unwrap();
        Server {
            addr,
            requests,
            count,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// Base URL for `--base-url`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// How many requests came, whether kept or not.
    pub fn received(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Chat-completion requests only.
    pub fn chats(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/chat/completions"))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve_conn(
    mut sock: TcpStream,
    handler: Arc<Handler>,
    reqs: Option<Arc<Mutex<Vec<Request>>>>,
    counter: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some(req) = read_request(&mut sock, &mut buf).await? else {
            return Ok(());
        };
        let idx = counter.fetch_add(1, Ordering::SeqCst);
        if let Some(r) = &reqs {
            r.lock().unwrap().push(req.clone());
        }
        let mut reply = handler(&req, idx);
        while let Reply::After(d, r) = reply {
            tokio::time::sleep(d).await;
            reply = *r;
        }
        match reply {
            Reply::Full { status, headers, body } => {
                let mut head = format!(
                    "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\n",
                    reason(status),
                    body.len()
                );
                for (k, v) in &headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                // One write: a head and a body written apart meet Nagle's algorithm and
                // the peer's delayed ACK (40 ms a reply on Linux).
                let mut whole = head.into_bytes();
                whole.extend_from_slice(&body);
                sock.write_all(&whole).await?;
            }
            Reply::Chunks {
                status,
                headers,
                chunks,
                reset,
            } => {
                let mut head = format!("HTTP/1.1 {status} {}\r\ntransfer-encoding: chunked\r\n", reason(status));
                for (k, v) in &headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                sock.write_all(head.as_bytes()).await?;
                sock.flush().await?;
                for (delay, c) in chunks {
                    tokio::time::sleep(delay).await;
                    if c.is_empty() {
                        continue;
                    }
                    sock.write_all(format!("{:x}\r\n", c.len()).as_bytes()).await?;
                    sock.write_all(&c).await?;
                    sock.write_all(b"\r\n").await?;
                    sock.flush().await?;
                }
                if reset {
                    let _ = sock.set_zero_linger();
                    return Ok(());
                }
                sock.write_all(b"0\r\n\r\n").await?;
            }
            Reply::Reset => {
                let _ = sock.set_zero_linger();
                return Ok(());
            }
            Reply::Hang(d) => {
                tokio::time::sleep(d).await;
                return Ok(());
            }
            Reply::After(..) => unreachable!("waited for above"),
        }
        sock.flush().await?;
    }
}

async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Request>> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        let mut tmp = [0u8; 8192];
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    let get = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let body = if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        fill(sock, buf, len).await?;
        buf.drain(..len).collect()
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                more(sock, buf).await?;
            };
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&buf[..line_end])
                    .split(';')
                    .next()
                    .unwrap_or("0")
                    .trim(),
                16,
            )
            .unwrap_or(0);
            buf.drain(..line_end + 2);
            fill(sock, buf, size + 2).await?;
            body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                break;
            }
        }
        body
    } else {
        Vec::new()
    };
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
        at: Instant::now(),
    }))
}

async fn fill(sock: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> std::io::Result<()> {
    while buf.len() < len {
        more(sock, buf).await?;
    }
    Ok(())
}

async fn more(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut tmp = [0u8; 8192];
    let n = sock.read(&mut tmp).await?;
    if n == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof in body"));
    }
    buf.extend_from_slice(&tmp[..n]);
    Ok(())
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
