//! Sans-IO, incremental TLS ClientHello reader for SNI routing (SPEC §4.8, fixing §4.9.2):
//! accepts a hello split across TCP segments and across several TLS records, up to a bound.

/// Record content type of a handshake record.
const HANDSHAKE: u8 = 22;
/// Handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;
/// Largest plaintext record payload (RFC 8446 §5.1), in bytes.
const MAX_RECORD: usize = 1 << 14;
/// Longest DNS name we route, in bytes (RFC 1035).
const MAX_HOST: usize = 253;
/// ALPN protocols we keep for the resolver (more are ignored; real clients send 1–3).
const MAX_ALPN: usize = 16;

/// What the resolver gets from a ClientHello.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ClientHelloInfo {
    /// The first host_name of server_name, lower-cased; `None` when absent.
    pub sni: Option<String>,
    /// ALPN protocol names in client order (at most 16).
    pub alpn: Vec<Vec<u8>>,
}

/// Why a ClientHello was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// A record that is not a handshake record, or a bad record header.
    #[error("not a TLS handshake record")]
    NotHandshake,
    /// The first handshake message is not a ClientHello.
    #[error("not a ClientHello")]
    NotClientHello,
    /// The hello needs more bytes than the configured bound.
    #[error("ClientHello larger than the bound")]
    TooLarge,
    /// A length field points outside its container, or a field is out of range.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    /// The server_name is not a valid DNS host name.
    #[error("invalid server name")]
    BadServerName,
}

impl HelloError {
    /// Stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            HelloError::NotHandshake => "not_handshake",
            HelloError::NotClientHello => "not_client_hello",
            HelloError::TooLarge => "too_large",
            HelloError::Malformed(_) => "malformed",
            HelloError::BadServerName => "bad_server_name",
        }
    }
}

/// Feeds raw bytes from the socket in any split; yields the hello's info once complete.
/// Memory: the handshake bytes (at most `max_bytes`) plus a 5-byte header.
#[derive(Debug)]
pub struct ClientHelloReader {
    max_bytes: usize,
    seen: usize,
    header: [u8; 5],
    header_len: usize,
    record_left: usize,
    handshake: Vec<u8>,
}

impl ClientHelloReader {
    /// A reader that refuses hellos needing more than `max_bytes` raw bytes.
    pub fn new(max_bytes: usize) -> Self {
        ClientHelloReader {
            max_bytes,
            seen: 0,
            header: [0; 5],
            header_len: 0,
            record_left: 0,
            handshake: Vec::new(),
        }
    }

    /// Consumes `input`; `Ok(None)` = need more bytes.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<Option<ClientHelloInfo>, HelloError> {
        while !input.is_empty() {
            if self.seen >= self.max_bytes {
                return Err(HelloError::TooLarge);
            }
            if self.record_left == 0 {
                let take = (5 - self.header_len).min(input.len());
                self.header[self.header_len..self.header_len + take]
                    .copy_from_slice(&input[..take]);
                self.header_len += take;
                self.seen += take;
                input = &input[take..];
                if self.header_len == 5 {
                    self.start_record()?;
                }
                continue;
            }
            let room = self.max_bytes - self.seen;
            let take = self.record_left.min(input.len()).min(room);
            self.handshake.extend_from_slice(&input[..take]);
            self.record_left -= take;
            self.seen += take;
            input = &input[take..];
            if let Some(info) = self.try_parse()? {
                return Ok(Some(info));
            }
        }
        Ok(None)
    }

    /// Handshake bytes buffered and the buffer's capacity, in bytes (the fuzz checks' memory bound).
    pub(crate) fn buffered(&self) -> (usize, usize) {
        (self.handshake.len(), self.handshake.capacity())
    }

    fn start_record(&mut self) -> Result<(), HelloError> {
        let [kind, major, _minor, hi, lo] = self.header;
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if kind != HANDSHAKE || major != 3 || len == 0 || len > MAX_RECORD {
            return Err(HelloError::NotHandshake);
        }
        self.header_len = 0;
        self.record_left = len;
        Ok(())
    }

    fn try_parse(&self) -> Result<Option<ClientHelloInfo>, HelloError> {
        let hs = &self.handshake;
        if hs.is_empty() {
            return Ok(None);
        }
        if hs[0] != CLIENT_HELLO {
            return Err(HelloError::NotClientHello);
        }
        if hs.len() < 4 {
            return Ok(None);
        }
        let len = (usize::from(hs[1]) << 16) | (usize::from(hs[2]) << 8) | usize::from(hs[3]);
        // Each record adds a 5-byte header; a hello that cannot fit the bound is refused now.
        if 4 + len + 5 * (4 + len).div_ceil(MAX_RECORD) > self.max_bytes {
            return Err(HelloError::TooLarge);
        }
        if hs.len() < 4 + len {
            return Ok(None);
        }
        parse_body(&hs[4..4 + len]).map(Some)
    }
}

/// A cursor over a byte slice whose reads fail instead of panicking.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HelloError> {
        if self.0.len() < n {
            return Err(HelloError::Malformed(what));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<usize, HelloError> {
        Ok(usize::from(self.take(1, what)?[0]))
    }
    fn u16(&mut self, what: &'static str) -> Result<usize, HelloError> {
        let b = self.take(2, what)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], HelloError> {
        let n = self.u8(what)?;
        self.take(n, what)
    }
    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], HelloError> {
        let n = self.u16(what)?;
        self.take(n, what)
    }
}

/// Parses a ClientHello body (after the 4-byte handshake header).
pub fn parse_body(body: &[u8]) -> Result<ClientHelloInfo, HelloError> {
    let mut c = Cursor(body);
    let version = c.take(2, "version")?;
    // legacy_version: TLS 1.0..1.2 values (TLS 1.3 clients send 3,3); SSL 3.0 and below refused.
    if version[0] != 3 || !(1..=3).contains(&version[1]) {
        return Err(HelloError::Malformed("version"));
    }
    c.take(32, "random")?;
    if c.vec8("session id")?.len() > 32 {
        return Err(HelloError::Malformed("session id"));
    }
    let suites = c.vec16("cipher suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(HelloError::Malformed("cipher suites"));
    }
    if c.vec8("compression")?.is_empty() {
        return Err(HelloError::Malformed("compression"));
    }
    let mut info = ClientHelloInfo::default();
    if c.0.is_empty() {
        return Ok(info); // no extensions: no SNI; the resolver decides.
    }
    let mut exts = Cursor(c.vec16("extensions")?);
    if !c.0.is_empty() {
        return Err(HelloError::Malformed("trailing bytes"));
    }
    let mut seen: Vec<usize> = Vec::new();
    while !exts.0.is_empty() {
        let kind = exts.u16("extension type")?;
        let data = exts.vec16("extension")?;
        if seen.contains(&kind) {
            return Err(HelloError::Malformed("duplicate extension"));
        }
        seen.push(kind);
        match kind {
            0 => info.sni = parse_sni(data)?,
            16 => info.alpn = parse_alpn(data)?,
            _ => {}
        }
    }
    Ok(info)
}

fn parse_sni(data: &[u8]) -> Result<Option<String>, HelloError> {
    let mut c = Cursor(data);
    let mut list = Cursor(c.vec16("server name list")?);
    if !c.0.is_empty() {
        return Err(HelloError::Malformed("server name list"));
    }
    let mut host = None;
    while !list.0.is_empty() {
        let kind = list.u8("server name type")?;
        let name = list.vec16("server name")?;
        if kind == 0 && host.is_none() {
            host = Some(valid_host(name)?);
        }
    }
    Ok(host)
}

fn parse_alpn(data: &[u8]) -> Result<Vec<Vec<u8>>, HelloError> {
    let mut c = Cursor(data);
    let mut list = Cursor(c.vec16("alpn list")?);
    if !c.0.is_empty() {
        return Err(HelloError::Malformed("alpn list"));
    }
    let mut out = Vec::new();
    while !list.0.is_empty() {
        let proto = list.vec8("alpn protocol")?;
        if proto.is_empty() {
            return Err(HelloError::Malformed("empty alpn protocol"));
        }
        if out.len() < MAX_ALPN {
            out.push(proto.to_vec());
        }
    }
    Ok(out)
}

/// A DNS host name: 1–253 bytes, labels of 1–63 letters, digits, `-` (not leading/trailing)
/// or `_`; no trailing dot. Returned lower-cased, since DNS names compare case-insensitively.
fn valid_host(name: &[u8]) -> Result<String, HelloError> {
    if name.is_empty() || name.len() > MAX_HOST {
        return Err(HelloError::BadServerName);
    }
    for label in name.split(|&b| b == b'.') {
        let ok_chars = label
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if label.is_empty() || label.len() > 63 || !ok_chars {
            return Err(HelloError::BadServerName);
        }
        if label.first() == Some(&b'-') || label.last() == Some(&b'-') {
            return Err(HelloError::BadServerName);
        }
    }
    let s = std::str::from_utf8(name).map_err(|_| HelloError::BadServerName)?;
    Ok(s.to_ascii_lowercase())
}

#[cfg(test)]
#[path = "clienthello_tests.rs"]
mod tests;
