//! Booting what `cargo uniklink build` made from a manifest: where its image is and which
//! boot options the manifest sets.

use std::path::{Path, PathBuf};

use uniklink_config::{Arch, ResolvedConfig, Target};

use super::RunOptions;

/// Where `cargo uniklink build` writes the image of `config` for `arch`:
/// `<target-dir>/uniklink/<name>-<arch>.elf`.
pub fn built_image_path(target_dir: &Path, config: &ResolvedConfig, arch: Arch) -> PathBuf {
    target_dir
        .join("uniklink")
        .join(format!("{}-{}.elf", config.name, arch.name()))
}

/// The target of `config` to boot: the one for `arch`, or the first one listed.
pub fn pick_target(config: &ResolvedConfig, arch: Option<Arch>) -> Option<Target> {
    config
        .targets
        .iter()
        .copied()
        .find(|target| arch.is_none_or(|arch| target.arch == arch))
}

/// Boot options for `image`, built from `config` for `target`: its platform, memory, kernel
/// command line and port forwards. Everything else is at its default.
pub fn options_from_config(config: &ResolvedConfig, target: Target, image: PathBuf) -> RunOptions {
    let mut opts = RunOptions::new(image, target.arch);
    opts.platform = target.platform;
    opts.memory = Some(config.memory.value.bytes());
    opts.cmdline = Some(config.cmdline.clone()).filter(|c| !c.is_empty());
    opts.ports = config.ports.iter().map(|p| (p.host, p.guest)).collect();
    opts
}

#[cfg(test)]
mod tests {
    use super::*;
    use uniklink_config::{ComponentRegistry, Manifest, Platform};

    fn config(yaml: &str) -> ResolvedConfig {
        Manifest::from_text(
            Path::new("/project/uniklink.yaml"),
            yaml,
            &ComponentRegistry::builtin(),
        )
        .unwrap()
        .resolve()
    }

    const TWO_TARGETS: &str = "\
name: web
app:
  objects: [app.o]
arch: [x86_64, aarch64]
memory: 64MiB
cmdline: verbose
ports: [\"8080:80\"]
";

    #[test]
    fn image_path_follows_the_build_layout() {
        let config = config(TWO_TARGETS);
        assert_eq!(
            built_image_path(Path::new("/t"), &config, Arch::Aarch64),
            Path::new("/t/uniklink/web-aarch64.elf")
        );
    }

    #[test]
    fn targets_are_picked_by_arch_or_first() {
        let config = config(TWO_TARGETS);
        let first = pick_target(&config, None).unwrap();
        assert_eq!(
            (first.arch, first.platform),
            (Arch::X86_64, Platform::QemuMicrovm)
        );
        let arm = pick_target(&config, Some(Arch::Aarch64)).unwrap();
        assert_eq!(arm.platform, Platform::QemuVirt);
    }

    #[test]
    fn options_carry_the_manifest_settings() {
        let config = config(TWO_TARGETS);
        let target = pick_target(&config, None).unwrap();
        let opts = options_from_config(&config, target, PathBuf::from("web.elf"));
        assert_eq!(opts.platform, Platform::QemuMicrovm);
        assert_eq!(opts.memory, Some(64 * 1024 * 1024));
        assert_eq!(opts.cmdline.as_deref(), Some("verbose"));
        assert_eq!(opts.ports, vec![(8080, 80)]);
    }
}
