//! Deeper accept queues for QEMU's port forwards.
//!
//! QEMU's user networking (libslirp) listens on each forwarded host port with a backlog of
//! one. Connection attempts that arrive together overflow that queue: the host kernel drops
//! their handshakes (`ListenOverflows` in `nstat`), and each client then waits out TCP's
//! retransmission backoff, seconds or more than its timeout, before the guest sees anything
//! of it. A burst of 200 connections to httpd lost a third of them that way while the guest
//! sat idle (issue #19). The runner deepens those queues once QEMU has made its sockets: it
//! takes a duplicate of each listening socket from QEMU, its child (`pidfd_getfd`), and calls
//! `listen` on it again with `SOMAXCONN`, which changes the backlog of the one socket both
//! descriptors refer to. Best effort: where the kernel refuses (before Linux 5.6, or a ptrace
//! policy that forbids it), the forwards keep QEMU's backlog.
//!
//! A crate of its own because two launchers of QEMU need it: `cargo uniklink run`, and
//! `cargo xtask bench http --baseline linux`, which boots a Linux guest behind the same kind
//! of forward and must not be served by a shallower queue than the unikernel it is compared
//! with.

use std::thread;
use std::time::{Duration, Instant};

/// How long to look for QEMU's listening sockets; QEMU makes them before the guest starts.
const LOOK_FOR: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(5);

/// Deepens, from a thread of its own, the accept queues of the sockets QEMU (`pid`) listens
/// on for `host_ports`.
pub fn deepen_backlogs(pid: u32, host_ports: &[u16]) {
    if host_ports.is_empty() || !cfg!(target_os = "linux") {
        return;
    }
    let mut left: Vec<u16> = host_ports.to_vec();
    thread::spawn(move || {
        let until = Instant::now() + LOOK_FOR;
        while !left.is_empty() && Instant::now() < until {
            let listening = listening_inodes(&left);
            if !listening.is_empty() {
                for (port, fd) in qemu_fds(pid, &listening) {
                    if deepen(pid, fd) {
                        left.retain(|&p| p != port);
                    }
                }
            }
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return;
            }
            thread::sleep(POLL);
        }
    });
}

/// The socket inodes listening on any of `ports` (IPv4 and IPv6), with their ports.
fn listening_inodes(ports: &[u16]) -> Vec<(u16, u64)> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let port = local
                .rsplit_once(':')
                .and_then(|(_, port)| u16::from_str_radix(port, 16).ok());
            if *state == "0A"
                && let Some(port) = port
                && ports.contains(&port)
                && let Ok(inode) = inode.parse()
            {
                found.push((port, inode));
            }
        }
    }
    found
}

/// QEMU's descriptors for the sockets in `listening`, with their ports.
fn qemu_fds(pid: u32, listening: &[(u16, u64)]) -> Vec<(u16, i32)> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let target = std::fs::read_link(entry.path()).ok()?;
            let inode: u64 = target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()?;
            let port = listening.iter().find(|(_, i)| *i == inode)?.0;
            Some((port, entry.file_name().to_str()?.parse().ok()?))
        })
        .collect()
}

/// `listen(SOMAXCONN)` on a duplicate of QEMU's descriptor `fd`; whether it took.
#[cfg(target_os = "linux")]
fn deepen(pid: u32, fd: i32) -> bool {
    // SAFETY: plain system calls on descriptors this function opens and closes itself.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) as i32;
        if pidfd < 0 {
            return false;
        }
        let socket = libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) as i32;
        libc::close(pidfd);
        if socket < 0 {
            return false;
        }
        let deepened = libc::listen(socket, libc::SOMAXCONN) == 0;
        libc::close(socket);
        deepened
    }
}

#[cfg(not(target_os = "linux"))]
fn deepen(_pid: u32, _fd: i32) -> bool {
    false
}
