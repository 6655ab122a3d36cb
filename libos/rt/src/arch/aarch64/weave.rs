//! Weak defaults that uniklink's glue object overrides (see `crate::weave`).

use core::arch::global_asm;

global_asm!(
    ".section .text.uniklink_start,\"ax\",%progbits",
    ".weak uniklink_start",
    ".type uniklink_start,%function",
    "uniklink_start:",
    "    b unik_rt_conventional_start",
    ".size uniklink_start, . - uniklink_start",
    ".section .rodata.uniklink_report,\"a\",%progbits",
    ".balign 8",
    ".weak __uniklink_report_len",
    ".type __uniklink_report_len,%object",
    ".size __uniklink_report_len, 8",
    "__uniklink_report_len:",
    "    .quad 0",
    ".weak __uniklink_report",
    ".type __uniklink_report,%object",
    ".size __uniklink_report, 0",
    "__uniklink_report:",
    ".text",
);
