//! The file API over the baked archive and littlefs volumes on memory disks. The mount table
//! is one for the process, so every case runs in one test, in order.

extern crate std;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use unik_lfs::{BlockDevice, Config, Filesystem, IoError};

use crate::baked::tests::install;
use crate::volume::{LfsVolume, Params, add};
use crate::*;

struct Ram(Vec<u8>);

impl BlockDevice for Ram {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> core::result::Result<(), IoError> {
        let start = offset as usize;
        buf.copy_from_slice(&self.0[start..start + buf.len()]);
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> core::result::Result<(), IoError> {
        let start = offset as usize;
        self.0[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> core::result::Result<(), IoError> {
        Ok(())
    }
}

const PARAMS: Params = Params {
    config: Config {
        cache_size: 512,
        lookahead_size: 16,
        block_cycles: 0,
    },
    write_through: true,
    read_ahead: 0,
    block_cache: 0,
};

fn formatted() -> Ram {
    Filesystem::format(Ram(vec![0; 1 << 20]), PARAMS.config)
        .map_err(|(e, _)| e)
        .unwrap()
        .unmount()
        .unwrap()
}

fn names(dir: &str) -> Vec<String> {
    read_dir(dir)
        .unwrap()
        .into_iter()
        .map(|e| String::from(e.file_name()))
        .collect()
}

#[test]
fn the_file_api_over_baked_files_and_volumes() {
    vfs::reset();
    install(&[
        ("static", 0o040_755, b""),
        ("static/index.html", 0o100_644, b"<h1>hi</h1>"),
        ("static/empty", 0o100_644, b""),
        ("static/sub/deep.txt", 0o100_644, "ünï".as_bytes()),
    ]);

    // Baked files: read in place, never written.
    assert_eq!(read("/static/index.html").unwrap(), b"<h1>hi</h1>");
    assert_eq!(read("//static/./sub/../empty").unwrap(), b"");
    assert_eq!(read_to_string("/static/sub/deep.txt").unwrap(), "ünï");
    assert!(metadata("/static/sub").unwrap().is_dir());
    assert!(metadata("/static/index.html").unwrap().readonly());
    assert_eq!(names("/"), ["static"]);
    assert_eq!(names("/static"), ["empty", "index.html", "sub"]);
    assert_eq!(read("/static/missing"), Err(Error::NotFound));
    assert_eq!(read("static/index.html"), Err(Error::InvalidInput));
    assert_eq!(write("/static/new", b"x"), Err(Error::ReadOnly));
    assert_eq!(remove_file("/static/index.html"), Err(Error::ReadOnly));
    assert_eq!(File::open("/static").map(drop), Err(Error::IsADirectory));
    let mut file = File::open("/static/index.html").unwrap();
    assert_eq!(file.seek(SeekFrom::End(-5)).unwrap(), 6);
    let mut tail = [0u8; 16];
    assert_eq!(file.read(&mut tail).unwrap(), 5);
    assert_eq!(&tail[..5], b"</h1>");
    assert_eq!(file.write(b"x"), Err(Error::ReadOnly));

    // A volume: a littlefs on a memory disk, mounted at /data.
    assert_eq!(
        add("/data", LfsVolume::new(formatted(), false, PARAMS)),
        Ok(None)
    );
    assert_eq!(mounts(), ["/data"]);
    assert_eq!(names("/"), ["data", "static"]);
    create_dir_all("/data/a/b").unwrap();
    write("/data/a/b/f.txt", b"hello").unwrap();
    let mut file = OpenOptions::new()
        .append(true)
        .open("/data/a/b/f.txt")
        .unwrap();
    file.write_all(b", world").unwrap();
    file.sync_all().unwrap();
    assert_eq!(file.read(&mut tail), Err(Error::WriteOnly));
    drop(file);
    assert_eq!(read("/data/a/b/f.txt").unwrap(), b"hello, world");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/data/a/b/f.txt")
        .unwrap();
    file.set_len(5).unwrap();
    assert_eq!(file.metadata().unwrap().len(), 5);
    file.close().unwrap();
    rename("/data/a/b/f.txt", "/data/g.txt").unwrap();
    assert_eq!(names("/data"), ["a", "g.txt"]);
    assert_eq!(
        rename("/data/g.txt", "/static/g.txt"),
        Err(Error::CrossesDevices)
    );
    assert_eq!(remove_dir("/data/g.txt"), Err(Error::NotADirectory));
    assert_eq!(remove_file("/data/a"), Err(Error::IsADirectory));
    assert_eq!(remove_dir("/data/a"), Err(Error::DirectoryNotEmpty));
    remove_dir("/data/a/b").unwrap();
    remove_dir("/data/a").unwrap();
    assert_eq!(names("/data"), ["g.txt"]);
    assert_eq!(
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open("/data/g.txt")
            .map(drop),
        Err(Error::AlreadyExists)
    );
    assert_eq!(
        OpenOptions::new().open("/data/g.txt").map(drop),
        Err(Error::InvalidInput)
    );

    // A read-only volume refuses writes; an unformatted one reports Corrupt until formatted.
    assert_eq!(
        add("/ro", LfsVolume::new(formatted(), true, PARAMS)),
        Ok(None)
    );
    assert_eq!(write("/ro/x", b"x"), Err(Error::ReadOnly));
    assert_eq!(format("/ro"), Err(Error::ReadOnly));
    assert_eq!(
        add(
            "/blank",
            LfsVolume::new(Ram(vec![0; 1 << 20]), false, PARAMS)
        ),
        Ok(Some(Error::Corrupt))
    );
    assert_eq!(read_dir("/blank").map(drop), Err(Error::Corrupt));
    assert_eq!(write("/blank/x", b"x"), Err(Error::Corrupt));
    format("/blank").unwrap();
    write("/blank/x", b"x").unwrap();
    assert_eq!(format("/blank"), Err(Error::AlreadyMounted));
    assert_eq!(format("/nowhere"), Err(Error::NotMounted));
    assert_eq!(
        add("/data", LfsVolume::new(formatted(), false, PARAMS)),
        Err(Error::AlreadyMounted)
    );
    assert_eq!(
        add("/gone", LfsVolume::<Ram>::missing(false, PARAMS)),
        Ok(Some(Error::NoDevice))
    );
    assert_eq!(read("/gone/x"), Err(Error::NoDevice));
}
