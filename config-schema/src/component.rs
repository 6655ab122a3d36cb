//! `component.yaml`: how a library-OS crate (or a C archive) declares itself a component.
//!
//! ```yaml
//! name: net                 # the name manifests use
//! init: unik_net_init       # extern "C" fn(), run by the glue object when the component is live
//! depends: [heap, clock]    # components whose init must run first
//! archive: libnet.a         # C components only: the archive holding the component's code
//! crates: [unik_rt::heap]   # code elsewhere that is this component (crates or module paths)
//! symbols: [_pvh_start]     # unmangled symbols (assembly, #[no_mangle]) that are this component;
//!                           # `lfs_*` names every symbol with that prefix
//! devices: [virtio-net]     # device kinds the component drives; `run` attaches them
//! owns: [ports]             # manifest keys that are this component's: setting one requires it
//! params:
//!   rx_ring: { type: u32, default: { minimal: 16, network: 256, filesystem: 16 } }
//!   stack_size: { type: u32, kind: size, reserve: true, min: 8KiB, default: { ... } }
//! ```
//!
//! A parameter's `type` is how the glue object stores it (`u32`, `u64`, `bool` as one byte);
//! its optional `kind` says how manifests write values (`size`, `count`, `percent`,
//! `duration`, `bool`; integers default to `count`). A `size` parameter with `reserve: true`
//! also sizes memory: the glue object reserves that many zero bytes, page-aligned, in `.bss`
//! as `__uniklink_reserve_<component>_<param>`, which the component defines weakly for a link
//! without the glue. A size, count or duration may have a `min`, the least value the
//! component works with: defaults and manifests' values below it are errors.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::error::{Located, ManifestError, Source};
use crate::raw::KeyedMap;
use crate::registry::{
    ComponentRegistry, ComponentSpec, ParamKind, ParamSpec, ParamValue, ProfileDefaults, RawValue,
    RegistryConflict, is_identifier,
};

/// How the glue object stores a parameter: little endian, `bool` as one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    U32,
    U64,
    Bool,
}

impl ParamType {
    pub fn name(self) -> &'static str {
        match self {
            ParamType::U32 => "u32",
            ParamType::U64 => "u64",
            ParamType::Bool => "bool",
        }
    }

    /// Bytes the value occupies in the image.
    pub fn size(self) -> u64 {
        match self {
            ParamType::U32 => 4,
            ParamType::U64 => 8,
            ParamType::Bool => 1,
        }
    }

    /// The stored bytes of `value`, or why it does not fit this type.
    pub fn encode(self, value: ParamValue) -> Result<Vec<u8>, String> {
        match (self, value) {
            (ParamType::Bool, ParamValue::Bool(b)) => Ok(vec![u8::from(b)]),
            (ParamType::Bool, other) => Err(format!("expected a bool, got {other}")),
            (_, ParamValue::Bool(b)) => Err(format!("expected an integer, got `{b}`")),
            (ParamType::U32, other) => u32::try_from(other.as_u64())
                .map(|n| n.to_le_bytes().to_vec())
                .map_err(|_| format!("{other} does not fit in a u32")),
            (ParamType::U64, other) => Ok(other.as_u64().to_le_bytes().to_vec()),
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A kind of device a component drives, so the machine the image boots on must have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// A virtio network card.
    VirtioNet,
    /// A virtio block device (a disk).
    VirtioBlk,
    /// A virtio entropy source.
    VirtioRng,
}

impl DeviceKind {
    pub const ALL: [DeviceKind; 3] = [
        DeviceKind::VirtioNet,
        DeviceKind::VirtioBlk,
        DeviceKind::VirtioRng,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::VirtioNet => "virtio-net",
            DeviceKind::VirtioBlk => "virtio-blk",
            DeviceKind::VirtioRng => "virtio-rng",
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A top-level manifest key a component can own: a manifest that sets the key needs the
/// component, which is then required as if `components.require` listed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OwnedKey {
    Ports,
    Volumes,
    Files,
    Args,
    Env,
}

impl OwnedKey {
    pub const ALL: [OwnedKey; 5] = [
        OwnedKey::Ports,
        OwnedKey::Volumes,
        OwnedKey::Files,
        OwnedKey::Args,
        OwnedKey::Env,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OwnedKey::Ports => "ports",
            OwnedKey::Volumes => "volumes",
            OwnedKey::Files => "files",
            OwnedKey::Args => "args",
            OwnedKey::Env => "env",
        }
    }
}

impl fmt::Display for OwnedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The file every component crate keeps beside its `Cargo.toml`.
pub const COMPONENT_FILE: &str = "component.yaml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentFile {
    name: Spanned<String>,
    #[serde(default)]
    doc: String,
    #[serde(default)]
    init: Option<Spanned<String>>,
    #[serde(default)]
    depends: Vec<Spanned<String>>,
    #[serde(default)]
    archive: Option<PathBuf>,
    #[serde(default)]
    crates: Vec<String>,
    #[serde(default)]
    symbols: Vec<Spanned<String>>,
    #[serde(default)]
    devices: Vec<Spanned<String>>,
    #[serde(default)]
    owns: Vec<Spanned<String>>,
    #[serde(default)]
    params: KeyedMap<ParamFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamFile {
    #[serde(rename = "type")]
    ty: ParamType,
    #[serde(default)]
    kind: Option<ParamKind>,
    #[serde(default)]
    doc: String,
    default: DefaultsFile,
    #[serde(default)]
    reserve: bool,
    /// The least value the component works with, for sizes, counts and durations.
    #[serde(default)]
    min: Option<Spanned<RawValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultsFile {
    minimal: Spanned<RawValue>,
    network: Spanned<RawValue>,
    filesystem: Spanned<RawValue>,
}

/// `value`, or why it is less than `min`.
pub fn check_min(value: ParamValue, min: Option<ParamValue>) -> Result<ParamValue, String> {
    match min {
        Some(min) if value.as_u64() < min.as_u64() => {
            Err(format!("{value} is less than the least it can be, {min}"))
        }
        _ => Ok(value),
    }
}

/// Reads and validates one `component.yaml`. A relative `archive` is taken relative to the
/// file's directory.
pub fn load_component(path: &Path) -> Result<ComponentSpec, ManifestError> {
    let source = crate::parse::read_source(path)?;
    check_component(path, &source)
}

/// Validates `component.yaml` text; `path` names it in diagnostics and anchors `archive`.
pub fn parse_component(path: &Path, text: &str) -> Result<ComponentSpec, ManifestError> {
    check_component(path, &Source::new(path, text))
}

fn check_component(path: &Path, source: &Source) -> Result<ComponentSpec, ManifestError> {
    let file: ComponentFile = crate::parse::from_source(source)?;
    let mut errors: Vec<Located> = Vec::new();
    let name = file.name.value.clone();
    if !is_identifier(&name) {
        errors.push(source.error_at(file.name.referenced, NOT_IDENTIFIER));
    }
    for dep in &file.depends {
        if dep.value == name {
            errors.push(source.error_at(
                dep.referenced,
                format!("component `{name}` cannot depend on itself"),
            ));
        } else if !is_identifier(&dep.value) {
            errors.push(source.error_at(dep.referenced, NOT_IDENTIFIER));
        }
    }
    let init = file.init.map(|init| {
        if !is_symbol(&init.value) {
            errors.push(source.error_at(
                init.referenced,
                format!("`{}` is not a symbol name", init.value),
            ));
        }
        init.value
    });
    for symbol in &file.symbols {
        // `lfs_*` names every symbol with the prefix (a C library's functions).
        let name = symbol.value.strip_suffix('*').unwrap_or(&symbol.value);
        if !is_symbol(name) {
            errors.push(source.error_at(
                symbol.referenced,
                format!("`{}` is not a symbol name", symbol.value),
            ));
        }
    }
    let devices = named_list(
        source,
        &file.devices,
        &DeviceKind::ALL,
        DeviceKind::name,
        "device kind",
        &mut errors,
    );
    let owns = named_list(
        source,
        &file.owns,
        &OwnedKey::ALL,
        OwnedKey::name,
        "ownable manifest key",
        &mut errors,
    );
    let mut params = BTreeMap::new();
    for (param, decl) in file.params.0 {
        if !is_identifier(&param.value) {
            errors.push(source.error_at(param.referenced, NOT_IDENTIFIER));
        }
        let param_name = param.value;
        let kind = match (decl.kind, decl.ty) {
            (Some(kind), ty)
                if kind.required_type().is_some_and(|required| required != ty)
                    || (kind.required_type().is_none() && ty == ParamType::Bool) =>
            {
                errors.push(source.error_at(
                    param.referenced,
                    format!(
                        "`{name}.{param_name}`: {} parameter cannot have type {ty}",
                        kind.a()
                    ),
                ));
                continue;
            }
            (Some(kind), _) => kind,
            (None, ParamType::Bool) => ParamKind::Bool,
            (None, _) => ParamKind::Count,
        };
        if decl.reserve && kind != ParamKind::Size {
            errors.push(source.error_at(
                param.referenced,
                format!(
                    "`{name}.{param_name}`: only a size parameter can reserve memory, not {} one",
                    kind.a()
                ),
            ));
            continue;
        }
        let min = match (&decl.min, kind) {
            (None, _) => None,
            (Some(min), ParamKind::Size | ParamKind::Count | ParamKind::Duration) => {
                match kind.convert(&min.value) {
                    Ok(value) => Some(value),
                    Err(message) => {
                        errors.push(source.error_at(
                            min.referenced,
                            format!("`{name}.{param_name}` min: {message}"),
                        ));
                        continue;
                    }
                }
            }
            (Some(min), _) => {
                errors.push(source.error_at(
                    min.referenced,
                    format!(
                        "`{name}.{param_name}`: only sizes, counts and durations have a min, not {}",
                        kind.a()
                    ),
                ));
                continue;
            }
        };
        let mut default = |profile: &str, raw: &Spanned<RawValue>| {
            let value = kind
                .convert(&raw.value)
                .and_then(|value| decl.ty.encode(value).map(|_| value))
                .and_then(|value| check_min(value, min));
            value
                .map_err(|message| {
                    errors.push(source.error_at(
                        raw.referenced,
                        format!("`{name}.{param_name}` default for {profile}: {message}"),
                    ))
                })
                .ok()
        };
        let (Some(minimal), Some(network), Some(filesystem)) = (
            default("minimal", &decl.default.minimal),
            default("network", &decl.default.network),
            default("filesystem", &decl.default.filesystem),
        ) else {
            continue;
        };
        let spec = ParamSpec {
            name: param_name.clone(),
            kind,
            ty: decl.ty,
            doc: decl.doc,
            defaults: ProfileDefaults {
                minimal,
                network,
                filesystem,
            },
            reserve: decl.reserve,
            min,
        };
        params.insert(param_name, spec);
    }
    if !errors.is_empty() {
        return Err(ManifestError::invalid(errors));
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    Ok(ComponentSpec {
        name,
        doc: file.doc,
        init,
        depends: file.depends.into_iter().map(|d| d.value).collect(),
        archive: file.archive.map(|a| dir.join(a)),
        crates: file.crates,
        symbols: file.symbols.into_iter().map(|s| s.value).collect(),
        devices,
        owns,
        params,
    })
}

/// The members of `all` that `list` names, each once. Unknown and repeated names are errors
/// at the name; the known names are in the message itself, since a build prints component
/// errors as one line without the source snippet.
fn named_list<T: Copy + PartialEq>(
    source: &Source,
    list: &[Spanned<String>],
    all: &[T],
    name: fn(T) -> &'static str,
    what: &str,
    errors: &mut Vec<Located>,
) -> Vec<T> {
    let names = || all.iter().map(|&item| name(item));
    let mut found = Vec::new();
    for item in list {
        match all.iter().find(|&&known| name(known) == item.value) {
            Some(&known) if found.contains(&known) => errors.push(
                source.error_at(item.referenced, format!("`{}` is listed twice", item.value)),
            ),
            Some(&known) => found.push(known),
            None => {
                let known = names().collect::<Vec<_>>().join(", ");
                let message = format!("unknown {what} `{}` (known: {known})", item.value);
                let error = source.error_at(item.referenced, message);
                errors.push(error.suggest(&item.value, names()));
            }
        }
    }
    found
}

/// Why a set of `component.yaml` files does not make a registry.
#[derive(Debug, thiserror::Error)]
pub enum ComponentSetError {
    #[error(transparent)]
    File(#[from] ManifestError),
    #[error(transparent)]
    Conflict(#[from] RegistryConflict),
}

impl ComponentRegistry {
    /// The registry of a library OS: the built-in profiles and exactly the components
    /// declared by the given `component.yaml` files.
    pub fn from_component_files(paths: &[PathBuf]) -> Result<ComponentRegistry, ComponentSetError> {
        let specs = paths
            .iter()
            .map(|path| load_component(path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ComponentRegistry::with_components(specs)?)
    }
}

const NOT_IDENTIFIER: &str =
    "component and parameter names must be lowercase identifiers (a-z, 0-9, _)";

/// Init functions are C symbols: the glue object calls them by name.
fn is_symbol(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<ComponentSpec, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(COMPONENT_FILE);
        std::fs::write(&path, text).unwrap();
        load_component(&path).map_err(|e| {
            e.diagnostics()
                .iter()
                .map(|d| {
                    d.to_string()
                        .replace(&path.display().to_string(), "component.yaml")
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    #[test]
    fn reads_the_convention() {
        let spec = load(
            "name: net\ninit: unik_net_init\ndepends: [heap, clock]\nparams:\n  rx_ring: { type: u32, default: { minimal: 16, network: 256, filesystem: 16 } }\n  promisc: { type: bool, default: { minimal: false, network: true, filesystem: false } }\n",
        )
        .unwrap();
        assert_eq!(spec.init.as_deref(), Some("unik_net_init"));
        assert_eq!(spec.depends, ["heap", "clock"]);
        let rx = &spec.params["rx_ring"];
        assert_eq!((rx.ty, rx.kind), (ParamType::U32, ParamKind::Count));
        assert_eq!(rx.defaults.network, ParamValue::Count(256));
        assert_eq!(spec.params["promisc"].ty, ParamType::Bool);
    }

    #[test]
    fn devices_and_owned_keys() {
        let spec = load("name: net\ndevices: [virtio-net]\nowns: [ports]\n").unwrap();
        assert_eq!(spec.devices, [DeviceKind::VirtioNet]);
        assert_eq!(spec.owns, [OwnedKey::Ports]);
        let spec = load("name: console\n").unwrap();
        assert!(spec.devices.is_empty() && spec.owns.is_empty());

        let err = load(
            "name: fs\ndevices: [virtio-blk, virtio-blk, virtio-gpu]\nowns: [volume, memory, files]\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "component.yaml:2:23: `virtio-blk` is listed twice\n\
             component.yaml:2:35: unknown device kind `virtio-gpu` (known: virtio-net, virtio-blk, virtio-rng)\n\
             component.yaml:3:8: unknown ownable manifest key `volume` (known: ports, volumes, files, args, env)\n\
             component.yaml:3:16: unknown ownable manifest key `memory` (known: ports, volumes, files, args, env)"
        );
    }

    #[test]
    fn unknown_names_suggest_the_closest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(COMPONENT_FILE);
        let error = parse_component(&path, "name: blk\ndevices: [virtio-blok]\n").unwrap_err();
        let help = error.diagnostics()[0].help.as_deref();
        assert_eq!(help, Some("did you mean `virtio-blk`?"));
    }

    #[test]
    fn defaults_must_fit_their_type() {
        let err = load(
            "name: net\nparams:\n  rx_ring: { type: u32, kind: size, default: { minimal: 16, network: 8GiB, filesystem: true } }\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "component.yaml:3:70: `net.rx_ring` default for network: 8GiB does not fit in a u32\n\
             component.yaml:3:88: `net.rx_ring` default for filesystem: expected a size, got boolean `true`"
        );
    }

    #[test]
    fn kind_and_type_must_agree() {
        let err = load(
            "name: fs\nparams:\n  write_back: { type: u32, kind: bool, default: { minimal: 0, network: 0, filesystem: 1 } }\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "component.yaml:3:3: `fs.write_back`: a bool parameter cannot have type u32"
        );
    }

    #[test]
    fn addresses_store_as_their_bits() {
        let spec = load(
            "name: net\nparams:\n  address: { type: u64, kind: ipv4-cidr, default: { minimal: none, network: 10.0.2.15/24, filesystem: \" 192.168.1.2/32 \" } }\n  gateway: { type: u32, kind: ipv4, default: { minimal: none, network: 10.0.2.2, filesystem: none } }\n",
        )
        .unwrap();
        let address = &spec.params["address"];
        assert_eq!(address.defaults.minimal.as_u64(), 0);
        assert_eq!(address.defaults.network.as_u64(), 0x000a_0002_0f18);
        assert_eq!(address.defaults.network.to_string(), "10.0.2.15/24");
        assert_eq!(address.defaults.filesystem.to_string(), "192.168.1.2/32");
        let gateway = &spec.params["gateway"];
        assert_eq!(gateway.defaults.network.as_u64(), 0x0a00_0202);
        assert_eq!(gateway.defaults.minimal.to_string(), "none");
        assert_eq!(
            ParamType::U32.encode(gateway.defaults.network),
            Ok(vec![2, 2, 0, 10])
        );
    }

    #[test]
    fn bad_addresses_say_what_is_expected() {
        let err = load(
            "name: net\nparams:\n  address: { type: u64, kind: ipv4-cidr, default: { minimal: 10.0.2.15, network: 10.0.2.15/33, filesystem: 0.0.0.0/8 } }\n  gateway: { type: u32, kind: ipv4, default: { minimal: 10.0.2, network: 0.0.0.0, filesystem: 2 } }\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "component.yaml:3:62: `net.address` default for minimal: expected an IPv4 address with its prefix length such as 10.0.2.15/24 or `none`, got `10.0.2.15`\n\
             component.yaml:3:82: `net.address` default for network: the prefix length of `10.0.2.15/33` must be 0 to 32\n\
             component.yaml:3:108: `net.address` default for filesystem: 0.0.0.0 is no address; write `none`\n\
             component.yaml:4:57: `net.gateway` default for minimal: expected an IPv4 address such as 10.0.2.2 or `none`, got `10.0.2`\n\
             component.yaml:4:74: `net.gateway` default for network: 0.0.0.0 is no address; write `none`\n\
             component.yaml:4:95: `net.gateway` default for filesystem: expected an ipv4, got integer `2`"
        );
        let err = load(
            "name: net\nparams:\n  gateway: { type: u64, kind: ipv4, default: { minimal: none, network: none, filesystem: none } }\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "component.yaml:3:3: `net.gateway`: an ipv4 parameter cannot have type u64"
        );
    }

    /// A `min` holds for the defaults here and for what a manifest sets (`manifest.rs`);
    /// only quantities have one.
    #[test]
    fn defaults_below_the_min_and_a_min_on_an_address_are_errors() {
        let spec = load(
            "name: rt\nparams:\n  stack_size: { type: u32, kind: size, min: 8KiB, default: { minimal: 8KiB, network: 1MiB, filesystem: 1MiB } }\n",
        )
        .unwrap();
        assert_eq!(
            spec.params["stack_size"].min.map(|m| m.as_u64()),
            Some(8192)
        );
        let err = load(
            "name: rt\nparams:\n  stack_size: { type: u32, kind: size, min: 8KiB, default: { minimal: 4KiB, network: 1MiB, filesystem: 1MiB } }\n",
        )
        .unwrap_err();
        assert!(
            err.ends_with(
                "`rt.stack_size` default for minimal: 4KiB is less than the least it can be, 8KiB"
            ),
            "{err}"
        );
        let err = load(
            "name: net\nparams:\n  gateway: { type: u32, kind: ipv4, min: 1, default: { minimal: none, network: none, filesystem: none } }\n",
        )
        .unwrap_err();
        assert!(
            err.ends_with(
                "`net.gateway`: only sizes, counts and durations have a min, not an ipv4"
            ),
            "{err}"
        );
    }

    #[test]
    fn only_sizes_reserve_memory() {
        let spec = load(
            "name: rt\nparams:\n  stack_size: { type: u32, kind: size, reserve: true, default: { minimal: 32KiB, network: 128KiB, filesystem: 128KiB } }\n",
        )
        .unwrap();
        assert!(spec.params["stack_size"].reserve);
        let err = load(
            "name: rt\nparams:\n  stacks: { type: u32, reserve: true, default: { minimal: 1, network: 1, filesystem: 1 } }\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "component.yaml:3:3: `rt.stacks`: only a size parameter can reserve memory, not a count one"
        );
    }

    #[test]
    fn names_and_self_dependency() {
        let err = load("name: Net\ninit: 9init\ndepends: [Net]\n").unwrap_err();
        assert_eq!(
            err,
            "component.yaml:1:7: component and parameter names must be lowercase identifiers (a-z, 0-9, _)\n\
             component.yaml:2:7: `9init` is not a symbol name\n\
             component.yaml:3:11: component `Net` cannot depend on itself"
        );
        let err = load("name: net\nparams:\n  rx: { type: u16, default: { minimal: 1, network: 1, filesystem: 1 } }\n")
            .unwrap_err();
        assert!(err.starts_with("component.yaml:3:"), "{err}");
        assert!(err.contains("unknown value `u16`"), "{err}");
    }
}
