//! The serial console behind `print!`/`println!`.
//!
//! Lines end in a bare "\n": the console is read through a pipe (`cargo uniklink run`,
//! test harnesses), and a terminal in cooked mode adds the "\r" itself.
//!
//! There is no lock: the runtime is single-core and never enables interrupts, so nothing
//! can interleave with a write, and a panic in the middle of a line can still print.
//!
//! The console has no init: the UART works as the machine left it, and the first write turns
//! its FIFOs on (a boot error can always be printed, and an app that prints nothing before
//! `main` pays nothing for the console before it).

use core::fmt::{self, Write};

use crate::arch::serial;

/// A handle to the console; `core::fmt::Write` for `write!`.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        serial::write_bytes(s.as_bytes());
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    // Console::write_str never fails.
    let _ = Console.write_fmt(args);
}

#[doc(hidden)]
pub fn _print_line(args: fmt::Arguments<'_>) {
    let _ = Console.write_fmt(args);
    let _ = Console.write_str("\n");
}

/// Prints to the serial console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::console::_print(::core::format_args!($($arg)*))
    };
}

/// Prints a line to the serial console.
#[macro_export]
macro_rules! println {
    () => {
        $crate::console::_print_line(::core::format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::console::_print_line(::core::format_args!($($arg)*))
    };
}
