//! Absolute paths: normalised (`//`, `.` and `..` resolved) and split at mount points.

use alloc::string::String;
use alloc::vec::Vec;

use crate::{Error, Result};

/// `path` as `/a/b` (or `/`), with `.` and empty components dropped and `..` applied; a
/// relative path or a NUL is [`Error::InvalidInput`].
pub(crate) fn normalize(path: &str) -> Result<String> {
    if !path.starts_with('/') || path.contains('\0') {
        return Err(Error::InvalidInput);
    }
    let mut parts: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    if parts.is_empty() {
        return Ok(String::from("/"));
    }
    let mut out = String::with_capacity(path.len());
    for part in parts {
        out.push('/');
        out.push_str(part);
    }
    Ok(out)
}

/// The rest of normalised `path` inside `mount` (also normalised), as an absolute path of its
/// own, or `None` when `path` is not under `mount`.
pub(crate) fn strip_mount<'p>(path: &'p str, mount: &str) -> Option<&'p str> {
    if mount == "/" {
        return Some(path);
    }
    let rest = path.strip_prefix(mount)?;
    if rest.is_empty() {
        Some("/")
    } else if rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

/// The last component of a normalised path (empty for `/`).
pub(crate) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// `dir` and `name` joined.
pub(crate) fn join(dir: &str, name: &str) -> String {
    let mut out = String::from(dir);
    if !out.ends_with('/') {
        out.push('/');
    }
    out.push_str(name);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(normalize("/").unwrap(), "/");
        assert_eq!(normalize("//a/./b//c/").unwrap(), "/a/b/c");
        assert_eq!(normalize("/a/../../b").unwrap(), "/b");
        assert_eq!(normalize("a/b"), Err(Error::InvalidInput));
        assert_eq!(normalize("/a\0"), Err(Error::InvalidInput));
    }

    #[test]
    fn strips_mounts_at_component_boundaries() {
        assert_eq!(strip_mount("/data/x", "/data"), Some("/x"));
        assert_eq!(strip_mount("/data", "/data"), Some("/"));
        assert_eq!(strip_mount("/database", "/data"), None);
        assert_eq!(strip_mount("/x", "/"), Some("/x"));
        assert_eq!(file_name("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
