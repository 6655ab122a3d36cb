//! Library-OS components, their parameters and the built-in profiles, all as data.
//!
//! A profile is not a code path: it is one column of the default values each component
//! declares in its `component.yaml`, plus the machine settings in `profiles.yaml` next to this
//! crate's manifest. [`ComponentRegistry::builtin`] holds the components of uniklink's own
//! library OS (embedded at build time); a build uses the components in the app's cargo graph
//! instead ([`ComponentRegistry::with_components`], [`ComponentRegistry::extend`]), and
//! validation only ever sees a [`ComponentRegistry`], never a hard-coded list.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use schemars::JsonSchema;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::component::{DeviceKind, OwnedKey, ParamType};
use crate::error::{Located, ManifestError, Source};
use crate::units::{ByteSize, Duration};

/// A built-in profile: one column of component parameter defaults.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileName {
    /// Smallest everything: for programs that compute and print.
    Minimal,
    /// Deep rings and socket buffers for a TCP server.
    Network,
    /// Block cache and read-ahead for a storage-bound program.
    Filesystem,
}

impl ProfileName {
    pub const ALL: [ProfileName; 3] = [
        ProfileName::Minimal,
        ProfileName::Network,
        ProfileName::Filesystem,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProfileName::Minimal => "minimal",
            ProfileName::Network => "network",
            ProfileName::Filesystem => "filesystem",
        }
    }
}

impl fmt::Display for ProfileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What values a component parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamKind {
    /// A size in bytes (`4096`, `64KiB`).
    Size,
    /// A plain count (ring entries, sockets).
    Count,
    /// 0 to 100 (`25` or `"25%"`).
    Percent,
    Bool,
    /// A duration with a unit (`10ms`).
    Duration,
    /// An IPv4 address (`10.0.2.2`) or `none`; stored as the address's 32 bits, most
    /// significant octet first, 0 for `none`.
    Ipv4,
    /// An IPv4 address with its prefix length (`10.0.2.15/24`) or `none`; stored as the
    /// address's 32 bits shifted left by 8 with the prefix length in the low byte, 0 for `none`.
    Ipv4Cidr,
}

impl ParamKind {
    pub fn name(self) -> &'static str {
        match self {
            ParamKind::Size => "size",
            ParamKind::Count => "count",
            ParamKind::Percent => "percent",
            ParamKind::Bool => "bool",
            ParamKind::Duration => "duration",
            ParamKind::Ipv4 => "ipv4",
            ParamKind::Ipv4Cidr => "ipv4-cidr",
        }
    }

    /// The name with its article: `a size`, `an ipv4`.
    pub fn a(self) -> String {
        let article = if self.name().starts_with('i') {
            "an"
        } else {
            "a"
        };
        format!("{article} {}", self.name())
    }

    /// The one storage type this kind needs, if it needs one: 1-byte booleans, 32-bit
    /// addresses, 40-bit address-and-prefix values. Other kinds fit any integer type their
    /// values fit.
    pub fn required_type(self) -> Option<ParamType> {
        match self {
            ParamKind::Bool => Some(ParamType::Bool),
            ParamKind::Ipv4 => Some(ParamType::U32),
            ParamKind::Ipv4Cidr => Some(ParamType::U64),
            ParamKind::Size | ParamKind::Count | ParamKind::Percent | ParamKind::Duration => None,
        }
    }

    /// Interprets a YAML scalar as this kind; the error names what was expected.
    pub(crate) fn convert(self, raw: &RawValue) -> Result<ParamValue, String> {
        match (self, raw) {
            (ParamKind::Size, RawValue::Int(n)) => Ok(ParamValue::Size(ByteSize(*n))),
            (ParamKind::Size, RawValue::Str(s)) => {
                s.parse().map(ParamValue::Size).map_err(|e| e.to_string())
            }
            (ParamKind::Count, RawValue::Int(n)) => Ok(ParamValue::Count(*n)),
            (ParamKind::Percent, RawValue::Int(n)) => percent(*n),
            (ParamKind::Percent, RawValue::Str(s)) => match s.trim().strip_suffix('%') {
                Some(number) => number
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{s}` is not a percentage"))
                    .and_then(percent),
                None => Err(format!(
                    "expected a percentage such as 25 or \"25%\", got `{s}`"
                )),
            },
            (ParamKind::Bool, RawValue::Bool(b)) => Ok(ParamValue::Bool(*b)),
            (ParamKind::Duration, RawValue::Str(s)) => s
                .parse()
                .map(ParamValue::Duration)
                .map_err(|e| e.to_string()),
            (ParamKind::Duration, RawValue::Int(n)) => {
                Err(format!("duration `{n}` needs a unit; write e.g. `{n}ms`"))
            }
            (ParamKind::Ipv4, RawValue::Str(s)) => ipv4(s).map(ParamValue::Ipv4),
            (ParamKind::Ipv4Cidr, RawValue::Str(s)) => ipv4_cidr(s).map(ParamValue::Ipv4Cidr),
            (kind, raw) => Err(format!("expected {}, got {raw}", kind.a())),
        }
    }
}

/// `none`, or an address other than 0.0.0.0 (which stores as `none` does).
fn ipv4(s: &str) -> Result<Option<Ipv4Addr>, String> {
    let s = s.trim();
    if s == NO_ADDRESS {
        return Ok(None);
    }
    let address: Ipv4Addr = s
        .parse()
        .map_err(|_| format!("expected an IPv4 address such as 10.0.2.2 or `none`, got `{s}`"))?;
    if address.is_unspecified() {
        return Err(format!("0.0.0.0 is no address; write `{NO_ADDRESS}`"));
    }
    Ok(Some(address))
}

/// `none`, or `<address>/<prefix length>` with a prefix length of at most 32.
fn ipv4_cidr(s: &str) -> Result<Option<(Ipv4Addr, u8)>, String> {
    let s = s.trim();
    if s == NO_ADDRESS {
        return Ok(None);
    }
    let expected = || {
        format!(
            "expected an IPv4 address with its prefix length such as 10.0.2.15/24 or `none`, got `{s}`"
        )
    };
    let (address, prefix) = s.split_once('/').ok_or_else(expected)?;
    let address = ipv4(address)?.ok_or_else(expected)?;
    let prefix = prefix
        .parse::<u8>()
        .ok()
        .filter(|&p| p <= 32)
        .ok_or_else(|| format!("the prefix length of `{s}` must be 0 to 32"))?;
    Ok(Some((address, prefix)))
}

/// How an address parameter is written when it has no address.
const NO_ADDRESS: &str = "none";

fn percent(n: u64) -> Result<ParamValue, String> {
    u8::try_from(n)
        .ok()
        .filter(|&p| p <= 100)
        .map(ParamValue::Percent)
        .ok_or_else(|| format!("a percentage must be between 0 and 100, got {n}"))
}

/// A parameter value after checking it against its [`ParamKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamValue {
    Size(ByteSize),
    Count(u64),
    Percent(u8),
    Bool(bool),
    Duration(Duration),
    Ipv4(Option<Ipv4Addr>),
    Ipv4Cidr(Option<(Ipv4Addr, u8)>),
}

impl ParamValue {
    pub fn kind(self) -> ParamKind {
        match self {
            ParamValue::Size(_) => ParamKind::Size,
            ParamValue::Count(_) => ParamKind::Count,
            ParamValue::Percent(_) => ParamKind::Percent,
            ParamValue::Bool(_) => ParamKind::Bool,
            ParamValue::Duration(_) => ParamKind::Duration,
            ParamValue::Ipv4(_) => ParamKind::Ipv4,
            ParamValue::Ipv4Cidr(_) => ParamKind::Ipv4Cidr,
        }
    }

    /// The value as the glue object stores it: bytes, counts and percentages as they are,
    /// booleans as 0/1, durations in nanoseconds (saturating), addresses as [`ParamKind::Ipv4`]
    /// and [`ParamKind::Ipv4Cidr`] say.
    pub fn as_u64(self) -> u64 {
        match self {
            ParamValue::Size(size) => size.0,
            ParamValue::Count(n) => n,
            ParamValue::Percent(p) => u64::from(p),
            ParamValue::Bool(b) => u64::from(b),
            ParamValue::Duration(d) => u64::try_from(d.0.as_nanos()).unwrap_or(u64::MAX),
            ParamValue::Ipv4(address) => address.map_or(0, |a| u64::from(a.to_bits())),
            ParamValue::Ipv4Cidr(cidr) => cidr.map_or(0, |(a, prefix)| {
                u64::from(a.to_bits()) << 8 | u64::from(prefix)
            }),
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Size(size) => size.fmt(f),
            ParamValue::Count(n) => n.fmt(f),
            ParamValue::Percent(p) => write!(f, "{p}%"),
            ParamValue::Bool(b) => b.fmt(f),
            ParamValue::Duration(d) => d.fmt(f),
            ParamValue::Ipv4(None) | ParamValue::Ipv4Cidr(None) => f.write_str(NO_ADDRESS),
            ParamValue::Ipv4(Some(address)) => address.fmt(f),
            ParamValue::Ipv4Cidr(Some((address, prefix))) => write!(f, "{address}/{prefix}"),
        }
    }
}

impl Serialize for ParamValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ParamValue::Size(size) => size.serialize(serializer),
            ParamValue::Count(n) => serializer.serialize_u64(*n),
            ParamValue::Percent(p) => serializer.serialize_u8(*p),
            ParamValue::Bool(b) => serializer.serialize_bool(*b),
            ParamValue::Duration(d) => d.serialize(serializer),
            ParamValue::Ipv4(_) | ParamValue::Ipv4Cidr(_) => serializer.collect_str(self),
        }
    }
}

/// A parameter value as written in YAML, before its kind is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawValue {
    Bool(bool),
    Int(u64),
    Str(String),
}

impl fmt::Display for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawValue::Bool(b) => write!(f, "boolean `{b}`"),
            RawValue::Int(n) => write!(f, "integer `{n}`"),
            RawValue::Str(s) => write!(f, "string `{s}`"),
        }
    }
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl Visitor<'_> for RawVisitor {
            type Value = RawValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, a size, a duration or a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawValue, E> {
                Ok(RawValue::Bool(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawValue, E> {
                Ok(RawValue::Int(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawValue, E> {
                u64::try_from(v)
                    .map(RawValue::Int)
                    .map_err(|_| E::custom(format!("parameters cannot be negative, got {v}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawValue, E> {
                Err(E::custom(format!(
                    "parameters are whole numbers, got {v}; write sizes with a unit such as 1536KiB"
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawValue, E> {
                Ok(RawValue::Str(v.to_owned()))
            }
        }
        deserializer.deserialize_any(RawVisitor)
    }
}

/// One parameter of a component.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamSpec {
    pub name: String,
    pub kind: ParamKind,
    /// How the glue object stores the value.
    pub ty: ParamType,
    pub doc: String,
    pub defaults: ProfileDefaults,
    /// A size the glue object also reserves: that many zero bytes, page-aligned, in `.bss` as
    /// `__uniklink_reserve_<component>_<param>` (the runtime's boot stack).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reserve: bool,
    /// The least value the component works with (its `component.yaml`'s `min`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<ParamValue>,
}

/// A parameter's value in each built-in profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProfileDefaults {
    pub minimal: ParamValue,
    pub network: ParamValue,
    pub filesystem: ParamValue,
}

impl ProfileDefaults {
    pub fn get(&self, profile: ProfileName) -> ParamValue {
        match profile {
            ProfileName::Minimal => self.minimal,
            ProfileName::Network => self.network,
            ProfileName::Filesystem => self.filesystem,
        }
    }
}

/// A library-OS component the validator knows about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentSpec {
    pub name: String,
    pub doc: String,
    /// The `extern "C" fn()` the glue object calls when the component is live.
    pub init: Option<String>,
    /// Components whose init runs before this one's.
    pub depends: Vec<String>,
    /// For a C component, the archive holding its code.
    pub archive: Option<PathBuf>,
    /// Rust crates or module paths (`unik_rt::heap`) whose code is this component, besides
    /// the crate the `component.yaml` sits in.
    pub crates: Vec<String>,
    /// Unmangled symbols (assembly entry points, `#[no_mangle]` functions) that are this
    /// component's: a demangler cannot name their crate.
    pub symbols: Vec<String>,
    /// Devices the component drives; the machine must have one of each.
    pub devices: Vec<DeviceKind>,
    /// Manifest keys that are this component's: a manifest setting one requires it.
    pub owns: Vec<OwnedKey>,
    pub params: BTreeMap<String, ParamSpec>,
}

/// Machine settings a profile provides besides component parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileSpec {
    pub name: ProfileName,
    pub doc: String,
    pub memory: ByteSize,
    /// Components every image of this profile contains, reached or not (unless the manifest
    /// forbids them).
    pub require: Vec<String>,
}

/// The components (and profile machine defaults) validation and resolution consult.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentRegistry {
    profiles: BTreeMap<ProfileName, ProfileSpec>,
    components: BTreeMap<String, ComponentSpec>,
}

const PROFILES_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles.yaml");
const PROFILES_YAML: &str = include_str!("../profiles.yaml");

// `LIBOS_COMPONENTS`: (path, text) of every `component.yaml` in uniklink's library OS, embedded
// by build.rs.
include!(concat!(env!("OUT_DIR"), "/libos_components.rs"));

static PROFILES: LazyLock<BTreeMap<ProfileName, ProfileSpec>> = LazyLock::new(|| {
    match parse_profiles(Path::new(PROFILES_PATH), PROFILES_YAML) {
        Ok(profiles) => profiles,
        // The embedded table is fixed at compile time and checked by the
        // `builtin_registry_is_valid` test, so this is a build defect, not bad input.
        Err(error) => panic!("built-in profile table is invalid: {error}"),
    }
});

static BUILTIN: LazyLock<ComponentRegistry> = LazyLock::new(|| {
    let components = LIBOS_COMPONENTS
        .iter()
        .map(|(path, text)| crate::component::parse_component(Path::new(path), text));
    let registry = components
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
        .and_then(|specs| ComponentRegistry::with_components(specs).map_err(|e| e.to_string()));
    match registry {
        Ok(registry) => registry,
        // The library OS's files are embedded at compile time and checked by the
        // `builtin_registry_is_valid` test, so this is a build defect, not bad input.
        Err(error) => panic!("the library OS's component.yaml files are invalid: {error}"),
    }
});

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileDecl {
    doc: String,
    memory: ByteSize,
    #[serde(default)]
    require: Vec<String>,
}

/// Reads a profile table in the format of `profiles.yaml`.
fn parse_profiles(
    path: &Path,
    text: &str,
) -> Result<BTreeMap<ProfileName, ProfileSpec>, ManifestError> {
    let source = Source::new(path, text);
    let file: BTreeMap<ProfileName, ProfileDecl> = crate::parse::from_source(&source)?;
    Ok(file
        .into_iter()
        .map(|(name, decl)| {
            let spec = ProfileSpec {
                name,
                doc: decl.doc,
                memory: decl.memory,
                require: decl.require,
            };
            (name, spec)
        })
        .collect())
}

impl ComponentRegistry {
    /// The components uniklink's own library OS declares (its `component.yaml` files, as
    /// they were when uniklink was built), with the built-in profiles.
    pub fn builtin() -> ComponentRegistry {
        BUILTIN.clone()
    }

    /// The built-in profiles with exactly `components`, e.g. those a library OS's
    /// `component.yaml` files declare.
    pub fn with_components(
        components: impl IntoIterator<Item = ComponentSpec>,
    ) -> Result<ComponentRegistry, RegistryConflict> {
        let mut registry = ComponentRegistry {
            profiles: PROFILES.clone(),
            components: BTreeMap::new(),
        };
        for spec in components {
            registry.add(spec)?;
        }
        Ok(registry)
    }

    /// Adds `other`'s components and profiles, or nothing if they conflict with these. A
    /// component both declare is a conflict: two crates claiming one name would make
    /// parameter overrides ambiguous.
    pub fn extend(&mut self, other: ComponentRegistry) -> Result<(), RegistryConflict> {
        let mut merged = self.clone();
        for spec in other.components.into_values() {
            merged.add(spec)?;
        }
        for (name, profile) in other.profiles {
            merged.profiles.entry(name).or_insert(profile);
        }
        *self = merged;
        Ok(())
    }

    fn add(&mut self, spec: ComponentSpec) -> Result<(), RegistryConflict> {
        if self.components.contains_key(&spec.name) {
            return Err(RegistryConflict::DuplicateComponent { name: spec.name });
        }
        for &key in &spec.owns {
            if let Some(owner) = self.owner(key) {
                return Err(RegistryConflict::SharedKey {
                    key,
                    first: owner.name.clone(),
                    second: spec.name,
                });
            }
        }
        self.components.insert(spec.name.clone(), spec);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&ComponentSpec> {
        self.components.get(name)
    }

    pub fn components(&self) -> impl Iterator<Item = &ComponentSpec> {
        self.components.values()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.components.keys().map(String::as_str)
    }

    pub fn profile(&self, name: ProfileName) -> Option<&ProfileSpec> {
        self.profiles.get(&name)
    }

    /// The component that owns the manifest key `key`, if any does.
    pub fn owner(&self, key: OwnedKey) -> Option<&ComponentSpec> {
        self.components().find(|c| c.owns.contains(&key))
    }
}

/// Component declarations that cannot share one registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryConflict {
    /// Two crates claim one name, which would make parameter overrides ambiguous.
    #[error("component `{name}` is declared twice")]
    DuplicateComponent { name: String },
    /// Two components own one manifest key, so setting it could not say which it requires.
    #[error("components `{first}` and `{second}` both own the manifest key `{key}`")]
    SharedKey {
        key: OwnedKey,
        first: String,
        second: String,
    },
}

/// Names that end up as symbols in the glue object, so they must be identifiers.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Located {
    pub(crate) fn unknown_component(self, name: &str, registry: &ComponentRegistry) -> Located {
        let known = registry.names().collect::<Vec<_>>().join(", ");
        let with_known = self.with_label(format!("known components: {known}"));
        with_known.suggest(name, registry.names())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_is_valid() {
        let registry = ComponentRegistry::builtin();
        for profile in ProfileName::ALL {
            assert!(
                registry.profile(profile).is_some(),
                "profile {profile} missing"
            );
        }
        for name in ["console", "clock", "heap", "net", "rt"] {
            assert!(registry.get(name).is_some(), "component {name} missing");
        }
        for component in registry.components() {
            assert!(
                !component.doc.trim().is_empty(),
                "{} undocumented",
                component.name
            );
            for dep in &component.depends {
                assert!(
                    registry.get(dep).is_some(),
                    "{}: no `{dep}`",
                    component.name
                );
            }
            for param in component.params.values() {
                assert!(
                    !param.doc.trim().is_empty(),
                    "{}.{}",
                    component.name,
                    param.name
                );
                for profile in ProfileName::ALL {
                    assert_eq!(param.defaults.get(profile).kind(), param.kind);
                }
            }
        }
    }

    /// The embedded copy is the library OS in this checkout: a component.yaml the build
    /// script missed, or one changed without rebuilding, shows up here.
    #[test]
    fn builtin_registry_is_the_library_os_on_disk() {
        let libos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../libos");
        let mut files = Vec::new();
        for krate in std::fs::read_dir(&libos).unwrap() {
            let dir = krate.unwrap().path();
            files.push(dir.join(crate::COMPONENT_FILE));
            if let Ok(inner) = std::fs::read_dir(dir.join("components")) {
                files.extend(inner.map(|e| e.unwrap().path().join(crate::COMPONENT_FILE)));
            }
        }
        files.retain(|f| f.is_file());
        let on_disk =
            ComponentRegistry::from_component_files(&files).unwrap_or_else(|e| panic!("{e}"));
        let builtin = ComponentRegistry::builtin();
        let names: Vec<&str> = builtin.names().collect();
        assert_eq!(names, on_disk.names().collect::<Vec<_>>());
        for component in on_disk.components() {
            let embedded = builtin.get(&component.name).unwrap();
            assert_eq!(embedded.params, component.params, "{}", component.name);
            assert_eq!(embedded.init, component.init, "{}", component.name);
            assert_eq!(embedded.depends, component.depends, "{}", component.name);
            assert_eq!(embedded.crates, component.crates, "{}", component.name);
            assert_eq!(embedded.devices, component.devices, "{}", component.name);
            assert_eq!(embedded.owns, component.owns, "{}", component.name);
        }
    }

    #[test]
    fn one_owner_per_manifest_key() {
        let spec = |text: &str| {
            crate::component::parse_component(Path::new("component.yaml"), text).unwrap()
        };
        let net = spec("name: net\nowns: [ports]\n");
        let fs = spec("name: fs\nowns: [volumes, files]\n");
        let registry = ComponentRegistry::with_components([net.clone(), fs]).unwrap();
        let owner = |key| registry.owner(key).map(|c| c.name.as_str());
        assert_eq!(owner(OwnedKey::Ports), Some("net"));
        assert_eq!(owner(OwnedKey::Files), Some("fs"));

        let rival = spec("name: web\nowns: [ports]\n");
        assert_eq!(
            ComponentRegistry::with_components([net, rival.clone()]).unwrap_err(),
            RegistryConflict::SharedKey {
                key: OwnedKey::Ports,
                first: "net".to_owned(),
                second: "web".to_owned()
            }
        );
        let mut extended = registry.clone();
        let other = ComponentRegistry::with_components([spec("name: app\n"), rival]).unwrap();
        let error = extended.extend(other).unwrap_err();
        assert_eq!(
            error.to_string(),
            "components `net` and `web` both own the manifest key `ports`"
        );
        assert_eq!(extended, registry, "a failed extend adds nothing");
    }

    #[test]
    fn profiles_require_declared_components() {
        let registry = ComponentRegistry::builtin();
        let network = registry.profile(ProfileName::Network).unwrap();
        assert_eq!(network.require, ["net"]);
        for profile in ProfileName::ALL {
            for required in &registry.profile(profile).unwrap().require {
                assert!(
                    registry.get(required).is_some(),
                    "profile {profile} requires `{required}`, which the library OS does not declare"
                );
            }
        }
        assert!(
            registry
                .profile(ProfileName::Minimal)
                .unwrap()
                .require
                .is_empty()
        );
    }

    /// A profile that only changed guest memory would not be worth a name.
    #[test]
    fn profiles_differ_in_parameters() {
        let registry = ComponentRegistry::builtin();
        let column = |profile: ProfileName| -> Vec<u64> {
            registry
                .components()
                .flat_map(|c| c.params.values())
                .map(|p| p.defaults.get(profile).as_u64())
                .collect()
        };
        for (i, a) in ProfileName::ALL.into_iter().enumerate() {
            for b in ProfileName::ALL.into_iter().skip(i + 1) {
                assert_ne!(column(a), column(b), "{a} and {b} set the same parameters");
            }
        }
    }

    /// "minimal: smallest everything" is a property of the data, so the data is checked. A
    /// bool is a behaviour, not an amount (`fs.write_through` is on in minimal: no dirty data
    /// waits in the cache), so only quantities are compared.
    #[test]
    fn minimal_profile_is_smallest() {
        let registry = ComponentRegistry::builtin();
        for component in registry.components() {
            let quantities = component
                .params
                .values()
                .filter(|p| p.kind != ParamKind::Bool);
            for param in quantities {
                let minimal = param.defaults.minimal.as_u64();
                for profile in [ProfileName::Network, ProfileName::Filesystem] {
                    assert!(
                        minimal <= param.defaults.get(profile).as_u64(),
                        "{}.{} is larger in minimal than in {profile}",
                        component.name,
                        param.name
                    );
                }
            }
        }
    }

    #[test]
    fn kinds_convert_scalars() {
        let ok = [
            (ParamKind::Size, RawValue::Str("64KiB".into()), "64KiB"),
            (ParamKind::Size, RawValue::Int(4096), "4KiB"),
            (ParamKind::Count, RawValue::Int(256), "256"),
            (ParamKind::Percent, RawValue::Str("25%".into()), "25%"),
            (ParamKind::Percent, RawValue::Int(40), "40%"),
            (ParamKind::Bool, RawValue::Bool(true), "true"),
            (ParamKind::Duration, RawValue::Str("10ms".into()), "10ms"),
        ];
        for (kind, raw, shown) in ok {
            assert_eq!(kind.convert(&raw).unwrap().to_string(), shown);
        }
        let bad = [
            (
                ParamKind::Count,
                RawValue::Str("many".into()),
                "expected a count",
            ),
            (ParamKind::Percent, RawValue::Int(150), "between 0 and 100"),
            (ParamKind::Bool, RawValue::Int(1), "expected a bool"),
            (ParamKind::Duration, RawValue::Int(10), "needs a unit"),
            (
                ParamKind::Size,
                RawValue::Str("10 parsecs".into()),
                "unknown size unit",
            ),
        ];
        for (kind, raw, fragment) in bad {
            let err = kind.convert(&raw).unwrap_err();
            assert!(err.contains(fragment), "{err}");
        }
    }
}
