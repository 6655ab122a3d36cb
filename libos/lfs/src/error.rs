//! littlefs's error codes as a Rust enum, and the device's own errors behind them.

use core::fmt;

use littlefs2_sys as ll;

/// What a device reported for a failed read, write or flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoError {
    /// The access lies (partly) past the end of the device.
    OutOfRange,
    /// The device refuses writes.
    ReadOnly,
    /// The device reported a failure.
    Device,
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoError::OutOfRange => "access past the end of the device",
            IoError::ReadOnly => "the device is read-only",
            IoError::Device => "the device reported an error",
        })
    }
}

/// What went wrong in a file-system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The device failed.
    Io(IoError),
    /// The device holds no littlefs, or a damaged one.
    Corrupt,
    NotFound,
    AlreadyExists,
    NotADirectory,
    IsADirectory,
    DirectoryNotEmpty,
    NoSpace,
    /// A name longer than [`crate::NAME_MAX`] bytes.
    NameTooLong,
    /// A file would grow past littlefs's 2 GiB, or the device has more than 2^32 blocks.
    TooLarge,
    /// The device has fewer than [`crate::MIN_BLOCKS`] blocks.
    TooSmall,
    /// A path with a NUL, an open without read or write, a seek before the start.
    InvalidInput,
    /// A cache or lookahead size littlefs cannot use.
    InvalidConfig,
    /// A file number that is not open.
    BadHandle,
    OutOfMemory,
}

impl Error {
    pub(crate) fn from_code(code: i32) -> Error {
        match code {
            ll::lfs_error_LFS_ERR_CORRUPT => Error::Corrupt,
            ll::lfs_error_LFS_ERR_NOENT => Error::NotFound,
            ll::lfs_error_LFS_ERR_EXIST => Error::AlreadyExists,
            ll::lfs_error_LFS_ERR_NOTDIR => Error::NotADirectory,
            ll::lfs_error_LFS_ERR_ISDIR => Error::IsADirectory,
            ll::lfs_error_LFS_ERR_NOTEMPTY => Error::DirectoryNotEmpty,
            ll::lfs_error_LFS_ERR_BADF => Error::BadHandle,
            ll::lfs_error_LFS_ERR_FBIG => Error::TooLarge,
            ll::lfs_error_LFS_ERR_INVAL => Error::InvalidInput,
            ll::lfs_error_LFS_ERR_NOSPC => Error::NoSpace,
            ll::lfs_error_LFS_ERR_NOMEM => Error::OutOfMemory,
            ll::lfs_error_LFS_ERR_NAMETOOLONG => Error::NameTooLong,
            ll::lfs_error_LFS_ERR_IO => Error::Io(IoError::Device),
            // No error of littlefs's: a size or count it returns as a signed value that a
            // damaged volume made negative (a file's recorded size of 2 GiB or more).
            _ => Error::Corrupt,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(io) => write!(f, "I/O error: {io}"),
            Error::Corrupt => {
                f.write_str("no valid littlefs on the device (unformatted or damaged)")
            }
            Error::NotFound => f.write_str("no such file or directory"),
            Error::AlreadyExists => f.write_str("already exists"),
            Error::NotADirectory => f.write_str("not a directory"),
            Error::IsADirectory => f.write_str("is a directory"),
            Error::DirectoryNotEmpty => f.write_str("directory not empty"),
            Error::NoSpace => f.write_str("no space left on the device"),
            Error::NameTooLong => f.write_str("file name too long"),
            Error::TooLarge => f.write_str("too large for littlefs"),
            Error::TooSmall => f.write_str("the device is too small for a file system"),
            Error::InvalidInput => f.write_str("invalid argument"),
            Error::InvalidConfig => f.write_str("invalid cache or lookahead size"),
            Error::BadHandle => f.write_str("file is not open"),
            Error::OutOfMemory => f.write_str("out of memory"),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_result_that_is_no_error_code_is_damage() {
        assert_eq!(Error::from_code(i32::MIN), Error::Corrupt);
        assert_eq!(Error::from_code(-0x7fff_0000), Error::Corrupt);
        assert_eq!(
            Error::from_code(ll::lfs_error_LFS_ERR_IO),
            Error::Io(IoError::Device)
        );
        assert_eq!(
            Error::from_code(ll::lfs_error_LFS_ERR_NOENT),
            Error::NotFound
        );
    }
}
