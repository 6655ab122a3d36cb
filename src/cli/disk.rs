//! `cargo uniklink disk`: the littlefs disk images that guest volumes live on, made and read
//! on the host.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use miette::{IntoDiagnostic, miette};
use uniklink::disk::{self, Disk, DiskError, Entry, FileType};
use uniklink_config::ByteSize;

/// Create, list, read and write the littlefs disk images of guest volumes.
#[derive(Debug, clap::Args)]
pub struct DiskArgs {
    #[command(subcommand)]
    command: DiskCommand,
}

#[derive(Debug, Subcommand)]
enum DiskCommand {
    /// Create an empty, formatted disk image (a sparse file).
    Create {
        /// The image file to create; it must not exist.
        #[arg(value_name = "IMAGE")]
        image: PathBuf,
        /// The disk's size: a multiple of 4KiB, at least 64KiB (e.g. 64MiB, 1GiB).
        #[arg(long, value_name = "SIZE")]
        size: ByteSize,
    },
    /// List a directory of an image: kind, size in bytes and name of each entry.
    Ls {
        #[arg(value_name = "IMAGE")]
        image: PathBuf,
        /// The directory (or file) in the image.
        #[arg(value_name = "PATH", default_value = "/")]
        path: String,
        /// List the directories below too, each entry by its path.
        #[arg(short = 'R', long)]
        recursive: bool,
    },
    /// Show how much of an image is in use.
    Df {
        #[arg(value_name = "IMAGE")]
        image: PathBuf,
    },
    /// Copy a file, or with -r a directory, out of an image.
    Get {
        #[arg(value_name = "IMAGE")]
        image: PathBuf,
        /// The file or directory in the image.
        #[arg(value_name = "GUEST_PATH")]
        guest_path: String,
        /// Where to write it: a file (replaced), a directory to put it in, or `-` (the
        /// default) for stdout; with -r a directory to create.
        #[arg(value_name = "HOST_PATH")]
        host_path: Option<PathBuf>,
        /// Copy a directory and everything in it.
        #[arg(short = 'r', long)]
        recursive: bool,
    },
    /// Copy a file, or with -r a directory's contents, into an image, creating the parent
    /// directories it needs.
    Put {
        #[arg(value_name = "IMAGE")]
        image: PathBuf,
        /// The file, or with -r the directory, to copy.
        #[arg(value_name = "HOST_PATH")]
        host_path: PathBuf,
        /// The file to write (replaced if it exists) or a directory to put it in; with -r the
        /// directory to copy into.
        #[arg(value_name = "GUEST_PATH")]
        guest_path: String,
        /// Copy a directory's files and directories, following symbolic links.
        #[arg(short = 'r', long)]
        recursive: bool,
    },
}

pub fn run(args: DiskArgs) -> miette::Result<ExitCode> {
    match args.command {
        DiskCommand::Create { image, size } => {
            disk::create(&image, size.bytes()).map_err(report)?
        }
        DiskCommand::Ls {
            image,
            path,
            recursive,
        } => ls(&image, &path, recursive)?,
        DiskCommand::Df { image } => df(&image)?,
        DiskCommand::Get {
            image,
            guest_path,
            host_path,
            recursive,
        } => get(&image, &guest_path, host_path.as_deref(), recursive)?,
        DiskCommand::Put {
            image,
            host_path,
            guest_path,
            recursive,
        } => put(&image, &host_path, &guest_path, recursive)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The library's errors carry their whole context (image, guest path, host path).
fn report(e: DiskError) -> miette::Report {
    miette!("{e}")
}

fn ls(image: &Path, path: &str, recursive: bool) -> miette::Result<()> {
    let mut disk = Disk::open(image, false).map_err(report)?;
    let entry = disk.metadata(path).map_err(report)?;
    let rows: Vec<(String, Entry)> = match (entry.kind, recursive) {
        (FileType::File, _) => vec![(entry.name.clone(), entry)],
        (FileType::Dir, false) => disk
            .list(path)
            .map_err(report)?
            .into_iter()
            .map(|entry| (entry.name.clone(), entry))
            .collect(),
        (FileType::Dir, true) => disk.walk(path).map_err(report)?,
    };
    disk.close().map_err(report)?;
    let mut text = String::new();
    for (name, entry) in rows {
        let (kind, len) = match entry.kind {
            FileType::Dir => ("dir", "-".to_owned()),
            FileType::File => ("file", entry.len.to_string()),
        };
        text.push_str(&format!("{kind:<4} {len:>12} {}\n", printable(&name)));
    }
    write_stdout(text.as_bytes())
}

/// `name` with control characters escaped (`\n`, `\u{1b}`): names come from the image, and a
/// terminal would act on them, or a newline would make one entry look like two.
fn printable(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() || c == '\\' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn df(image: &Path) -> miette::Result<()> {
    let mut disk = Disk::open(image, false).map_err(report)?;
    let usage = disk.usage().map_err(report)?;
    disk.close().map_err(report)?;
    let block = u64::from(usage.block_size);
    let text = format!(
        "{} used of {} ({} of {} blocks of {} bytes)\n",
        ByteSize(usage.used_blocks * block),
        ByteSize(usage.blocks * block),
        usage.used_blocks,
        usage.blocks,
        block
    );
    write_stdout(text.as_bytes())
}

fn get(image: &Path, guest: &str, host: Option<&Path>, recursive: bool) -> miette::Result<()> {
    let host = host.filter(|host| *host != Path::new("-"));
    if recursive && host.is_none() {
        return Err(miette!(
            help =
                "name the directory to create: cargo uniklink disk get -r IMAGE GUEST_DIR HOST_DIR",
            "a directory cannot go to stdout"
        ));
    }
    let mut disk = Disk::open(image, false).map_err(report)?;
    if !recursive && disk.metadata(guest).is_ok_and(|e| e.kind == FileType::Dir) {
        return Err(miette!(
            help = "copy a directory with -r",
            "{}: {guest} is a directory",
            image.display()
        ));
    }
    match (host, recursive) {
        (None, _) => write_stdout(&disk.get(guest).map_err(report)?)?,
        (Some(host), true) => disk.get_tree(guest, host).map_err(report)?,
        (Some(host), false) => {
            let target = match guest.rsplit('/').find(|name| !name.is_empty()) {
                Some(name) if host.is_dir() => host.join(name),
                _ => host.to_owned(),
            };
            disk.get_file(guest, &target).map_err(report)?;
        }
    }
    disk.close().map_err(report)
}

const NAME_THE_GUEST_FILE: &str =
    "name the guest file: cargo uniklink disk put IMAGE HOST_FILE GUEST_FILE";

fn put(image: &Path, host: &Path, guest: &str, recursive: bool) -> miette::Result<()> {
    if !recursive && host.is_dir() {
        return Err(miette!(
            help = "copy a directory with -r",
            "{} is a directory",
            host.display()
        ));
    }
    let mut disk = Disk::open(image, true).map_err(report)?;
    if recursive {
        disk.put_tree(host, guest).map_err(report)?;
    } else {
        let into_dir = guest.ends_with('/')
            || disk
                .metadata(guest)
                .is_ok_and(|entry| entry.kind == FileType::Dir);
        let target = if into_dir {
            let name = host.file_name().ok_or_else(|| {
                miette!(
                    help = NAME_THE_GUEST_FILE,
                    "{} names no file to put in {guest}",
                    host.display()
                )
            })?;
            let name = name.to_str().ok_or_else(|| {
                miette!(
                    help = NAME_THE_GUEST_FILE,
                    "{}: its name is not UTF-8, as guest names must be",
                    host.display()
                )
            })?;
            format!("{}/{name}", guest.trim_end_matches('/'))
        } else {
            guest.to_owned()
        };
        disk.put_file(host, &target).map_err(report)?;
    }
    disk.close().map_err(report)
}

/// Writes to stdout; a closed pipe (`| head`) is the reader's choice, not an error.
fn write_stdout(bytes: &[u8]) -> miette::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).into_diagnostic(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn listed_names_show_control_characters_escaped() {
        assert_eq!(printable("plain näme"), "plain näme");
        assert_eq!(printable("a\nb"), "a\\nb");
        assert_eq!(printable("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(printable("back\\slash"), "back\\\\slash");
    }
}
