//! The uniklink manifest (`uniklink.yaml`): its model, the built-in profiles as data,
//! validation with `file:line:col` diagnostics, and the JSON Schema editors use.
//!
//! ```no_run
//! # fn main() -> Result<(), uniklink_config::ManifestError> {
//! let manifest = uniklink_config::Manifest::load("uniklink.yaml".as_ref())?;
//! let config = manifest.resolve();
//! for target in &config.targets {
//!     println!("{} on {}", target.arch.target_triple(), target.platform);
//! }
//! # Ok(())
//! # }
//! ```

mod component;
mod error;
mod manifest;
mod parse;
mod raw;
mod registry;
mod resolve;
mod suggest;
mod target;
mod units;

pub use component::{
    COMPONENT_FILE, ComponentSetError, DeviceKind, OwnedKey, ParamType, check_min, load_component,
    parse_component,
};
pub use error::{Located, ManifestError};
pub use manifest::{
    App, ComponentSelection, DEFAULT_PREBUILT_ENTRY, FileMapping, Manifest, Volume,
};
pub use parse::MAX_MANIFEST_BYTES;
pub use raw::{BUDGET_PROFILE, Budgets, PortForward};
pub use registry::{
    ComponentRegistry, ComponentSpec, ParamKind, ParamSpec, ParamValue, ProfileDefaults,
    ProfileName, ProfileSpec, RegistryConflict,
};
pub use resolve::{
    MAX_COMMAND_LINE, Origin, Requirement, ResolvedComponent, ResolvedConfig, ResolvedParam,
    Sourced, command_line,
};
pub use target::{Arch, Platform, Target};
/// Whether a name can be an environment variable's, as the library OS reads them.
pub use unik_platform::cmdline::is_env_name;
pub use units::{ByteSize, Duration, UnitError};

/// The JSON Schema of `uniklink.yaml`, pretty-printed with a trailing newline, exactly as
/// committed in `config-schema/uniklink.schema.json`.
pub fn schema_json() -> String {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let schema = generator.into_root_schema_for::<raw::RawManifest>();
    format!("{:#}\n", schema.as_value())
}
