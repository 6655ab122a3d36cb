//! The resolved configuration: each value the later phases need, with where it came from.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::component::{DeviceKind, OwnedKey};
use crate::manifest::{App, FileMapping, Manifest, Volume};
use crate::raw::{Budgets, PortForward};
use crate::registry::{ComponentRegistry, ParamValue, ProfileName};
use crate::target::{Arch, Target};
use crate::units::ByteSize;

/// Which layer a resolved value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// The profile's default (or a built-in default where the profile has none).
    Profile,
    /// Written in the manifest.
    Manifest,
    /// Set by the build for how the code is compiled (an unoptimized build's deeper stack).
    Build,
}

/// A value with its [`Origin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

/// A component parameter after resolution.
pub type ResolvedParam = Sourced<ParamValue>;

/// Why a component is in every image of a manifest, whether the application reaches it or
/// not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Requirement {
    /// `components.require` lists it.
    Manifest,
    /// The manifest sets a key the component owns.
    Key(OwnedKey),
    /// The profile requires it (and the manifest does not forbid it).
    Profile,
}

/// A component's settings. Every registry component appears, whether or not the
/// application will reach it: weaving decides that, and needs the parameters either way.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedComponent {
    pub name: String,
    /// Why it is required; `None` if it is in the image only when reached.
    pub required: Option<Requirement>,
    pub forbidden: bool,
    /// Devices it drives, which the machine needs when the component is in the image.
    pub devices: Vec<DeviceKind>,
    /// Manifest keys that are this component's.
    pub owns: Vec<OwnedKey>,
    pub params: BTreeMap<String, ResolvedParam>,
}

/// Profile defaults with the manifest's overrides applied: the one configuration type the
/// pipeline consumes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedConfig {
    pub name: String,
    /// The manifest file this came from.
    pub manifest: PathBuf,
    /// One image per target, in manifest order.
    pub targets: Vec<Target>,
    pub profile: ProfileName,
    pub app: App,
    pub keep: Vec<String>,
    pub memory: Sourced<ByteSize>,
    /// The manifest's `cmdline`; the guest gets it followed by `args` and `env`
    /// ([`command_line`]).
    pub cmdline: String,
    /// The layout randomization seed, if the manifest sets one.
    pub randomize_layout: Option<u64>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub ports: Vec<PortForward>,
    /// Host files baked into the image, in manifest order.
    pub files: Vec<FileMapping>,
    /// Disks the guest mounts, in manifest order.
    pub volumes: Vec<Volume>,
    pub budgets: Budgets,
    /// In registry (name) order.
    pub components: Vec<ResolvedComponent>,
}

/// Guest memory when neither the manifest nor the registry's profile says (validation
/// rejects a profile the registry lacks, so only hand-made registries get here); matches
/// the built-in minimal profile.
const FALLBACK_MEMORY: ByteSize = ByteSize::mib(8);

impl ResolvedConfig {
    /// Applies `manifest` over its profile's defaults from `registry`.
    pub fn new(manifest: &Manifest, registry: &ComponentRegistry) -> ResolvedConfig {
        let profile = manifest.profile;
        let memory = match manifest.memory {
            Some(value) => Sourced {
                value,
                origin: Origin::Manifest,
            },
            None => Sourced {
                value: registry
                    .profile(profile)
                    .map_or(FALLBACK_MEMORY, |p| p.memory),
                origin: Origin::Profile,
            },
        };
        let selection = &manifest.components;
        let requirement = |name: &String| {
            let owned_key_set = OwnedKey::ALL.into_iter().find(|&key| {
                manifest.sets(key) && registry.owner(key).is_some_and(|c| c.name == *name)
            });
            let profile_requires = registry
                .profile(profile)
                .is_some_and(|p| p.require.contains(name));
            if selection.require.contains(name) {
                Some(Requirement::Manifest)
            } else if selection.forbid.contains(name) {
                None
            } else if let Some(key) = owned_key_set {
                Some(Requirement::Key(key))
            } else if profile_requires {
                Some(Requirement::Profile)
            } else {
                None
            }
        };
        let components = registry
            .components()
            .map(|component| {
                let overrides = selection.params.get(&component.name);
                let params = component
                    .params
                    .values()
                    .map(|param| {
                        let resolved = match overrides.and_then(|o| o.get(&param.name)) {
                            Some(value) => Sourced {
                                value: *value,
                                origin: Origin::Manifest,
                            },
                            None => Sourced {
                                value: param.defaults.get(profile),
                                origin: Origin::Profile,
                            },
                        };
                        (param.name.clone(), resolved)
                    })
                    .collect();
                ResolvedComponent {
                    name: component.name.clone(),
                    required: requirement(&component.name),
                    forbidden: selection.forbid.contains(&component.name),
                    devices: component.devices.clone(),
                    owns: component.owns.clone(),
                    params,
                }
            })
            .collect();
        ResolvedConfig {
            name: manifest.name.clone(),
            manifest: manifest.path.clone(),
            targets: manifest.targets.clone(),
            profile,
            app: manifest.app.clone(),
            keep: manifest.keep.clone(),
            memory,
            cmdline: manifest.cmdline.clone().unwrap_or_default(),
            randomize_layout: manifest.randomize_layout,
            args: manifest.args.clone(),
            env: manifest.env.clone(),
            ports: manifest.ports.clone(),
            files: manifest.files.clone(),
            volumes: manifest.volumes.clone(),
            budgets: manifest.budgets.clone(),
            components,
        }
    }

    pub fn arches(&self) -> impl Iterator<Item = Arch> + '_ {
        self.targets.iter().map(|t| t.arch)
    }

    pub fn component(&self, name: &str) -> Option<&ResolvedComponent> {
        self.components.iter().find(|c| c.name == name)
    }

    pub fn param(&self, component: &str, param: &str) -> Option<ParamValue> {
        self.component(component)?
            .params
            .get(param)
            .map(|p| p.value)
    }
}

/// The longest kernel command line uniklink gives a guest, in bytes: what Firecracker and the
/// Linux x86 boot protocol accept, so an image boots on every platform with the same line.
pub const MAX_COMMAND_LINE: usize = 2048;

/// `cmdline` followed by the words that carry `args` and `env` to the library OS
/// (`unik_platform::cmdline`), separated by single spaces.
pub fn command_line(cmdline: &str, args: &[String], env: &[(String, String)]) -> String {
    let mut words: Vec<Vec<u8>> = Vec::new();
    if !cmdline.is_empty() {
        words.push(cmdline.as_bytes().to_vec());
    }
    for arg in args {
        words.push(unik_platform::cmdline::arg_word(arg.as_bytes()).collect());
    }
    for (name, value) in env {
        words.push(unik_platform::cmdline::env_word(name.as_bytes(), value.as_bytes()).collect());
    }
    // Every encoded byte is ASCII, and `cmdline` is a `str`.
    String::from_utf8(words.join(&b' ')).unwrap_or_default()
}
