//! Booting what `cargo uniklink build` made from a manifest with the boot settings the
//! manifest gives and the devices its build report says the image drives. Where the image is
//! comes from [`crate::build::image_paths`], so `run` always looks where `build` wrote.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use uniklink_config::{DeviceKind, ResolvedConfig, Target};

use super::{Disk, RunOptions};

/// Boot options for `image`, built from `config` for `target`: its platform, memory, kernel
/// command line, port forwards and volumes' disks. Everything else is at its default.
pub fn options_from_config(config: &ResolvedConfig, target: Target, image: PathBuf) -> RunOptions {
    let mut opts = RunOptions::new(image, target.arch);
    opts.platform = target.platform;
    opts.memory = Some(config.memory.value.bytes());
    opts.cmdline = Some(uniklink_config::command_line(
        &config.cmdline,
        &config.args,
        &config.env,
    ))
    .filter(|c| !c.is_empty());
    opts.ports = config.ports.iter().map(|p| (p.host, p.guest)).collect();
    opts.disks = config
        .volumes
        .iter()
        .map(|volume| Disk {
            name: volume.name.clone(),
            image: volume.image.clone(),
            readonly: volume.readonly,
        })
        .collect();
    opts
}

/// Why the devices an image drives are unknown.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read the build report {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a uniklink build report", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The part of a build report that says which components are live and what they drive.
#[derive(Deserialize)]
struct SavedReport {
    weave: Option<SavedWeave>,
}

#[derive(Deserialize)]
struct SavedWeave {
    components: Vec<SavedComponent>,
}

#[derive(Deserialize)]
struct SavedComponent {
    live: bool,
    /// Absent from reports written before components listed their devices.
    #[serde(default)]
    devices: Vec<DeviceKind>,
}

/// The kinds of device the live components of the image whose build report is `report`
/// drive, each once; none for an image linked without weaving, or one without a report (put
/// there by hand), which boots as `run IMAGE` boots it.
pub fn live_devices(report: &Path) -> Result<Vec<DeviceKind>, ReportError> {
    let text = match std::fs::read(report) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ReportError::Read {
                path: report.to_owned(),
                source,
            });
        }
    };
    let saved: SavedReport = serde_json::from_slice(&text).map_err(|source| ReportError::Json {
        path: report.to_owned(),
        source,
    })?;
    let mut devices: Vec<DeviceKind> = saved
        .weave
        .into_iter()
        .flat_map(|weave| weave.components)
        .filter(|component| component.live)
        .flat_map(|component| component.devices)
        .collect();
    devices.sort();
    devices.dedup();
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use uniklink_config::{Arch, ComponentRegistry, Manifest, Platform};

    fn manifest(yaml: &str) -> Manifest {
        Manifest::from_text(
            Path::new("/project/uniklink.yaml"),
            yaml,
            &ComponentRegistry::builtin(),
        )
        .unwrap()
    }

    #[test]
    fn options_carry_the_manifest_settings() {
        let manifest = manifest(
            "name: web\napp:\n  objects: [app.o]\narch: x86_64\nplatform: qemu-q35\n\
             memory: 64MiB\ncmdline: verbose\nports: [\"8080:80\"]\n",
        );
        let target = manifest.targets[0];
        let opts = options_from_config(&manifest.resolve(), target, PathBuf::from("web.elf"));
        assert_eq!(opts.arch, Arch::X86_64);
        assert_eq!(opts.platform, Platform::QemuQ35);
        assert_eq!(opts.memory, Some(64 * 1024 * 1024));
        assert_eq!(opts.cmdline.as_deref(), Some("verbose"));
        assert_eq!(opts.ports, vec![(8080, 80)]);
        assert!(opts.disks.is_empty());
    }

    #[test]
    fn volumes_become_disks_in_manifest_order() {
        let manifest = manifest(
            "name: store\napp:\n  objects: [app.o]\nvolumes:\n  \
             - { name: data, image: disks/data.img, size: 1MiB, mount: /data }\n  \
             - { name: seed, image: /srv/seed.img, size: 64KiB, mount: /seed, readonly: true }\n",
        );
        let opts = options_from_config(
            &manifest.resolve(),
            manifest.targets[0],
            PathBuf::from("store.elf"),
        );
        assert_eq!(
            opts.disks,
            [
                Disk {
                    name: "data".to_owned(),
                    image: PathBuf::from("/project/disks/data.img"),
                    readonly: false,
                },
                Disk {
                    name: "seed".to_owned(),
                    image: PathBuf::from("/srv/seed.img"),
                    readonly: true,
                },
            ]
        );
    }

    #[test]
    fn devices_of_live_components_only() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("app-x86_64.json");
        std::fs::write(
            &report,
            r#"{"name": "app", "weave": {"components": [
                {"name": "blk", "live": false, "devices": ["virtio-blk"]},
                {"name": "rng", "live": true, "devices": ["virtio-rng"]},
                {"name": "rng2", "live": true, "devices": ["virtio-rng"]},
                {"name": "heap", "live": true, "devices": []},
                {"name": "old", "live": true}
            ]}}"#,
        )
        .unwrap();
        assert_eq!(live_devices(&report).unwrap(), [DeviceKind::VirtioRng]);

        std::fs::write(&report, r#"{"name": "app", "weave": null}"#).unwrap();
        assert_eq!(live_devices(&report).unwrap(), []);

        std::fs::write(&report, "not json").unwrap();
        assert!(matches!(
            live_devices(&report),
            Err(ReportError::Json { .. })
        ));
        assert_eq!(live_devices(&dir.path().join("missing.json")).unwrap(), []);
        let err = live_devices(dir.path()).unwrap_err();
        assert!(matches!(err, ReportError::Read { .. }), "{err:?}");
    }

    #[test]
    fn an_empty_command_line_is_none() {
        let manifest = manifest("name: tiny\napp:\n  objects: [app.o]\narch: x86_64\n");
        let opts = options_from_config(
            &manifest.resolve(),
            manifest.targets[0],
            PathBuf::from("tiny.elf"),
        );
        assert_eq!(opts.platform, Platform::QemuMicrovm);
        assert_eq!(opts.cmdline, None);
        assert!(opts.ports.is_empty());
    }
}
