//! A scripted HTTP/2 server over TLS with hd-2's certificate, for the `grpc_client`'s retry tests:
//! each connection and each stream does what its script says (refuse the stream, reset it after
//! reading the request, send a GOAWAY before processing it, or answer it as a `Hyper.Call`), and
//! every stream and request body is recorded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use h2::Reason;
use serde_json::json;
use tandem_proto::wire::{FastDecode, FastEncode};
use tandem_testkit::pki::TestPki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// What the server does with one stream (or, for [`Act::GoAway`], one connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// `RST_STREAM(REFUSED_STREAM)` at once, the request unread.
    Refuse,
    /// `RST_STREAM(REFUSED_STREAM)` after this many milliseconds, the request unread.
    RefuseAfter(u64),
    /// Read the whole request, then reset the stream with this reason.
    ResetAfterRead(Reason),
    /// Read the whole request and answer it (`result: {"answered": <method>}`).
    Answer,
    /// Speak raw HTTP/2 on this connection: wait for the first request's HEADERS, then send
    /// `GOAWAY(last_stream_id = 0, NO_ERROR)` (nothing processed) and close.
    GoAway,
}

/// One stream as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub act: Act,
    /// The `:path`.
    pub path: String,
    /// The gRPC message (without its 5-byte frame header), when the request was read.
    pub message: Option<Bytes>,
}

/// A running scripted server.
pub struct Front {
    pub addr: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Front {
    /// Streams seen so far (refused ones included).
    pub fn streams(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The recorded messages of the streams that were read.
    pub fn messages(&self) -> Vec<Bytes> {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter_map(|s| s.message.clone()).collect()
    }
}

/// Serves on 127.0.0.1:0 with hd-2's certificate. Stream `n` (over all connections, in arrival
/// order) gets `script[n]`, the last entry repeating; a [`Act::GoAway`] entry is used by a whole
/// connection and consumes one entry.
pub async fn start(pki: &TestPki, script: Vec<Act>) -> Front {
    assert!(!script.is_empty());
    let config = tandem_net::tls::server_config(&pki.tls_settings("hd-2"), &[b"h2"]).unwrap();
    let acceptor = TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Script {
        acts: script,
        next: AtomicUsize::new(0),
        seen: seen.clone(),
    });
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, script) = (acceptor.clone(), script.clone());
            connections.spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if script.peek() == Act::GoAway {
                    script.take();
                    go_away(tls, &script).await;
                } else {
                    serve(tls, script).await;
                }
            });
        }
    });
    Front { addr, seen, task }
}

struct Script {
    acts: Vec<Act>,
    next: AtomicUsize,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Script {
    fn at(&self, n: usize) -> Act {
        self.acts[n.min(self.acts.len() - 1)]
    }

    fn peek(&self) -> Act {
        self.at(self.next.load(Ordering::SeqCst))
    }

    fn take(&self) -> Act {
        self.at(self.next.fetch_add(1, Ordering::SeqCst))
    }

    fn record(&self, act: Act, path: &str, message: Option<Bytes>) {
        self.seen.lock().unwrap().push(Seen {
            act,
            path: path.to_owned(),
            message,
        });
    }
}

/// HTTP/2 with the h2 crate: every stream by the script.
async fn serve(tls: TlsStream<tokio::net::TcpStream>, script: Arc<Script>) {
    let Ok(mut connection) = h2::server::handshake(tls).await else {
        return;
    };
    let mut streams = tokio::task::JoinSet::new();
    while let Some(Ok((request, mut respond))) = connection.accept().await {
        let act = script.take();
        let script = script.clone();
        streams.spawn(async move {
            let path = request.uri().path().to_owned();
            match act {
                Act::Refuse => {}
                Act::RefuseAfter(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                _ => return read_and_act(act, &path, request.into_body(), respond, &script).await,
            }
            script.record(act, &path, None);
            respond.send_reset(Reason::REFUSED_STREAM);
        });
    }
}

/// Reads the request, records it, then resets or answers as `act` says.
async fn read_and_act(
    act: Act,
    path: &str,
    body: h2::RecvStream,
    mut respond: h2::server::SendResponse<Bytes>,
    script: &Script,
) {
    let Some(message) = read_message(body).await else {
        // The client reset the stream before its message was whole.
        script.record(act, path, None);
        return;
    };
    script.record(act, path, Some(message.clone()));
    match act {
        Act::ResetAfterRead(reason) => respond.send_reset(reason),
        _ => answer(&mut respond, &message),
    }
}

/// The request's one gRPC message, or `None` when the stream ended in an error first.
async fn read_message(mut body: h2::RecvStream) -> Option<Bytes> {
    let mut all = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.ok()?;
        let _ = body.flow_control().release_capacity(chunk.len());
        all.extend_from_slice(&chunk);
    }
    assert!(all.len() >= 5, "a gRPC frame");
    assert_eq!(all[0], 0, "uncompressed");
    let len = u32::from_be_bytes([all[1], all[2], all[3], all[4]]) as usize;
    assert_eq!(all.len(), 5 + len, "one whole message");
    Some(all.freeze().slice(5..))
}

/// Answers a `Hyper.Call` with its id and `{"answered": <method>}`.
fn answer(respond: &mut h2::server::SendResponse<Bytes>, message: &[u8]) {
    let request = tandem_proto::wire::Request::decode_fast(message).unwrap();
    let response = tandem_proto::wire::Response {
        id: request.id,
        result: json!({"answered": request.method}).as_object().cloned(),
        error: None,
    };
    let mut body = BytesMut::new();
    response.encode_fast(&mut body);
    let mut frame = BytesMut::with_capacity(5 + body.len());
    frame.put_u8(0);
    frame.put_u32(u32::try_from(body.len()).unwrap());
    frame.extend_from_slice(&body);
    let head = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let Ok(mut send) = respond.send_response(head, false) else {
        return;
    };
    let _ = send.send_data(frame.freeze(), false);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let _ = send.send_trailers(trailers);
}

/// Raw HTTP/2: our SETTINGS, then wait for the client's first HEADERS (the request was sent),
/// then `GOAWAY(0, NO_ERROR)`: the server processed no stream, so h2 fails that one as never
/// processed. The stream is recorded with [`Act::GoAway`].
async fn go_away(mut tls: TlsStream<tokio::net::TcpStream>, script: &Script) {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const HEADERS: u8 = 0x1;
    let mut preface = [0u8; 24];
    if tls.read_exact(&mut preface).await.is_err() || preface != PREFACE {
        return;
    }
    // An empty SETTINGS frame (type 0x4) on stream 0.
    let _ = tls.write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]).await;
    let _ = tls.flush().await;
    loop {
        let mut header = [0u8; 9];
        if tls.read_exact(&mut header).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; len];
        if tls.read_exact(&mut payload).await.is_err() {
            return;
        }
        if header[3] == HEADERS {
            break;
        }
    }
    script.record(Act::GoAway, "", None);
    // GOAWAY (type 0x7), 8-byte payload: last stream id 0, error code NO_ERROR (0).
    let mut goaway = vec![0, 0, 8, 0x7, 0, 0, 0, 0, 0];
    goaway.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    let _ = tls.write_all(&goaway).await;
    let _ = tls.shutdown().await;
}
