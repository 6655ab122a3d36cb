//! The guest of `cargo xtask bench fs`: measures, with the guest's own clock, on the disk named
//! `data` (the manifest's volume, mounted at `/data` by the `fs` component):
//!
//! - the raw device's sequential read rate (`unik_blk`, no file system): the ceiling;
//! - mounting the volume's littlefs (a second, read-only mount of the same disk);
//! - sequential write (then sync) and read of a file of `fsbench.size=<MiB>` MiB;
//! - 4 KiB reads at pseudo-random offsets of that file;
//! - small appends, each synced.
//!
//! Each result is one line `fsbench: <name> <value> <unit>`; the host prints the table.
#![no_std]

extern crate alloc;

use alloc::vec;

use unik::fs::{self, OpenOptions, SeekFrom};
use unik::println;
use unik::time::{Duration, Instant};

unik::entry!(main);

const CHUNK: usize = 64 * 1024;
const RANDOM_READS: u32 = 2000;
const APPENDS: u32 = 300;

/// MiB/s with one decimal, as text.
fn mib_per_s(bytes: u64, took: Duration) -> alloc::string::String {
    let micros = took.as_micros().max(1) as u64;
    let tenths = bytes * 10_000_000 / micros / (1024 * 1024);
    alloc::format!("{}.{}", tenths / 10, tenths % 10)
}

fn per_s(count: u32, took: Duration) -> u64 {
    u64::from(count) * 1_000_000 / (took.as_micros().max(1) as u64)
}

fn main() {
    let cmdline = core::str::from_utf8(unik::cmdline::command_line()).unwrap_or("");
    let mib: u64 = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("fsbench.size="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(64);
    let size = mib * 1024 * 1024;
    if let Err(e) = bench(size) {
        println!("fsbench: failed: {e}");
        unik::exit(1);
    }
    unik::exit(0);
}

fn bench(size: u64) -> Result<(), fs::Error> {
    let mut buf = vec![0u8; CHUNK];

    let disk = unik_blk::disk("data").ok_or(fs::Error::NoDevice)?;
    let raw_len = size.min(disk.size() - disk.size() % CHUNK as u64);
    let started = Instant::now();
    let mut offset = 0;
    while offset < raw_len {
        disk.read(offset, &mut buf).map_err(|_| fs::Error::Io)?;
        offset += CHUNK as u64;
    }
    println!(
        "fsbench: raw-read {} MiB/s",
        mib_per_s(raw_len, started.elapsed())
    );

    let started = Instant::now();
    fs::mount("data", "/mounted", true)?;
    println!("fsbench: mount {} us", started.elapsed().as_micros());

    let started = Instant::now();
    let mut file = fs::File::create("/data/big")?;
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte = i as u8;
    }
    let mut written = 0;
    while written < size {
        file.write_all(&buf)?;
        written += CHUNK as u64;
    }
    file.sync_all()?;
    file.close()?;
    println!(
        "fsbench: seq-write {} MiB/s",
        mib_per_s(size, started.elapsed())
    );

    let started = Instant::now();
    let mut file = fs::File::open("/data/big")?;
    let mut read = 0;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    println!(
        "fsbench: seq-read {} MiB/s",
        mib_per_s(read, started.elapsed())
    );

    let blocks = size / 4096;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let started = Instant::now();
    for _ in 0..RANDOM_READS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        file.seek(SeekFrom::Start(state % blocks * 4096))?;
        let mut got = 0;
        while got < 4096 {
            got += file.read(&mut buf[got..4096])?;
        }
    }
    println!(
        "fsbench: random-4k-read {} reads/s",
        per_s(RANDOM_READS, started.elapsed())
    );
    drop(file);

    let mut log = OpenOptions::new()
        .append(true)
        .create(true)
        .open("/data/appends")?;
    let started = Instant::now();
    for _ in 0..APPENDS {
        log.write_all(&buf[..64])?;
        log.sync_all()?;
    }
    println!(
        "fsbench: synced-append {} appends/s",
        per_s(APPENDS, started.elapsed())
    );
    Ok(())
}
