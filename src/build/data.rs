//! What the manifest bakes into the image besides code, as one generated object linked with
//! the app: the archive of the `files` it lists and the table of its `volumes`.
//!
//! The archive is cpio "newc", the format Linux initramfs and Unikraft's initrd use and the
//! library OS reads in place: every directory an entry of its own, entries sorted by path,
//! names relative to `/`, and owner, group, timestamps and inode numbers fixed, so the same
//! files always give the same bytes. Each symbol the library OS reads comes with a weak empty
//! default there, so an image without baked files or volumes needs no object at all.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use object::write::{Object, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
};
use uniklink_config::{Arch, FileMapping, ResolvedConfig, Volume};

/// Why the baked files cannot be packed.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: only regular files and directories can be baked into the image", path.display())]
    Special { path: PathBuf },
    #[error("{}: file names baked into the image must be UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("{}: a symbolic link to a directory it is in (a loop)", path.display())]
    Loop { path: PathBuf },
    #[error("{}: {len} bytes is more than a baked file can hold (4 GiB)", path.display())]
    TooLarge { path: PathBuf, len: u64 },
    #[error("`{to}` is baked from both {} and {}", first.display(), second.display())]
    Collision {
        to: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("cannot write the baked-files archive: {0}")]
    Archive(#[source] std::io::Error),
    #[error("cannot write the generated data object: {0}")]
    Object(#[source] object::write::Error),
}

/// One archive entry: a directory, or a file and where its bytes are on the host.
#[derive(Debug)]
enum Node {
    Dir,
    File {
        from: PathBuf,
        len: u64,
        executable: bool,
    },
}

/// The files of `files` as a cpio archive; empty when there are none.
pub fn pack(files: &[FileMapping]) -> Result<Vec<u8>, DataError> {
    let mut tree: BTreeMap<String, (Node, PathBuf)> = BTreeMap::new();
    for mapping in files {
        let to = mapping.to.trim_start_matches('/');
        add_parents(&mut tree, to, &mapping.from);
        add(&mut tree, to, &mapping.from, &mut Vec::new())?;
    }
    if tree.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (ino, (name, (node, _))) in tree.iter().enumerate() {
        let builder = cpio::newc::Builder::new(name)
            .ino(ino as u32 + 1)
            .uid(0)
            .gid(0)
            .mtime(0);
        match node {
            Node::Dir => {
                builder
                    .mode(0o040_755)
                    .nlink(2)
                    .write(&mut out, 0)
                    .finish()
                    .map_err(DataError::Archive)?;
            }
            Node::File {
                from,
                len,
                executable,
            } => {
                let bytes = std::fs::read(from).map_err(|source| DataError::Read {
                    path: from.clone(),
                    source,
                })?;
                // The file changed while the build ran: pack what was seen, consistently.
                let bytes = &bytes[..bytes.len().min(*len as usize)];
                let mode = if *executable { 0o100_755 } else { 0o100_644 };
                let mut writer = builder
                    .mode(mode)
                    .nlink(1)
                    .write(&mut out, bytes.len() as u32);
                writer.write_all(bytes).map_err(DataError::Archive)?;
                writer.finish().map_err(DataError::Archive)?;
            }
        }
    }
    cpio::newc::trailer(&mut out).map_err(DataError::Archive)?;
    Ok(out)
}

/// The directories above `to` (relative), each an entry of its own.
fn add_parents(tree: &mut BTreeMap<String, (Node, PathBuf)>, to: &str, from: &Path) {
    let mut prefix = String::new();
    let parents = to.split('/').collect::<Vec<_>>();
    for part in &parents[..parents.len().saturating_sub(1)] {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        tree.entry(prefix.clone())
            .or_insert_with(|| (Node::Dir, from.to_path_buf()));
    }
}

/// `from` (a file, or a directory with everything below it) at relative path `to`.
/// Symbolic links are followed; `ancestors` are the directories (device, inode) being added,
/// to catch a link back to one of them, which would add the tree inside itself again and
/// again.
fn add(
    tree: &mut BTreeMap<String, (Node, PathBuf)>,
    to: &str,
    from: &Path,
    ancestors: &mut Vec<(u64, u64)>,
) -> Result<(), DataError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(from).map_err(|source| DataError::Read {
        path: from.to_path_buf(),
        source,
    })?;
    let node = if meta.is_dir() {
        Node::Dir
    } else if meta.is_file() {
        if meta.len() > u64::from(u32::MAX) {
            return Err(DataError::TooLarge {
                path: from.to_path_buf(),
                len: meta.len(),
            });
        }
        use std::os::unix::fs::PermissionsExt as _;
        Node::File {
            from: from.to_path_buf(),
            len: meta.len(),
            executable: meta.permissions().mode() & 0o111 != 0,
        }
    } else {
        return Err(DataError::Special {
            path: from.to_path_buf(),
        });
    };
    let is_dir = matches!(node, Node::Dir);
    if !to.is_empty() {
        match tree.get(to) {
            Some((Node::Dir, _)) if is_dir => {}
            Some((_, first)) => {
                return Err(DataError::Collision {
                    to: format!("/{to}"),
                    first: first.clone(),
                    second: from.to_path_buf(),
                });
            }
            None => {
                tree.insert(to.to_owned(), (node, from.to_path_buf()));
            }
        }
    }
    if is_dir {
        let id = (meta.dev(), meta.ino());
        if ancestors.contains(&id) {
            return Err(DataError::Loop {
                path: from.to_path_buf(),
            });
        }
        let mut children: Vec<PathBuf> = std::fs::read_dir(from)
            .and_then(|entries| entries.map(|e| e.map(|e| e.path())).collect())
            .map_err(|source| DataError::Read {
                path: from.to_path_buf(),
                source,
            })?;
        children.sort();
        for child in children {
            let name =
                child
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| DataError::NotUtf8 {
                        path: child.clone(),
                    })?;
            let child_to = if to.is_empty() {
                name.to_owned()
            } else {
                format!("{to}/{name}")
            };
            ancestors.push(id);
            let added = add(tree, &child_to, &child, ancestors);
            ancestors.pop();
            added?;
        }
    }
    Ok(())
}

/// The volume table the `fs` component mounts from: `name<TAB>mount<TAB>rw|ro` per line.
pub fn volume_table(volumes: &[Volume]) -> Vec<u8> {
    volumes
        .iter()
        .map(|v| {
            let mode = if v.readonly { "ro" } else { "rw" };
            format!("{}\t{}\t{mode}\n", v.name, v.mount)
        })
        .collect::<String>()
        .into_bytes()
}

/// The data object for `config` on `arch`, or `None` when the manifest bakes nothing.
pub fn object(config: &ResolvedConfig, arch: Arch) -> Result<Option<Vec<u8>>, DataError> {
    let files = pack(&config.files)?;
    let volumes = volume_table(&config.volumes);
    if files.is_empty() && volumes.is_empty() {
        return Ok(None);
    }
    let architecture = match arch {
        Arch::X86_64 => Architecture::X86_64,
        Arch::Aarch64 => Architecture::Aarch64,
    };
    let mut obj = Object::new(BinaryFormat::Elf, architecture, Endianness::Little);
    for (name, bytes) in [("__uniklink_files", files), ("__uniklink_volumes", volumes)] {
        if bytes.is_empty() {
            continue;
        }
        let size = (bytes.len() as u64).to_le_bytes();
        define(&mut obj, name, &bytes, 4);
        define(&mut obj, &format!("{name}_size"), &size, 8);
    }
    obj.write().map(Some).map_err(DataError::Object)
}

/// A global data symbol `name` in a section of its own (`.rodata.<name>`), so section GC
/// keeps it exactly when the library OS reads it.
fn define(obj: &mut Object<'_>, name: &str, bytes: &[u8], align: u64) {
    let section = obj.add_section(
        Vec::new(),
        format!(".rodata.{name}").into_bytes(),
        SectionKind::ReadOnlyData,
    );
    let offset = obj.append_section_data(section, bytes, align);
    obj.add_symbol(Symbol {
        name: name.as_bytes().to_vec(),
        value: offset,
        size: bytes.len() as u64,
        kind: SymbolKind::Data,
        scope: SymbolScope::Linkage,
        weak: false,
        section: SymbolSection::Section(section),
        flags: SymbolFlags::None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(from: &Path, to: &str) -> FileMapping {
        FileMapping {
            from: from.to_path_buf(),
            to: to.to_owned(),
        }
    }

    /// (name, mode, data) of every entry, the trailer left out.
    fn entries(archive: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut reader = archive;
        loop {
            let mut entry = cpio::NewcReader::new(reader).unwrap();
            if entry.entry().is_trailer() {
                return out;
            }
            let (name, mode) = (entry.entry().name().to_owned(), entry.entry().mode());
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            out.push((name, mode, data));
            reader = entry.finish().unwrap();
        }
    }

    #[test]
    fn trees_pack_sorted_with_parents_and_fixed_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        std::fs::create_dir_all(site.join("b/c")).unwrap();
        std::fs::write(site.join("b/c/deep.txt"), "deep").unwrap();
        std::fs::write(site.join("a.html"), "<a>").unwrap();
        std::fs::write(site.join("empty"), "").unwrap();
        std::fs::write(dir.path().join("ünï.txt"), "x").unwrap();
        let files = [
            mapping(&site, "/srv/www"),
            mapping(&dir.path().join("ünï.txt"), "/etc/ünï.txt"),
        ];
        let archive = pack(&files).unwrap();
        let names: Vec<(String, u32)> = entries(&archive)
            .into_iter()
            .map(|(name, mode, _)| (name, mode))
            .collect();
        assert_eq!(
            names,
            [
                ("etc".to_owned(), 0o040_755),
                ("etc/ünï.txt".to_owned(), 0o100_644),
                ("srv".to_owned(), 0o040_755),
                ("srv/www".to_owned(), 0o040_755),
                ("srv/www/a.html".to_owned(), 0o100_644),
                ("srv/www/b".to_owned(), 0o040_755),
                ("srv/www/b/c".to_owned(), 0o040_755),
                ("srv/www/b/c/deep.txt".to_owned(), 0o100_644),
                ("srv/www/empty".to_owned(), 0o100_644),
            ]
        );
        assert_eq!(entries(&archive)[7].2, b"deep");
        // Timestamps do not enter it: touching a file changes nothing.
        std::fs::write(site.join("a.html"), "<a>").unwrap();
        assert_eq!(pack(&files).unwrap(), archive);
    }

    #[test]
    fn nothing_to_bake_is_no_object() {
        let config = uniklink_config::Manifest::from_text(
            Path::new("/m/uniklink.yaml"),
            "name: t\napp: {package: t}\n",
            &uniklink_config::ComponentRegistry::builtin(),
        )
        .unwrap()
        .resolve();
        assert!(object(&config, Arch::X86_64).unwrap().is_none());
    }

    #[test]
    fn missing_special_and_colliding_inputs_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = pack(&[mapping(&missing, "/x")]).unwrap_err();
        assert!(
            err.to_string().starts_with(&missing.display().to_string()),
            "{err}"
        );

        let err = pack(&[mapping(Path::new("/dev/null"), "/null")]).unwrap_err();
        assert!(matches!(err, DataError::Special { .. }), "{err}");

        // Two links back up: followed, they made 2^40 entries before the kernel's limit on
        // nested links stopped the walk.
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::os::unix::fs::symlink("..", tree.join("sub/up")).unwrap();
        std::os::unix::fs::symlink(".", tree.join("here")).unwrap();
        let err = pack(&[mapping(&tree, "/tree")]).unwrap_err();
        assert!(
            matches!(err, DataError::Loop { .. })
                && err
                    .to_string()
                    .ends_with("a symbolic link to a directory it is in (a loop)"),
            "{err}"
        );

        std::fs::write(dir.path().join("a"), "a").unwrap();
        std::fs::write(dir.path().join("b"), "b").unwrap();
        let err = pack(&[
            mapping(&dir.path().join("a"), "/same"),
            mapping(&dir.path().join("b"), "/same"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("`/same` is baked from both"),
            "{err}"
        );
    }

    #[test]
    fn the_volume_table_has_a_line_per_volume() {
        let volume = |name: &str, mount: &str, readonly| Volume {
            name: name.to_owned(),
            image: PathBuf::from("x.img"),
            size: uniklink_config::ByteSize(1 << 20),
            mount: mount.to_owned(),
            readonly,
        };
        assert_eq!(
            volume_table(&[
                volume("data", "/data", false),
                volume("cfg", "/etc/cfg", true)
            ]),
            b"data\t/data\trw\ncfg\t/etc/cfg\tro\n"
        );
    }
}
