extern crate std;

use std::string::String;
use std::vec;
use std::vec::Vec;

use super::*;

/// A disk in memory that can fail writes after a budget, and that records reads and flushes.
struct Ram {
    bytes: Vec<u8>,
    writes_left: Option<usize>,
    reads: usize,
    flushes: usize,
}

impl Ram {
    fn new(size: usize) -> Ram {
        Ram {
            bytes: vec![0; size],
            writes_left: None,
            reads: 0,
            flushes: 0,
        }
    }

    fn range(&self, offset: u64, len: usize) -> Result<core::ops::Range<usize>, IoError> {
        assert_eq!(
            offset % u64::from(SECTOR_SIZE),
            0,
            "unaligned offset {offset}"
        );
        assert_eq!(len % SECTOR_SIZE as usize, 0, "unaligned length {len}");
        let start = usize::try_from(offset).map_err(|_| IoError::OutOfRange)?;
        let end = start.checked_add(len).ok_or(IoError::OutOfRange)?;
        if end > self.bytes.len() {
            return Err(IoError::OutOfRange);
        }
        Ok(start..end)
    }
}

impl BlockDevice for Ram {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.reads += 1;
        let range = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.bytes[range]);
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), IoError> {
        if let Some(left) = &mut self.writes_left {
            if *left == 0 {
                return Err(IoError::Device);
            }
            *left -= 1;
        }
        let range = self.range(offset, data.len())?;
        self.bytes[range].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IoError> {
        self.flushes += 1;
        Ok(())
    }
}

const MIB: usize = 1 << 20;

fn fresh() -> Filesystem<Ram> {
    Filesystem::format(Ram::new(MIB), Config::default())
        .map_err(|(e, _)| e)
        .unwrap()
}

fn write_file(fs: &mut Filesystem<Ram>, path: &str, data: &[u8]) {
    let file = fs
        .open(
            path,
            OpenFlags {
                write: true,
                create: true,
                truncate: true,
                ..OpenFlags::default()
            },
        )
        .unwrap();
    assert_eq!(fs.write(file, data).unwrap(), data.len());
    fs.close(file).unwrap();
}

/// The names a listing of `path` gives.
fn names(fs: &mut Filesystem<Ram>, path: &str) -> Vec<String> {
    let entries = fs.read_dir(path).unwrap();
    entries.into_iter().map(|e| e.name).collect()
}

fn read_file(fs: &mut Filesystem<Ram>, path: &str) -> Result<Vec<u8>, Error> {
    let file = fs.open(
        path,
        OpenFlags {
            read: true,
            ..OpenFlags::default()
        },
    )?;
    let mut out = Vec::new();
    let mut buf = [0u8; 777];
    loop {
        let n = fs.read(file, &mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    fs.close(file)?;
    Ok(out)
}

#[test]
fn files_survive_unmount_and_mount() {
    let mut fs = fresh();
    fs.create_dir("/a").unwrap();
    fs.create_dir("/a/b").unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    write_file(&mut fs, "/a/b/big.bin", &big);
    write_file(&mut fs, "/empty", b"");
    write_file(&mut fs, "/ünïcødé.txt", "grüße".as_bytes());
    let device = fs.unmount().unwrap();

    let mut fs = Filesystem::mount(device, Config::default())
        .map_err(|(e, _)| e)
        .unwrap();
    assert_eq!(read_file(&mut fs, "/a/b/big.bin").unwrap(), big);
    assert_eq!(read_file(&mut fs, "/empty").unwrap(), b"");
    assert_eq!(
        read_file(&mut fs, "/ünïcødé.txt").unwrap(),
        "grüße".as_bytes()
    );
    let names: Vec<_> = fs
        .read_dir("/")
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.metadata))
        .collect();
    assert_eq!(
        names,
        [
            (
                "a".into(),
                Metadata {
                    file_type: FileType::Dir,
                    len: 0
                }
            ),
            (
                "empty".into(),
                Metadata {
                    file_type: FileType::File,
                    len: 0
                }
            ),
            (
                "ünïcødé.txt".into(),
                Metadata {
                    file_type: FileType::File,
                    len: 7
                }
            ),
        ]
    );
}

#[test]
fn seek_set_len_rename_remove() {
    let mut fs = fresh();
    write_file(&mut fs, "/f", b"0123456789");
    let rw = OpenFlags {
        read: true,
        write: true,
        ..OpenFlags::default()
    };
    let file = fs.open("/f", rw).unwrap();
    assert_eq!(fs.seek(file, SeekFrom::End(-3)).unwrap(), 7);
    fs.write(file, b"xy").unwrap();
    fs.set_len(file, 12).unwrap();
    assert_eq!(fs.len(file).unwrap(), 12);
    fs.close(file).unwrap();
    assert_eq!(read_file(&mut fs, "/f").unwrap(), b"0123456xy9\0\0");

    fs.rename("/f", "/g").unwrap();
    assert_eq!(read_file(&mut fs, "/f"), Err(Error::NotFound));
    fs.create_dir("/d").unwrap();
    write_file(&mut fs, "/d/x", b"x");
    assert_eq!(fs.remove("/d"), Err(Error::DirectoryNotEmpty));
    assert_eq!(fs.create_dir("/d"), Err(Error::AlreadyExists));
    assert_eq!(
        fs.open(
            "/g",
            OpenFlags {
                write: true,
                create_new: true,
                ..OpenFlags::default()
            }
        )
        .map(drop),
        Err(Error::AlreadyExists)
    );
    fs.remove("/d/x").unwrap();
    fs.remove("/d").unwrap();
    assert_eq!(fs.metadata("/d"), Err(Error::NotFound));
    assert_eq!(fs.metadata("/g").unwrap().len, 12);
}

#[test]
fn bad_arguments_are_errors() {
    let mut fs = fresh();
    assert_eq!(fs.metadata("/a\0b"), Err(Error::InvalidInput));
    let long = String::from("/") + &"n".repeat(NAME_MAX + 1);
    assert_eq!(fs.create_dir(&long), Err(Error::NameTooLong));
    assert_eq!(fs.close(FileId(3)), Err(Error::BadHandle));
    assert_eq!(
        fs.open("/x", OpenFlags::default()).map(drop),
        Err(Error::InvalidInput)
    );
    let file = fs
        .open(
            "/x",
            OpenFlags {
                write: true,
                create: true,
                ..OpenFlags::default()
            },
        )
        .unwrap();
    fs.close(file).unwrap();
    assert_eq!(fs.close(file), Err(Error::BadHandle));
}

#[test]
fn unformatted_and_damaged_devices_do_not_mount() {
    let zeros = Filesystem::mount(Ram::new(MIB), Config::default());
    assert_eq!(zeros.err().map(|(e, _)| e), Some(Error::Corrupt));

    let mut noise = Ram::new(MIB);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for byte in &mut noise.bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    let noise = Filesystem::mount(noise, Config::default());
    assert_eq!(noise.err().map(|(e, _)| e), Some(Error::Corrupt));

    // The superblock pair zeroed on a formatted device.
    let mut device = fresh().unmount().unwrap();
    device.bytes[..2 * BLOCK_SIZE as usize].fill(0);
    let zeroed = Filesystem::mount(device, Config::default());
    assert_eq!(zeroed.err().map(|(e, _)| e), Some(Error::Corrupt));

    let tiny = Filesystem::format(Ram::new(8 * BLOCK_SIZE as usize), Config::default());
    assert_eq!(tiny.err().map(|(e, _)| e), Some(Error::TooSmall));
}

#[test]
fn a_formatted_device_truncated_does_not_mount_or_panic() {
    let mut fs = fresh();
    write_file(&mut fs, "/f", &[7; 100_000]);
    let mut device = fs.unmount().unwrap();
    device.bytes.truncate(MIB / 4);
    if let Ok(mut fs) = Filesystem::mount(device, Config::default()) {
        // littlefs may find a consistent state in what is left; reading it must not panic.
        let _ = read_file(&mut fs, "/f");
    }
}

#[test]
fn a_full_disk_and_a_failing_device_are_errors() {
    let mut fs = Filesystem::format(Ram::new(64 * 1024), Config::default())
        .map_err(|(e, _)| e)
        .unwrap();
    let file = fs
        .open(
            "/big",
            OpenFlags {
                write: true,
                create: true,
                ..OpenFlags::default()
            },
        )
        .unwrap();
    let chunk = [1u8; 4096];
    let result = (0..64).try_for_each(|_| fs.write(file, &chunk).map(drop));
    assert_eq!(result, Err(Error::NoSpace));
    let _ = fs.close(file);
    // Still usable after the failure.
    assert!(fs.read_dir("/").is_ok());

    let mut fs = fresh();
    fs.context.device.writes_left = Some(0);
    assert_eq!(fs.create_dir("/d"), Err(Error::Io(IoError::Device)));
}

#[test]
fn configs_littlefs_cannot_use_are_refused() {
    for config in [
        Config {
            cache_size: 100,
            ..Config::default()
        },
        Config {
            cache_size: 8192,
            ..Config::default()
        },
        Config {
            lookahead_size: 12,
            ..Config::default()
        },
    ] {
        let result = Filesystem::format(Ram::new(MIB), config);
        assert_eq!(result.err().map(|(e, _)| e), Some(Error::InvalidConfig));
    }
}

/// Power loss at every write of a sequence of synced appends: whatever survives mounts, and
/// holds every record whose sync returned, intact, and no torn record.
#[test]
fn power_loss_at_any_write_keeps_every_synced_record() {
    let record = |i: u32| {
        let mut r = [0u8; 64];
        r[..4].copy_from_slice(&i.to_le_bytes());
        r[4..].fill(i as u8);
        r
    };
    let base = fresh().unmount().unwrap();
    for cut in (0..120).step_by(3) {
        let mut device = Ram::new(MIB);
        device.bytes.copy_from_slice(&base.bytes);
        device.writes_left = Some(cut);
        let mut fs = Filesystem::mount(device, Config::default())
            .map_err(|(e, _)| e)
            .unwrap();
        let mut synced = 0;
        let append = OpenFlags {
            write: true,
            create: true,
            append: true,
            ..OpenFlags::default()
        };
        if let Ok(file) = fs.open("/log", append) {
            for i in 0..40 {
                if fs.write(file, &record(i)).is_err() || fs.sync(file).is_err() {
                    break;
                }
                synced = i + 1;
            }
        }
        // The power goes: drop everything littlefs held in memory.
        let mut device = fs.into_device();
        device.writes_left = None;
        let mut fs = Filesystem::mount(device, Config::default())
            .map_err(|(e, _)| e)
            .unwrap();
        let log = read_file(&mut fs, "/log").unwrap_or_default();
        assert_eq!(log.len() % 64, 0, "torn record after cut {cut}");
        let found = (log.len() / 64) as u32;
        assert!(
            found >= synced,
            "cut {cut}: {found} records, {synced} synced"
        );
        for (i, chunk) in log.chunks(64).enumerate() {
            assert_eq!(chunk, record(i as u32), "cut {cut}: record {i}");
        }
    }
}

/// The configuration `cargo uniklink disk` gives a small image: a whole block of cache.
const HOST_16_BLOCKS: Config = Config {
    cache_size: BLOCK_SIZE,
    lookahead_size: 8,
    block_cycles: 0,
};

/// An image the `volume` fuzz target found (`fixtures/disk/fuzz-orphan-loop.img`, 16 blocks):
/// valid commits whose global state claims orphans that littlefs's repair (`lfs_fs_deorphan`,
/// run before the first change) never finishes fixing, so creating a directory went round
/// forever. The per-call budget of device accesses stops it as a damaged volume.
#[test]
fn a_repair_that_never_ends_is_stopped_as_damage() {
    let image = include_bytes!("../../../fixtures/disk/fuzz-orphan-loop.img");
    let mut ram = Ram::new(image.len());
    ram.bytes.copy_from_slice(image);
    // The host's configuration, where it looped.
    let mut fs = Filesystem::mount(ram, HOST_16_BLOCKS)
        .map_err(|(e, _)| e)
        .unwrap();
    assert_eq!(fs.create_dir("/new"), Err(Error::Corrupt));
    assert!(fs.read_dir("/").is_ok(), "the volume still lists");
}

/// An image the `volume` fuzz target found (`fixtures/disk/fuzz-listing-cycle.img`, 16
/// blocks): `/var/empty`'s pair continues (a split tail) into a chain that leads back to
/// itself, so its listing handed out the same entries again, each step within its budget of
/// device accesses, until the cap on entries (24 s). The listing stops where the chain
/// returns, with both the guest's cache and the host's.
#[test]
fn a_directory_whose_pairs_form_a_cycle_is_damage() {
    let image = include_bytes!("../../../fixtures/disk/fuzz-listing-cycle.img");
    for config in [Config::default(), HOST_16_BLOCKS] {
        let mut ram = Ram::new(image.len());
        ram.bytes.copy_from_slice(image);
        let mut fs = Filesystem::mount(ram, config).map_err(|(e, _)| e).unwrap();
        assert_eq!(names(&mut fs, "/var"), ["empty"]);
        let before = fs.device().reads;
        assert_eq!(fs.read_dir("/var/empty"), Err(Error::Corrupt));
        // At most every sector of the disk twice (it read 16,395 and 32,792 sectors before).
        let reads = fs.device().reads - before;
        assert!(reads <= 2 * 16 * 8, "{reads} reads");
    }
}

/// A lookup walks each directory's chain of pairs, and in the cycling directory of
/// `fuzz-listing-cycle.img` it goes round until its allowance runs out. Looking up, opening
/// to read, and the walk before a change get a listing step's allowance, which grows with
/// the volume, not a repair's, which grows with its square (about an hour on a 64 MiB image,
/// weeks on 1 GiB): each stops within the smaller one.
#[test]
fn a_lookup_round_a_cycle_of_pairs_stops_within_the_lookup_allowance() {
    let image = include_bytes!("../../../fixtures/disk/fuzz-listing-cycle.img");
    let mut ram = Ram::new(image.len());
    ram.bytes.copy_from_slice(image);
    let mut fs = Filesystem::mount(ram, HOST_16_BLOCKS)
        .map_err(|(e, _)| e)
        .unwrap();
    let allowance = fs.budget.listing;
    assert!(allowance < fs.budget.base / 4, "{:?}", fs.budget);
    let read = OpenFlags {
        read: true,
        ..OpenFlags::default()
    };
    let create = OpenFlags {
        write: true,
        create: true,
        ..OpenFlags::default()
    };
    type Call<'a> = &'a dyn Fn(&mut Filesystem<Ram>) -> Result<(), Error>;
    let calls: [(&str, Call); 5] = [
        ("metadata", &|fs| {
            fs.metadata("/var/empty/missing").map(drop)
        }),
        ("open to read", &|fs| {
            fs.open("/var/empty/missing", read).map(drop)
        }),
        ("open to create", &|fs| {
            fs.open("/var/empty/new", create).map(drop)
        }),
        ("create_dir", &|fs| fs.create_dir("/var/empty/new")),
        ("remove", &|fs| fs.remove("/var/empty/missing")),
    ];
    for (what, call) in calls {
        let before = fs.device().reads;
        assert_eq!(call(&mut fs), Err(Error::Corrupt), "{what}");
        let reads = fs.device().reads - before;
        assert!(
            reads as u64 <= allowance,
            "{what}: {reads} reads, allowance {allowance}"
        );
    }
}

/// A directory of many entries spans a chain of pairs; listing it stays within the budget of
/// a listing step with both caches, after the files are written and after a remount.
#[test]
fn a_directory_over_several_pairs_lists_completely() {
    for config in [Config::default(), HOST_16_BLOCKS] {
        let mut fs = Filesystem::format(Ram::new(64 * BLOCK_SIZE as usize), config)
            .map_err(|(e, _)| e)
            .unwrap();
        fs.create_dir("/many").unwrap();
        let expected: Vec<String> = (0..400).map(|i| std::format!("entry-{i:04}")).collect();
        for name in &expected {
            write_file(&mut fs, &std::format!("/many/{name}"), name.as_bytes());
        }
        assert_eq!(names(&mut fs, "/many"), expected);
        let ram = fs.unmount().unwrap();
        let mut fs = Filesystem::mount(ram, config).map_err(|(e, _)| e).unwrap();
        assert_eq!(names(&mut fs, "/many"), expected);
    }
}

/// Where a listing may go next, checked on littlefs's directory state as it stands between
/// steps: a valid chain of pairs, then each way a damaged one goes round.
#[test]
fn a_listing_follows_a_chain_of_pairs_only_forwards() {
    let at = |pair: [u32; 2], id: u16, tail: Option<[u32; 2]>| ll::lfs_dir_t {
        id,
        m: ll::lfs_mdir_t {
            pair,
            split: tail.is_some(),
            tail: tail.unwrap_or([u32::MAX; 2]),
            ..Default::default()
        },
        ..Default::default()
    };
    let walk = |steps: &[ll::lfs_dir_t]| -> Result<(), Error> {
        let mut pairs = SplitPairs::default();
        steps.iter().try_for_each(|dir| pairs.visit(dir))
    };
    // Opened, ".", "..", two entries, on into the next pair (littlefs may swap a pair's
    // blocks when it fetches it), one entry there, the end.
    let valid = [
        at([2, 3], 0, Some([5, 4])),
        at([2, 3], 0, Some([5, 4])),
        at([2, 3], 0, Some([5, 4])),
        at([2, 3], 1, Some([5, 4])),
        at([2, 3], 2, Some([5, 4])),
        at([4, 5], 1, None),
    ];
    assert_eq!(walk(&valid), Ok(()));
    // A pair that is its own tail, refused before littlefs follows it.
    assert_eq!(walk(&[at([2, 3], 0, Some([3, 2]))]), Err(Error::Corrupt));
    // A tail into a block of a pair listed before.
    assert_eq!(
        walk(&[at([2, 3], 0, Some([4, 5])), at([4, 5], 1, Some([6, 2]))]),
        Err(Error::Corrupt)
    );
    // A pair of two equal blocks.
    assert_eq!(walk(&[at([7, 7], 0, None)]), Err(Error::Corrupt));
    // Back to a pair listed before (tails not split, as a later fetch may report).
    assert_eq!(
        walk(&[
            at([2, 3], 1, None),
            at([4, 5], 1, None),
            at([3, 2], 1, None)
        ]),
        Err(Error::Corrupt)
    );
    // The same pair again from its start: the id went back.
    assert_eq!(
        walk(&[at([2, 3], 2, None), at([2, 3], 1, None)]),
        Err(Error::Corrupt)
    );
}

/// Makes every tag of `block`'s commits that names the pair `from` name `to` instead, and the
/// commits' CRCs match again.
fn rename_pair(block: &mut [u8], from: [u32; 2], to: [u32; 2]) {
    let naming: Vec<_> = pairs::tags(block)
        .filter(|t| t.kind == pairs::TYPE_DIRSTRUCT || t.kind & 0x700 == pairs::CLASS_TAIL)
        .map(|t| t.data)
        .collect();
    for data in naming {
        if block[data.clone()] == pair(from[0], from[1]) {
            block[data].copy_from_slice(&pair(to[0], to[1]));
        }
    }
    let closing: Vec<_> = pairs::tags(block)
        .filter(|t| t.kind & 0x780 == pairs::TYPE_CCRC)
        .map(|t| (t.data.start, t.crc))
        .collect();
    for (at, crc) in closing {
        block[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// littlefs never writes a pair of two equal blocks; on a damaged volume one that is its own
/// tail sends littlefs round inside one call with no device access, out of any budget's reach
/// (littlefs's issue #624). The walk before mounting reads the pairs littlefs wrote (here the
/// root's, which names a directory's pair twice: its entry and the tail that threads it) and
/// refuses a volume naming a pair of equal blocks.
#[test]
fn a_pair_of_two_equal_blocks_does_not_mount() {
    let mut fs = fresh();
    fs.create_dir("/d").unwrap();
    let ram = fs.unmount().unwrap();
    let block = BLOCK_SIZE as usize;
    let named: Vec<[u32; 2]> = (0..2)
        .flat_map(|b| pairs::named_pairs(&ram.bytes[b * block..(b + 1) * block]))
        .filter(|n| n.as_pair)
        .map(|n| n.pair)
        .collect();
    let dir = *named
        .iter()
        .find(|&&pair| pair != [0, 1] && pair != [u32::MAX; 2])
        .expect("the root names the directory's pair");
    assert!(
        named.iter().filter(|&&pair| pair == dir).count() >= 2,
        "{named:?}"
    );
    let reads = ram.reads;
    let fs = Filesystem::mount(ram, Config::default())
        .map_err(|(e, _)| e)
        .unwrap();
    let mut ram = fs.unmount().unwrap();
    assert!(ram.reads > reads);

    for b in 0..2 {
        rename_pair(
            &mut ram.bytes[b * block..(b + 1) * block],
            dir,
            [dir[0], dir[0]],
        );
    }
    match Filesystem::mount(ram, Config::default()) {
        Err((e, _)) => assert_eq!(e, Error::Corrupt),
        Ok(_) => panic!("a volume naming a pair of equal blocks mounted"),
    }
}

/// Removing a directory leaves its predecessor's tail null (both blocks all ones), which is
/// no pair of equal blocks: the volume mounts.
#[test]
fn the_null_tail_a_removed_directory_leaves_is_no_pair() {
    let mut fs = fresh();
    for dir in ["/a", "/b", "/c"] {
        fs.create_dir(dir).unwrap();
    }
    fs.remove("/c").unwrap();
    fs.remove("/a").unwrap();
    let ram = fs.unmount().unwrap();
    let block = BLOCK_SIZE as usize;
    let null_tails = (0..ram.bytes.len() / block)
        .flat_map(|b| pairs::named_pairs(&ram.bytes[b * block..(b + 1) * block]))
        .filter(|n| n.pair == [u32::MAX; 2])
        .count();
    assert!(null_tails > 0);
    let mut fs = Filesystem::mount(ram, Config::default())
        .map_err(|(e, _)| e)
        .unwrap();
    assert_eq!(names(&mut fs, "/"), ["b"]);
}

/// A commit's tags (type, data) and the size its CRC tag states.
type Commit<'a> = (&'a [(u32, &'a [u8])], u32);

/// A metadata block of `commits`, with every CRC right; the rest of the block zeros.
fn metadata_block(commits: &[Commit<'_>]) -> Vec<u8> {
    let mut block = 1u32.to_le_bytes().to_vec();
    let mut crc = pairs::crc32(0xffff_ffff, &block);
    let mut before = 0xffff_ffff;
    for (tags, crc_size) in commits {
        for (kind, data) in *tags {
            let tag = (kind << 20) | data.len() as u32;
            let raw = (tag ^ before).to_be_bytes();
            crc = pairs::crc32(pairs::crc32(crc, &raw), data);
            block.extend_from_slice(&raw);
            block.extend_from_slice(data);
            before = tag;
        }
        let tag = (pairs::TYPE_CCRC << 20) | crc_size;
        let raw = (tag ^ before).to_be_bytes();
        block.extend_from_slice(&raw);
        block.extend_from_slice(&pairs::crc32(crc, &raw).to_le_bytes());
        block.resize(block.len() - 4 + *crc_size as usize, 0);
        crc = 0xffff_ffff;
        before = tag;
    }
    block.resize(BLOCK_SIZE as usize, 0);
    block
}

fn pair(a: u32, b: u32) -> [u8; 8] {
    let mut bytes = [0; 8];
    bytes[..4].copy_from_slice(&a.to_le_bytes());
    bytes[4..].copy_from_slice(&b.to_le_bytes());
    bytes
}

/// The walk reads tags as littlefs reads them, not only as it writes them: a hostile image
/// hides a pair of equal blocks in a tail of another type of the class, a directory struct of
/// another size, or a struct of another type that an entry names as a directory.
#[test]
fn pairs_of_equal_blocks_are_found_as_littlefs_reads_them() {
    let check = |blocks: &[(u32, Vec<u8>)]| {
        let mut ram = Ram::new(16 * BLOCK_SIZE as usize);
        for (b, bytes) in blocks {
            let at = *b as usize * BLOCK_SIZE as usize;
            ram.bytes[at..at + bytes.len()].copy_from_slice(bytes);
        }
        pairs::check(&mut ram, 16)
    };
    let equal = pair(5, 5);
    let wide = [&equal[..], &[0; 4]].concat();
    // Zero-filled, four bytes of (0, 9) name (0, 0).
    let short = pair(0, 9);
    let tail_to_itself = metadata_block(&[(&[(0x601, &equal)], 4)]);
    for (case, commits) in [
        ("soft tail", &[(&[(0x600, &equal[..])][..], 4)][..]),
        ("tail of another type", &[(&[(0x603, &equal[..])], 4)]),
        (
            "directory struct of 12 bytes",
            &[(&[(0x200, &wide[..])], 4)],
        ),
        (
            "directory struct of 4 bytes",
            &[(&[(0x200, &short[..4])], 4)],
        ),
        (
            "in a second commit",
            &[(&[(0x001, &b"f"[..])], 8), (&[(0x600, &equal)], 4)],
        ),
    ] {
        assert_eq!(
            check(&[(0, metadata_block(commits))]),
            Err(Error::Corrupt),
            "{case}"
        );
    }
    // A file's CTZ list may have a head equal to its size: followed, not refused, unless what
    // it leads to names itself as its tail.
    let ctz = metadata_block(&[(&[(0x202, &equal)], 4)]);
    assert_eq!(check(&[(0, ctz.clone())]), Ok(()));
    assert_eq!(check(&[(0, ctz), (5, tail_to_itself)]), Err(Error::Corrupt));
    // A commit whose CRC does not hold names nothing.
    let mut damaged = metadata_block(&[(&[(0x600, &equal)], 4)]);
    damaged[8] ^= 1;
    assert_eq!(check(&[(0, damaged)]), Ok(()));
}
