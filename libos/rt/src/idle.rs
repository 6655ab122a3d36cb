//! What the runtime does while the app waits. Interrupts are off in the library OS, so a
//! component whose work arrives from outside (the network stack: ARP, handshakes, ACKs)
//! moves only when something polls it. Such a component registers its poll here, and
//! [`sleep`] and [`yield_now`] run it: an app that sleeps between socket calls still answers
//! the network. An app that computes for long without calling either does not.

use core::sync::atomic::{AtomicPtr, Ordering};
use core::time::Duration;

use crate::time;

/// Registered polls, as `fn()` pointers; null slots are free. Room for every component that
/// has one, with one to spare.
static POLLS: [AtomicPtr<()>; 2] = [const { AtomicPtr::new(core::ptr::null_mut()) }; 2];

/// Has [`sleep`] and [`yield_now`] call `poll`. Registering a poll twice keeps one; `false`
/// when every slot is taken (the poll then runs only inside its component's own calls).
/// `poll` must not block: it runs whenever the app waits, possibly while the component is
/// in the middle of a call of its own (it should then do nothing).
pub fn register(poll: fn()) -> bool {
    let wanted = poll as *mut ();
    POLLS.iter().any(|slot| {
        match slot.compare_exchange(
            core::ptr::null_mut(),
            wanted,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(current) => current == wanted,
        }
    })
}

/// Runs every registered poll once: the work a thread yielding to others would let happen.
pub fn yield_now() {
    for slot in &POLLS {
        let poll = slot.load(Ordering::Acquire);
        if !poll.is_null() {
            // SAFETY: only `register` stores into the slots, and it stores `fn()` pointers.
            let poll: fn() = unsafe { core::mem::transmute::<*mut (), fn()>(poll) };
            poll();
        }
    }
}

/// Waits `duration`, polling the registered components all along, like
/// `std::thread::sleep` with the network still served.
pub fn sleep(duration: Duration) {
    let deadline = time::now() + duration;
    loop {
        yield_now();
        if time::now() >= deadline {
            return;
        }
        core::hint::spin_loop();
    }
}
