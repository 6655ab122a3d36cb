//! `unik::fs::Error`: every way a file call fails, as a value.

use core::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    NotFound,
    AlreadyExists,
    NotADirectory,
    IsADirectory,
    DirectoryNotEmpty,
    /// The path lies in the baked archive or on a read-only volume, or the file was opened
    /// without write access.
    ReadOnly,
    /// The file was opened without read access.
    WriteOnly,
    NoSpace,
    NameTooLong,
    /// Past littlefs's 2 GiB file size or the disk's 2^32 blocks.
    TooLarge,
    /// A relative path, a NUL in a path, an open with neither read nor write, a seek before
    /// the start.
    InvalidInput,
    /// `read_to_string` of a file that is not UTF-8.
    InvalidData,
    /// The volume's disk holds no file system or a damaged one: [`crate::format`] makes a new
    /// one.
    Corrupt,
    /// The volume's disk is not attached to the machine.
    NoDevice,
    /// The disk failed a request.
    Io,
    /// A rename from one volume to another, or to or from the baked archive.
    CrossesDevices,
    /// No volume is mounted there.
    NotMounted,
    /// A volume is mounted there already.
    AlreadyMounted,
    /// A write ended early (`write_all`).
    WriteZero,
    OutOfMemory,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::NotFound => "no such file or directory",
            Error::AlreadyExists => "already exists",
            Error::NotADirectory => "not a directory",
            Error::IsADirectory => "is a directory",
            Error::DirectoryNotEmpty => "directory not empty",
            Error::ReadOnly => "read-only",
            Error::WriteOnly => "not open for reading",
            Error::NoSpace => "no space left on the volume",
            Error::NameTooLong => "file name too long",
            Error::TooLarge => "file too large",
            Error::InvalidInput => "invalid argument",
            Error::InvalidData => "not valid UTF-8",
            Error::Corrupt => "the volume holds no file system or a damaged one",
            Error::NoDevice => "the volume's disk is not attached",
            Error::Io => "disk I/O error",
            Error::CrossesDevices => "rename across volumes",
            Error::NotMounted => "no volume is mounted there",
            Error::AlreadyMounted => "a volume is mounted there already",
            Error::WriteZero => "write ended early",
            Error::OutOfMemory => "out of memory",
        })
    }
}

impl core::error::Error for Error {}
