//! Linux network namespaces made by a test (`ip netns`, run as root): [`Netns::isolated`] is a
//! namespace with only its loopback up (a network of its own for fixed ports), and [`Lan`] is a
//! private LAN: a bridge in a namespace of its own and one namespace per host, each joined to the
//! bridge by a veth pair, with an address in `10.<net>.0.0/24`. No interface of the LAN lives in
//! the host's namespace and no route leads there, so no test address is reachable from the host's
//! network or routed to it: traffic goes only between these namespaces.
//!
//! Everything is deleted on drop (processes inside killed first), and a test's namespaces carry its
//! own prefix plus the test process's pid: [`Lan::new`] first removes namespaces of that prefix left
//! by test processes that no longer run (a run killed before its drop).

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;

use crate::process::Proc;

/// Hosts on one [`Lan`] (addresses .2 to .(1 + this)); a /24 with room to spare.
pub const MAX_HOSTS: usize = 200;

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills every process inside namespace `name`, then deletes it (errors ignored: best effort).
fn remove(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: plain kill(2); the pid is a process inside the test's own namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    let _ = Command::new("ip").args(["netns", "del", name]).output();
}

/// One network namespace, deleted (with whatever runs in it) on drop, and its
/// `/etc/netns/<name>/` directory when it has one (see [`Netns::with_hosts`]).
#[derive(Debug)]
pub struct Netns {
    /// Its name under /var/run/netns.
    pub name: String,
    /// `/etc/netns/<name>`, removed on drop when this namespace wrote it.
    etc: Option<PathBuf>,
}

impl Netns {
    /// A fresh namespace `name` (an old one of that name is removed first) with loopback up.
    pub fn isolated(name: &str) -> Self {
        remove(name);
        ip(&["netns", "add", name]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
        Self {
            name: name.to_owned(),
            etc: None,
        }
    }

    /// [`Netns::isolated`] whose programs read `hosts` as their `/etc/hosts`: `ip netns exec`
    /// bind-mounts `/etc/netns/<name>/hosts` over it for the command it runs, so a test can name
    /// hosts (one resolving to both `127.0.0.1` and `::1`) for real resolvers. The directory is
    /// removed on drop.
    pub fn with_hosts(name: &str, hosts: &str) -> Self {
        let mut ns = Self::isolated(name);
        let etc = PathBuf::from("/etc/netns").join(name);
        std::fs::create_dir_all(&etc).unwrap();
        ns.etc = Some(etc.clone());
        std::fs::write(etc.join("hosts"), hosts).unwrap();
        ns
    }

    /// `ip netns exec <ns> <bin> <args>` as a logged process (`RUST_LOG=info`).
    pub fn spawn(
        &self,
        name: &'static str,
        bin: &str,
        args: &[&str],
        env: &[(String, String)],
    ) -> Proc {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name, bin])
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info");
        Proc::start(name, command)
    }

    /// Runs `bin args` inside the namespace to completion; stdout, or a panic with stderr.
    pub fn run(&self, bin: &str, args: &[&str], env: &[(String, String)]) -> String {
        let mut all = vec!["netns", "exec", &self.name, bin];
        all.extend_from_slice(args);
        crate::process::run(std::path::Path::new("ip"), &all, env)
    }

    /// Runs `f` on a thread that has entered the namespace (its sockets are the namespace's).
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.enter_thread(f).join().unwrap()
    }

    /// Starts `f` on a thread that has entered the namespace; join the handle for its result.
    pub fn enter_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = PathBuf::from("/var/run/netns").join(&self.name);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap();
            // SAFETY: setns on a namespace file we opened; it changes only this thread's network.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }

    /// Kills every process inside (a crash of the whole host: SIGKILL, nothing flushed).
    pub fn kill_all(&self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: plain kill(2) of a process inside our own namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(&self.name);
        if let Some(etc) = &self.etc {
            let _ = std::fs::remove_dir_all(etc);
        }
    }
}

/// A host of a [`Lan`]: its namespace and address.
#[derive(Debug)]
pub struct Host {
    /// The host's namespace.
    pub ns: Netns,
    /// Its address on the LAN.
    pub addr: Ipv4Addr,
}

/// A private LAN of namespaces around a bridge (see the module docs). Hosts drop before the
/// bridge namespace (field order), so their veth ends go first.
#[derive(Debug)]
pub struct Lan {
    hosts: Vec<Host>,
    bridge: Netns,
    prefix: String,
    net: u8,
}

impl Lan {
    /// A LAN whose namespaces are named `<prefix><pid>-…` (keep `prefix` short and unique to the
    /// test: namespace names are bounded). Namespaces of this prefix whose test process is gone
    /// are removed first.
    pub fn new(prefix: &str) -> Self {
        Self::remove_stale(prefix);
        let pid = std::process::id();
        let prefix = format!("{prefix}{pid}-");
        let bridge = Netns::isolated(&format!("{prefix}br"));
        ip(&["-n", &bridge.name, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &bridge.name, "link", "set", "br0", "up"]);
        Self {
            hosts: Vec::new(),
            bridge,
            prefix,
            // Any /24 works (nothing routes here); vary it by pid for readable logs.
            net: 16 + (pid % 200) as u8,
        }
    }

    fn remove_stale(prefix: &str) {
        let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            let Some(rest) = name.strip_prefix(prefix) else {
                continue;
            };
            let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                let alive = PathBuf::from(format!("/proc/{pid}")).exists();
                if !alive {
                    remove(name);
                }
            }
        }
    }

    /// Adds host `name` (its namespace `<prefix>name`) to the LAN and returns its index.
    pub fn add_host(&mut self, name: &str) -> usize {
        let index = self.hosts.len();
        assert!(index < MAX_HOSTS, "at most {MAX_HOSTS} hosts");
        let ns = Netns::isolated(&format!("{}{name}", self.prefix));
        let addr = Ipv4Addr::new(10, self.net, 0, 2 + index as u8);
        let port = format!("v{index}");
        ip(&[
            "link",
            "add",
            "eth0",
            "netns",
            &ns.name,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            &self.bridge.name,
        ]);
        ip(&[
            "-n",
            &self.bridge.name,
            "link",
            "set",
            &port,
            "master",
            "br0",
        ]);
        ip(&["-n", &self.bridge.name, "link", "set", &port, "up"]);
        ip(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns.name, "link", "set", "eth0", "up"]);
        self.hosts.push(Host { ns, addr });
        index
    }

    /// Host `index`.
    pub fn host(&self, index: usize) -> &Host {
        &self.hosts[index]
    }
}
