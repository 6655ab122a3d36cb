//! The QEMU child process: started in a process group of its own, killed as a group, and
//! interrupted by Ctrl-C.
//!
//! QEMU runs in its own group so that the terminal's SIGINT reaches only us: QEMU treats
//! SIGINT as a clean shutdown and exits 0, which would read as "the guest exited 0". We catch
//! the signal instead, kill QEMU and report the interruption.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A QEMU process that is killed, with its whole group, if it is dropped while running.
#[derive(Debug)]
pub(crate) struct Qemu {
    child: Child,
    reaped: bool,
}

impl Qemu {
    pub(crate) fn spawn(mut command: Command) -> io::Result<Qemu> {
        command.process_group(0);
        // Drop and the signal paths cover every way we end except being killed outright;
        // the parent-death signal covers that one, so no QEMU outlives us.
        #[cfg(target_os = "linux")]
        // SAFETY: the closure runs in the child between fork and exec and only calls prctl,
        // which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(Qemu {
            child: command.spawn()?,
            reaped: false,
        })
    }

    pub(crate) fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        let status = self.child.try_wait()?;
        self.reaped |= status.is_some();
        Ok(status)
    }

    /// Kills the group and waits for QEMU, so that nothing is left running on return.
    pub(crate) fn kill(&mut self) -> io::Result<ExitStatus> {
        kill_group(self.child.id());
        let status = self.child.wait()?;
        self.reaped = true;
        Ok(status)
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if !self.reaped {
            kill_group(self.child.id());
            let _ = self.child.wait();
        }
    }
}

fn kill_group(leader: u32) {
    let Ok(pgid) = libc::pid_t::try_from(leader) else {
        return;
    };
    // SAFETY: killpg only sends a signal. The group is the one `spawn` created with QEMU as
    // its leader, and QEMU has not been reaped yet, so the id cannot have been reused.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
}

/// Whether Ctrl-C arrived while boots were running.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// How many boots are running; with none, Ctrl-C ends the process as it would by default.
static BOOTS: AtomicUsize = AtomicUsize::new(0);
static HANDLER: Once = Once::new();

/// Marks a boot as running for as long as it lives, so Ctrl-C interrupts the boot instead of
/// ending the process. A Ctrl-C interrupts every boot running at the time.
pub(crate) struct InterruptScope(());

impl InterruptScope {
    pub(crate) fn enter() -> InterruptScope {
        HANDLER.call_once(|| {
            // Failing means the embedding program installed its own handler first; Ctrl-C
            // is then that program's business and the boot simply cannot be interrupted.
            let _ = ctrlc::set_handler(|| {
                if BOOTS.load(Ordering::SeqCst) > 0 {
                    INTERRUPTED.store(true, Ordering::SeqCst);
                } else {
                    std::process::exit(130);
                }
            });
        });
        if BOOTS.fetch_add(1, Ordering::SeqCst) == 0 {
            INTERRUPTED.store(false, Ordering::SeqCst);
        }
        InterruptScope(())
    }

    pub(crate) fn interrupted(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}

impl Drop for InterruptScope {
    fn drop(&mut self) {
        BOOTS.fetch_sub(1, Ordering::SeqCst);
    }
}
