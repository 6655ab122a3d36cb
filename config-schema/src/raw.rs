//! The manifest exactly as written: what serde reads and what the JSON Schema describes.
//! Values that later checks talk about are `Spanned`, so those checks can point at them.

use std::fmt;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_saphyr::Spanned;

use crate::registry::{ComponentRegistry, ParamKind, ProfileName, RawValue};
use crate::target::{Arch, Platform};
use crate::units::{ByteSize, Duration};

/// A uniklink manifest (`uniklink.yaml`): what to link, for which machines, with which
/// library-OS settings.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "uniklink manifest")]
pub(crate) struct RawManifest {
    /// Image name; names the output file, so letters, digits, `.`, `_` and `-` only.
    #[schemars(with = "String", regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"))]
    pub name: Spanned<String>,
    /// The application to link.
    #[schemars(with = "RawApp")]
    pub app: Spanned<RawApp>,
    /// One architecture or a list of them. Defaults to the platform's architecture, or
    /// x86_64.
    #[serde(default)]
    #[schemars(schema_with = "arch_schema")]
    pub arch: Option<Spanned<ArchList>>,
    /// The machine the image boots on; must support every listed architecture. Defaults to
    /// qemu-microvm on x86_64 and qemu-virt on aarch64.
    #[schemars(with = "Option<Platform>")]
    pub platform: Option<Spanned<Platform>>,
    /// Built-in profile supplying component parameter defaults. Defaults to minimal.
    #[schemars(with = "Option<ProfileName>")]
    pub profile: Option<Spanned<ProfileName>>,
    /// Components to force in or out, and parameter overrides.
    #[serde(default)]
    pub components: RawComponents,
    /// Extra root symbols kept even if nothing references them.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub keep: Vec<Spanned<String>>,
    /// Guest memory size. Defaults to the profile's.
    #[schemars(with = "Option<ByteSize>")]
    pub memory: Option<Spanned<ByteSize>>,
    /// Kernel command line passed to the application.
    #[schemars(with = "Option<String>")]
    pub cmdline: Option<Spanned<String>>,
    /// Randomize the image's layout with this seed: input sections shuffled inside code,
    /// read-only data, data and bss, and the base moved up by whole pages. The same seed
    /// gives the same image; `build --randomize-layout` overrides it.
    pub randomize_layout: Option<u64>,
    /// TCP ports `run` forwards from the host to the guest: `"HOST:GUEST"` or one number for
    /// both.
    #[serde(default)]
    #[schemars(with = "Vec<PortForward>")]
    pub ports: Vec<Spanned<PortText>>,
    /// The app's arguments (`unik::env::args()`), in order; `run --arg` adds more.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub args: Vec<Spanned<String>>,
    /// The app's environment (`unik::env::var`): NAME: value; `run -e NAME=VALUE` overrides.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, String>")]
    pub env: KeyedMap<Spanned<String>>,
    /// Host files and directories baked into the image, read-only in the guest.
    #[serde(default)]
    #[schemars(with = "Vec<RawFile>")]
    pub files: Vec<Spanned<RawFile>>,
    /// Disks the guest mounts, each a raw disk image on the host.
    #[serde(default)]
    #[schemars(with = "Vec<RawVolume>")]
    pub volumes: Vec<Spanned<RawVolume>>,
    /// Limits CI enforces on the linked image.
    #[serde(default)]
    pub budgets: RawBudgets,
}

/// Either a cargo package (`package`, optional `bin` and `path`) or prebuilt `objects`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{ "required": ["package"] }, { "required": ["objects"] }]))]
pub(crate) struct RawApp {
    /// Cargo package to build for the target.
    #[schemars(with = "Option<String>")]
    pub package: Option<Spanned<String>>,
    /// Binary target within the package, if it has several.
    #[schemars(with = "Option<String>")]
    pub bin: Option<Spanned<String>>,
    /// Directory holding the package (or its workspace), relative to the manifest.
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// Prebuilt ELF objects and `ar` archives, relative to the manifest.
    #[schemars(with = "Option<Vec<String>>", length(min = 1))]
    pub objects: Option<Spanned<Vec<Spanned<String>>>>,
    /// Entry symbol. Defaults to `_start` for prebuilt objects and to the library OS's
    /// boot entry for cargo packages.
    #[schemars(with = "Option<String>")]
    pub entry: Option<Spanned<String>>,
}

/// `require`/`forbid` lists and parameter overrides per component.
#[derive(Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawComponents {
    /// Components linked even if the application does not reach them.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub require: Vec<Spanned<String>>,
    /// Components that must not be linked; linking fails if the application reaches one.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub forbid: Vec<Spanned<String>>,
    /// Parameter overrides: `component: { parameter: value }`, applied over the profile.
    #[serde(default)]
    #[schemars(schema_with = "params_schema")]
    pub params: KeyedMap<KeyedMap<Spanned<RawValue>>>,
}

/// A host file or directory and where the guest sees it.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FileMapping")]
pub(crate) struct RawFile {
    /// File or directory on the host, relative to the manifest.
    #[schemars(with = "String", length(min = 1))]
    pub from: Spanned<String>,
    /// Absolute path in the guest.
    #[schemars(with = "String", regex(pattern = r"^/"))]
    pub to: Spanned<String>,
}

/// A disk: a raw image file on the host, mounted at a path in the guest.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Volume")]
pub(crate) struct RawVolume {
    /// The guest finds the disk by this name (its virtio-blk serial, at most 20 bytes).
    #[schemars(with = "String", regex(pattern = r"^[A-Za-z0-9._-]{1,20}$"))]
    pub name: Spanned<String>,
    /// Raw disk image on the host, relative to the manifest; `build` creates it if missing.
    #[schemars(with = "String", length(min = 1))]
    pub image: Spanned<String>,
    /// Disk size: at least 64KiB, a multiple of 4KiB.
    #[schemars(with = "ByteSize")]
    pub size: Spanned<ByteSize>,
    /// Absolute path in the guest where the disk is mounted.
    #[schemars(with = "String", regex(pattern = r"^/"))]
    pub mount: Spanned<String>,
    /// Mount the disk read-only.
    #[serde(default)]
    pub readonly: bool,
}

/// Limits the `link` report checks.
#[derive(Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBudgets {
    /// Largest acceptable image file.
    #[schemars(with = "Option<ByteSize>")]
    pub image_size: Option<Spanned<ByteSize>>,
    /// Longest acceptable time from VM start to the application's first instruction.
    #[schemars(with = "Option<Duration>")]
    pub boot_time: Option<Spanned<Duration>>,
    /// The cargo profile whose images the budgets gate (`release` by default: a debug image is
    /// several times larger), or `any` for every profile.
    #[schemars(with = "Option<String>")]
    pub profile: Option<Spanned<String>>,
}

/// Limits CI enforces on the linked image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Budgets {
    pub image_size: Option<ByteSize>,
    pub boot_time: Option<Duration>,
    /// The cargo profile they gate (its name as `--profile` takes it: `release`, `dev`, ...),
    /// or `None` for every profile (`any`).
    pub profile: Option<String>,
}

/// The profile budgets gate when the manifest does not say.
pub const BUDGET_PROFILE: &str = "release";

impl Budgets {
    /// Whether a build with cargo profile `profile` (`dev`, `release`, a custom name) is held
    /// to these budgets.
    pub fn gate(&self, profile: &str) -> bool {
        self.profile.as_deref().is_none_or(|gated| gated == profile)
    }
}

/// One or several architecture names, each with its position; names are checked later so an
/// unknown one is reported exactly where it is written.
pub(crate) struct ArchList(pub Vec<Spanned<String>>);

impl<'de> Deserialize<'de> for ArchList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArchListVisitor;
        impl<'de> Visitor<'de> for ArchListVisitor {
            type Value = ArchList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an architecture (x86_64, aarch64) or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ArchList, E> {
                // The caller knows where the scalar was; its location replaces this one.
                Ok(ArchList(vec![Spanned::new(
                    v.to_owned(),
                    serde_saphyr::Location::UNKNOWN,
                    serde_saphyr::Location::UNKNOWN,
                )]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ArchList, A::Error> {
                let mut arches = Vec::new();
                while let Some(arch) = seq.next_element()? {
                    arches.push(arch);
                }
                Ok(ArchList(arches))
            }
        }
        deserializer.deserialize_any(ArchListVisitor)
    }
}

fn arch_schema(generator: &mut SchemaGenerator) -> Schema {
    let arch = generator.subschema_for::<Arch>();
    json_schema!({
        "description": "One architecture or a list of them. Defaults to the platform's architecture, or x86_64.",
        "anyOf": [
            arch,
            { "type": "array", "items": arch, "minItems": 1, "uniqueItems": true }
        ]
    })
}

/// Overrides for the built-in components are spelled out so editors complete and check
/// them; other components (declared by library-OS crates) are still allowed.
fn params_schema(_: &mut SchemaGenerator) -> Schema {
    let registry = ComponentRegistry::builtin();
    let mut components = serde_json::Map::new();
    for component in registry.components() {
        let mut params = serde_json::Map::new();
        for param in component.params.values() {
            let defaults = ProfileName::ALL
                .map(|p| format!("{p}: {}", param.defaults.get(p)))
                .join(", ");
            let mut schema = kind_schema(param.kind);
            schema.insert(
                "description".to_owned(),
                format!("{} ({defaults})", param.doc.trim()).into(),
            );
            params.insert(param.name.clone(), schema.into());
        }
        components.insert(
            component.name.clone(),
            serde_json::json!({
                "description": component.doc.trim(),
                "type": "object",
                "properties": params,
                "additionalProperties": false,
            }),
        );
    }
    json_schema!({
        "description": "Parameter overrides: `component: { parameter: value }`, applied over the profile.",
        "type": "object",
        "properties": components,
        "additionalProperties": {
            "type": "object",
            "additionalProperties": { "type": ["integer", "string", "boolean"] }
        }
    })
}

fn kind_schema(kind: ParamKind) -> serde_json::Map<String, serde_json::Value> {
    let mut generator = SchemaGenerator::default();
    let schema = match kind {
        ParamKind::Size => ByteSize::json_schema(&mut generator),
        ParamKind::Duration => Duration::json_schema(&mut generator),
        ParamKind::Count => json_schema!({ "type": "integer", "minimum": 0 }),
        ParamKind::Percent => json_schema!({
            "anyOf": [
                { "type": "integer", "minimum": 0, "maximum": 100 },
                { "type": "string", "pattern": "^\\s*[0-9]{1,3}\\s*%\\s*$" }
            ]
        }),
        ParamKind::Bool => json_schema!({ "type": "boolean" }),
        ParamKind::Ipv4 => json_schema!({
            "type": "string",
            "pattern": "^\\s*(none|[0-9]{1,3}(\\.[0-9]{1,3}){3})\\s*$"
        }),
        ParamKind::Ipv4Cidr => json_schema!({
            "type": "string",
            "pattern": "^\\s*(none|[0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2})\\s*$"
        }),
    };
    let mut map = schema.to_value().as_object().cloned().unwrap_or_default();
    map.remove("description");
    map
}

/// A mapping kept in source order with each key's position, so checks on keys (unknown
/// component, unknown parameter) can point at the key itself.
pub(crate) struct KeyedMap<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for KeyedMap<V> {
    fn default() -> Self {
        KeyedMap(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for KeyedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = KeyedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyedMap<V>, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(KeyedMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// A host TCP port forwarded to a guest port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PortForward {
    pub host: u16,
    pub guest: u16,
}

impl fmt::Display for PortForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.guest)
    }
}

fn port(text: &str, what: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "{what} port `{}` is not a TCP port (1-65535)",
            crate::manifest::excerpt(text.trim())
        )),
        Ok(port) => Ok(port),
    }
}

impl PortForward {
    /// Parses `"HOST:GUEST"`, or one port used on both sides.
    pub fn parse(text: &str) -> Result<PortForward, String> {
        match text.split_once(':') {
            Some((host, guest)) => Ok(PortForward {
                host: port(host, "host")?,
                guest: port(guest, "guest")?,
            }),
            None => port(text, "the").map(|p| PortForward { host: p, guest: p }),
        }
    }
}

/// A port forward as written. The manifest checker parses it, so that every bad entry is
/// reported rather than only the first, where deserialization would stop.
#[derive(Debug, Clone)]
pub(crate) struct PortText(pub String);

impl<'de> Deserialize<'de> for PortText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PortVisitor;
        impl Visitor<'_> for PortVisitor {
            type Value = PortText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port forward such as \"8080:80\" or 8080")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortText, E> {
                Ok(PortText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortText, E> {
                Ok(PortText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<PortText, E> {
                Ok(PortText(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortText, E> {
                Ok(PortText(v.to_owned()))
            }
        }
        deserializer.deserialize_any(PortVisitor)
    }
}

impl JsonSchema for PortForward {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PortForward".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "\"HOST:GUEST\" TCP ports, or one port number used on both sides.",
            "anyOf": [
                { "type": "integer", "minimum": 1, "maximum": 65535 },
                { "type": "string", "pattern": "^\\s*[0-9]{1,5}\\s*(:\\s*[0-9]{1,5}\\s*)?$" }
            ]
        })
    }
}
