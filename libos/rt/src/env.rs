//! The app's arguments and environment: the manifest's `args` and `env` (and `cargo uniklink
//! run --arg/-e`), carried on the kernel command line as `uniklink.arg=` and `uniklink.env=`
//! words apart from everything else (`unik_platform::cmdline`). Read on each call, from the
//! line the loader left in place; nothing is parsed unless the app asks.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use unik_platform::cmdline;

use crate::cmdline::command_line;

/// A value as the runner encoded it; a word someone wrote by hand with a stray `%` keeps its
/// text as written.
fn decode(encoded: &[u8]) -> String {
    let bytes = cmdline::decode(encoded)
        .collect::<Result<Vec<u8>, _>>()
        .unwrap_or_else(|_| encoded.to_vec());
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// The arguments, in order (the manifest's `args`, then `run --arg`'s). Unlike a process's,
/// they do not start with a program name.
pub fn args() -> impl Iterator<Item = String> {
    cmdline::args(command_line()).map(decode)
}

/// Every variable with its value; for a name given more than once, the last value.
pub fn vars() -> impl Iterator<Item = (String, String)> {
    let pairs: Vec<(&[u8], &[u8])> = cmdline::env(command_line()).collect();
    let kept: Vec<(String, String)> = pairs
        .iter()
        .enumerate()
        .filter(|(at, (name, _))| !pairs[at + 1..].iter().any(|(n, _)| n == name))
        .map(|(_, (name, value))| (String::from_utf8_lossy(name).into_owned(), decode(value)))
        .collect();
    kept.into_iter()
}

/// Why [`var`] has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarError {
    NotPresent,
}

impl fmt::Display for VarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("environment variable not found")
    }
}

impl core::error::Error for VarError {}

/// The value of variable `name` (the last one given).
pub fn var(name: &str) -> Result<String, VarError> {
    cmdline::env(command_line())
        .filter(|(n, _)| *n == name.as_bytes())
        .last()
        .map(|(_, value)| decode(value))
        .ok_or(VarError::NotPresent)
}
