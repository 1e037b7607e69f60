//! An in-process HTTP/1.1 server on port 0 that plays scripted responses: the fake behind the
//! HTTP target's tests and its client-overhead benchmark. Responses use chunked encoding with
//! keep-alive, and each scripted write is flushed on its own, so reads split where the script says.

use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One step of a scripted response body.
#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes as one chunk and flush.
    Bytes(Vec<u8>),
    /// Write these bytes `n` times, one chunk each (a large body the server never holds whole).
    Repeat(Vec<u8>, usize),
    /// Wait.
    Sleep(Duration),
    /// Cut the connection here (no end of body).
    Cut,
}

impl Step {
    /// `data: <json>\n\n`.
    pub fn data(v: &Value) -> Self {
        Self::Bytes(format!("data: {v}\n\n").into_bytes())
    }

    /// `data: [DONE]\n\n`.
    pub fn done() -> Self {
        Self::Bytes(b"data: [DONE]\n\n".to_vec())
    }

    /// A chat delta carrying `text`.
    pub fn content(text: &str) -> Self {
        Self::data(&serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}}]}))
    }
}

/// A scripted response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub steps: Vec<Step>,
    /// When set, the moment each body write was flushed is logged under this tag
    /// (see [`MockServer::writes`]).
    pub tag: Option<String>,
}

/// One logged body write.
#[derive(Debug, Clone)]
pub struct Write {
    pub tag: String,
    /// The write's position among the response's `Bytes` steps.
    pub seq: usize,
    /// When the bytes were handed to the socket and flushed.
    pub at: std::time::Instant,
}

impl Response {
    /// 200 with `text/event-stream` and the given steps.
    pub fn sse(steps: Vec<Step>) -> Self {
        Self {
            status: 200,
            headers: vec![("Content-Type".into(), "text/event-stream".into())],
            steps,
            tag: None,
        }
    }

    /// A JSON answer with a status.
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            steps: vec![Step::Bytes(body.to_string().into_bytes())],
            tag: None,
        }
    }
}

/// A received request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

type Responder = Arc<dyn Fn(&Request) -> Response + Send + Sync>;
type WriteLog = Arc<std::sync::Mutex<Vec<Write>>>;

/// A running mock server; it stops when dropped, open connections included (so a test can
/// make a server go away mid-run).
pub struct MockServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    writes: WriteLog,
    received: WriteLog,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
        if let Ok(c) = self.connections.lock() {
            c.iter().for_each(tokio::task::AbortHandle::abort);
        }
    }
}

impl MockServer {
    /// Starts serving on 127.0.0.1, port 0, answering each request with `respond`.
    pub async fn start(
        respond: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let respond: Responder = Arc::new(respond);
        let writes: WriteLog = Arc::default();
        let received: WriteLog = Arc::default();
        let log = writes.clone();
        let got = received.clone();
        let connections: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let conns = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let _ = sock.set_nodelay(true);
                let (r, log, got) = (respond.clone(), log.clone(), got.clone());
                let conn = tokio::spawn(async move {
                    let _ = serve(sock, r, log, got).await;
                });
                if let Ok(mut c) = conns.lock() {
                    c.retain(|h| !h.is_finished());
                    c.push(conn.abort_handle());
                }
            }
        });
        Ok(Self {
            addr,
            task,
            writes,
            received,
            connections,
        })
    }

    /// Every logged write so far (responses with a `tag`), in write order.
    pub fn writes(&self) -> Vec<Write> {
        self.writes.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// When each tagged request had been read in full (`seq` 0), in arrival order.
    pub fn received(&self) -> Vec<Write> {
        self.received.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Request>> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut tmp = [0u8; 8192];
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let mut tmp = [0u8; 8192];
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
    buf.drain(..head_end + len);
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

async fn serve(
    mut sock: TcpStream,
    respond: Responder,
    log: WriteLog,
    received: WriteLog,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut sock, &mut buf).await? {
        let read_at = std::time::Instant::now();
        let resp = respond(&req);
        if let (Some(tag), Ok(mut w)) = (&resp.tag, received.lock()) {
            w.push(Write {
                tag: tag.clone(),
                seq: 0,
                at: read_at,
            });
        }
        let mut head = format!(
            "HTTP/1.1 {} X\r\nTransfer-Encoding: chunked\r\n",
            resp.status
        );
        for (k, v) in &resp.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        sock.write_all(head.as_bytes()).await?;
        sock.flush().await?;
        let mut seq = 0;
        for step in resp.steps {
            match step {
                Step::Bytes(b) => {
                    let mut chunk = format!("{:x}\r\n", b.len()).into_bytes();
                    chunk.extend_from_slice(&b);
                    chunk.extend_from_slice(b"\r\n");
                    sock.write_all(&chunk).await?;
                    sock.flush().await?;
                    if let Some(tag) = &resp.tag {
                        let at = std::time::Instant::now();
                        if let Ok(mut w) = log.lock() {
                            w.push(Write {
                                tag: tag.clone(),
                                seq,
                                at,
                            });
                        }
                    }
                    seq += 1;
                }
                Step::Repeat(b, n) => {
                    let mut chunk = format!("{:x}\r\n", b.len()).into_bytes();
                    chunk.extend_from_slice(&b);
                    chunk.extend_from_slice(b"\r\n");
                    for _ in 0..n {
                        sock.write_all(&chunk).await?;
                    }
                    sock.flush().await?;
                }
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::Cut => return Ok(()),
            }
        }
        sock.write_all(b"0\r\n\r\n").await?;
        sock.flush().await?;
    }
    Ok(())
}
