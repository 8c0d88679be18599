//! An HTTP forward proxy as the original's `proxy_url` setting names it
//! (`http://[user:password@]host[:port]`): clients reach their target through it with HTTP CONNECT.

use std::fmt;
use std::str::FromStr;

/// The port of a forward proxy URL that names none (as Go's `net/http` assumes for `http://`).
pub const DEFAULT_FORWARD_PROXY_PORT: u16 = 80;

/// A forward proxy: where it listens and, when it wants them, the Basic credentials to show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ForwardProxy {
    host: String,
    port: u16,
    credentials: Option<Credentials>,
}

/// `user:password` for the proxy's `Proxy-Authorization: Basic`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (percent-decoded).
    pub user: String,
    /// The password (percent-decoded; never printed).
    pub password: String,
}

/// Why a `proxy_url` is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardProxyError {
    /// Not `http://…`.
    #[error(
        "{0:?}: a forward proxy is reached over plain HTTP (http://host:port); the connection to the \
         target (TLS included) runs inside the CONNECT tunnel"
    )]
    Scheme(String),
    /// A path, query or fragment after the address.
    #[error("{0:?}: a forward proxy URL names only http://[user:password@]host[:port]")]
    Path(String),
    /// No host, an unbalanced `[v6]`, or a bad port.
    #[error("{url:?}: {reason}")]
    Address {
        /// The URL as written (credentials hidden).
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `%` not followed by two hex digits in the credentials.
    #[error("the credentials of a forward proxy URL have a bad %-escape")]
    Escape,
}

impl ForwardProxy {
    /// The proxy's host (an IPv6 address without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The credentials to present, if the URL carries any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// `host:port` (`[v6]:port`), for dialing.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for ForwardProxy {
    type Err = ForwardProxyError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let scheme_end = url
            .find("://")
            .ok_or_else(|| ForwardProxyError::Scheme(hide(url)))?;
        if !url[..scheme_end].eq_ignore_ascii_case("http") {
            return Err(ForwardProxyError::Scheme(hide(url)));
        }
        let rest = &url[scheme_end + 3..];
        let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
        if !(tail.is_empty() || tail == "/") {
            return Err(ForwardProxyError::Path(hide(url)));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let address = |reason| ForwardProxyError::Address {
            url: hide(url),
            reason,
        };
        let (host, port) = split_host_port(hostport).map_err(address)?;
        let credentials = userinfo
            .map(|info| {
                let (user, password) = info.split_once(':').unwrap_or((info, ""));
                Ok::<_, ForwardProxyError>(Credentials {
                    user: percent_decode(user)?,
                    password: percent_decode(password)?,
                })
            })
            .transpose()?;
        Ok(Self {
            host: host.to_owned(),
            port,
            credentials,
        })
    }
}

fn split_host_port(hostport: &str) -> Result<(&str, u16), &'static str> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unbalanced brackets")?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("junk after ]")?)),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((_, _)) if hostport.matches(':').count() > 1 => {
                return Err("write IPv6 hosts as [addr]:port");
            }
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    let port = match port {
        None => DEFAULT_FORWARD_PROXY_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err("the port must be a number in 1..=65535"),
            Ok(p) => p,
        },
    };
    Ok((host, port))
}

/// `%XX` escapes decoded (RFC 3986 userinfo); the result must be UTF-8.
fn percent_decode(text: &str) -> Result<String, ForwardProxyError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(ForwardProxyError::Escape)?;
            let hex = std::str::from_utf8(hex).map_err(|_| ForwardProxyError::Escape)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ForwardProxyError::Escape)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ForwardProxyError::Escape)
}

/// The URL with any password replaced, for messages.
fn hide(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl fmt::Display for ForwardProxy {
    /// `http://[user:***@]host:port`: the password never shows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.credentials {
            Some(c) => write!(f, "http://{}:***@{}", c.user, self.authority()),
            None => write!(f, "http://{}", self.authority()),
        }
    }
}

impl fmt::Debug for ForwardProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ForwardProxy({self})")
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}:***)", self.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_port_and_ipv6() {
        let p: ForwardProxy = "http://proxy.corp:3128".parse().unwrap();
        assert_eq!(
            (p.host(), p.port(), p.credentials()),
            ("proxy.corp", 3128, None)
        );
        let p: ForwardProxy = "HTTP://proxy.corp/".parse().unwrap();
        assert_eq!(p.port(), DEFAULT_FORWARD_PROXY_PORT);
        let p: ForwardProxy = "http://[::1]:8080".parse().unwrap();
        assert_eq!((p.host(), p.authority()), ("::1", "[::1]:8080".to_owned()));
    }

    #[test]
    fn credentials_are_decoded_and_never_printed() {
        let p: ForwardProxy = "http://al%40ice:s%3Acret@127.0.0.1:3128".parse().unwrap();
        let c = p.credentials().unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("al@ice", "s:cret"));
        for shown in [p.to_string(), format!("{p:?}"), format!("{c:?}")] {
            assert!(!shown.contains("s:cret"), "{shown}");
        }
        let p: ForwardProxy = "http://bob@h:1".parse().unwrap();
        assert_eq!(p.credentials().unwrap().password, "");
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_the_password() {
        let cases = [
            ("https://h:3128", "plain HTTP"),
            ("socks5://h:1080", "plain HTTP"),
            ("h:3128", "plain HTTP"),
            ("http://h:3128/path", "only http://"),
            ("http://h:3128?x=1", "only http://"),
            ("http://:3128", "no host"),
            ("http://h:0", "1..=65535"),
            ("http://h:99999", "1..=65535"),
            ("http://h:x", "1..=65535"),
            ("http://[::1:3128", "unbalanced"),
            ("http://::1:3128", "[addr]:port"),
            ("http://u:p%zz@h:1", "%-escape"),
            ("http://u:secret@:1", "no host"),
        ];
        for (url, says) in cases {
            let err = url.parse::<ForwardProxy>().unwrap_err().to_string();
            assert!(err.contains(says), "{url}: {err}");
            assert!(!err.contains("secret"), "{url}: {err}");
        }
    }
}
