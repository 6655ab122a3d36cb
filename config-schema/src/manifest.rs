//! The validated manifest. Loading reads, parses and checks everything the file alone can
//! tell, collecting every problem (not just the first) as a located diagnostic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_saphyr::{Location, Spanned};

use crate::component::OwnedKey;
use crate::error::{Located, ManifestError, Source};
use crate::raw::{
    ArchList, Budgets, KeyedMap, PortForward, PortText, RawApp, RawBudgets, RawComponents, RawFile,
    RawManifest, RawVolume,
};
use crate::registry::{ComponentRegistry, ParamValue, ProfileName};
use crate::resolve::ResolvedConfig;
use crate::target::{Arch, Platform, Target};
use crate::units::ByteSize;

/// The entry symbol of a prebuilt application when the manifest names none.
pub const DEFAULT_PREBUILT_ENTRY: &str = "_start";

/// The application to link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum App {
    /// A cargo package built for the target. `path` is the package directory, already joined
    /// to the manifest's directory. Without an `entry` the image enters through the library
    /// OS's boot routine for the target architecture, which only the library OS knows.
    Cargo {
        package: String,
        bin: Option<String>,
        path: PathBuf,
        entry: Option<String>,
    },
    /// Prebuilt ELF objects and archives, paths joined to the manifest's directory.
    Prebuilt {
        objects: Vec<PathBuf>,
        entry: String,
    },
}

impl App {
    /// The entry symbol the manifest chose, if any (always set for prebuilt objects).
    pub fn entry(&self) -> Option<&str> {
        match self {
            App::Cargo { entry, .. } => entry.as_deref(),
            App::Prebuilt { entry, .. } => Some(entry),
        }
    }
}

/// A host file or directory baked into the image; the guest sees it, read-only, at `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileMapping {
    /// On the host, joined to the manifest's directory. Loading does not check that it
    /// exists; `build` does.
    pub from: PathBuf,
    /// Absolute guest path without `.`, `..` or empty components; the tree of a directory
    /// lands under it.
    pub to: String,
}

/// A disk the guest mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// How the guest finds the disk: the virtio-blk serial the runner gives it.
    pub name: String,
    /// The raw disk image on the host, joined to the manifest's directory. Loading does not
    /// check that it exists; `build` creates it when it does not.
    pub image: PathBuf,
    /// The disk's size when `build` creates it.
    pub size: ByteSize,
    /// Absolute guest path without `.`, `..` or empty components; no other volume's mount
    /// lies under it or above it.
    pub mount: String,
    pub readonly: bool,
}

/// The longest file name Linux file systems hold, in bytes.
const MAX_FILE_NAME: usize = 255;

impl Manifest {
    /// The longest image name: its longest file name, `<name>-aarch64.data.o`, must fit in
    /// [`MAX_FILE_NAME`] bytes.
    pub const MAX_NAME_LEN: usize = MAX_FILE_NAME - "-aarch64.data.o".len();
}

impl Volume {
    /// The longest name: a virtio-blk serial is 20 bytes.
    pub const MAX_NAME_LEN: usize = 20;
    /// The smallest disk.
    pub const MIN_SIZE: ByteSize = ByteSize::kib(64);
    /// Sizes are whole multiples of this, the file system's block.
    pub const SIZE_GRANULE: ByteSize = ByteSize::kib(4);
}

/// Component selection as the manifest states it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ComponentSelection {
    pub require: Vec<String>,
    pub forbid: Vec<String>,
    /// `component -> parameter -> value`, each value already checked against its kind.
    pub params: BTreeMap<String, BTreeMap<String, ParamValue>>,
}

/// A manifest that parsed and passed validation against a [`ComponentRegistry`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    /// The manifest file, as given to [`Manifest::load`].
    pub path: PathBuf,
    pub name: String,
    pub app: App,
    pub targets: Vec<Target>,
    pub profile: ProfileName,
    pub components: ComponentSelection,
    pub keep: Vec<String>,
    pub memory: Option<ByteSize>,
    pub cmdline: Option<String>,
    /// The layout randomization seed, if any.
    pub randomize_layout: Option<u64>,
    pub ports: Vec<PortForward>,
    /// The app's arguments, in order.
    pub args: Vec<String>,
    /// The app's environment, in manifest order.
    pub env: Vec<(String, String)>,
    pub files: Vec<FileMapping>,
    pub volumes: Vec<Volume>,
    pub budgets: Budgets,
    #[serde(skip)]
    registry: ComponentRegistry,
}

impl Manifest {
    /// Reads, parses and validates a manifest against the built-in components.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        Manifest::load_with(path, &ComponentRegistry::builtin())
    }

    /// Like [`Manifest::load`], with the components of `registry`.
    pub fn load_with(path: &Path, registry: &ComponentRegistry) -> Result<Manifest, ManifestError> {
        let source = crate::parse::read_source(path)?;
        Manifest::validate(&source, registry, Disk::Ignore)
    }

    /// Like [`Manifest::load`], and also checks on disk what `build` will need of the app: the
    /// cargo package directory with its `Cargo.toml`, or the prebuilt objects as regular files.
    pub fn load_and_check_app(path: &Path) -> Result<Manifest, ManifestError> {
        let source = crate::parse::read_source(path)?;
        Manifest::validate(&source, &ComponentRegistry::builtin(), Disk::Check)
    }

    /// Parses and validates manifest text; `path` names it in diagnostics and anchors
    /// relative paths.
    pub fn from_text(
        path: &Path,
        text: &str,
        registry: &ComponentRegistry,
    ) -> Result<Manifest, ManifestError> {
        Manifest::validate(&Source::new(path, text), registry, Disk::Ignore)
    }

    /// The configuration later phases consume: profile defaults with manifest overrides.
    pub fn resolve(&self) -> ResolvedConfig {
        ResolvedConfig::new(self, &self.registry)
    }

    /// Whether the manifest sets `key` (lists at least one entry), which requires the
    /// component that owns it.
    pub fn sets(&self, key: OwnedKey) -> bool {
        match key {
            OwnedKey::Ports => !self.ports.is_empty(),
            OwnedKey::Files => !self.files.is_empty(),
            OwnedKey::Volumes => !self.volumes.is_empty(),
            OwnedKey::Args => !self.args.is_empty(),
            OwnedKey::Env => !self.env.is_empty(),
        }
    }

    fn validate(
        source: &Source,
        registry: &ComponentRegistry,
        disk: Disk,
    ) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = crate::parse::from_source(source)?;
        let mut checker = Checker {
            source,
            registry,
            disk,
            errors: Vec::new(),
        };
        let manifest = checker.manifest(raw);
        if !checker.errors.is_empty() {
            return Err(ManifestError::invalid(checker.errors));
        }
        manifest.ok_or_else(|| {
            ManifestError::from(source.error_at_offset(0, 0, "manifest is incomplete"))
        })
    }
}

/// Whether validation looks at the files the manifest names, or only at its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disk {
    Ignore,
    Check,
}

struct Checker<'a> {
    source: &'a Source,
    registry: &'a ComponentRegistry,
    disk: Disk,
    errors: Vec<Located>,
}

impl Checker<'_> {
    fn error(&mut self, at: Location, message: impl Into<String>) -> &mut Located {
        self.errors.push(self.source.error_at(at, message));
        let last = self.errors.len() - 1;
        &mut self.errors[last]
    }

    fn push(&mut self, error: Located) {
        self.errors.push(error);
    }

    fn base_dir(&self) -> PathBuf {
        match self.source.path().parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    fn manifest(&mut self, raw: RawManifest) -> Option<Manifest> {
        self.name(&raw.name);
        let app = self.app(raw.app);
        let targets = self.targets(raw.arch, raw.platform);
        let profile = raw
            .profile
            .as_ref()
            .map_or(ProfileName::Minimal, |p| p.value);
        if self.registry.profile(profile).is_none() {
            let at = raw
                .profile
                .as_ref()
                .map_or(Location::UNKNOWN, |p| p.referenced);
            self.error(
                at,
                format!("profile `{profile}` is not defined by the component registry"),
            );
        }
        let components = self.components(&raw.components);
        let keep = self.symbols(&raw.keep);
        let cmdline = raw.cmdline.map(|c| {
            if c.value.chars().any(char::is_control) {
                self.error(c.referenced, "the command line must be one line of text");
            }
            c.value
        });
        let ports = self.ports(&raw.ports);
        let (args, env) = self.args_and_env(&raw.args, &raw.env, cmdline.as_deref());
        let volumes = self.volumes(&raw.volumes);
        let files = self.files(&raw.files, &raw.volumes);
        self.owned_keys(
            &[
                (OwnedKey::Ports, raw.ports.first().map(|p| p.referenced)),
                (OwnedKey::Files, raw.files.first().map(|f| f.referenced)),
                (OwnedKey::Volumes, raw.volumes.first().map(|v| v.referenced)),
                (OwnedKey::Args, raw.args.first().map(|a| a.referenced)),
                (OwnedKey::Env, raw.env.0.first().map(|(k, _)| k.referenced)),
            ],
            &components,
        );
        let budgets = self.budgets(&raw.budgets);
        if let Some(memory) = &raw.memory
            && memory.value.0 == 0
        {
            self.error(memory.referenced, "memory cannot be 0");
        }

        let manifest = Manifest {
            path: self.source.path().to_path_buf(),
            name: raw.name.value,
            app: app?,
            targets,
            profile,
            components,
            keep,
            memory: raw.memory.as_ref().map(|m| m.value),
            cmdline,
            randomize_layout: raw.randomize_layout,
            ports,
            args,
            env,
            files,
            volumes,
            budgets,
            registry: self.registry.clone(),
        };
        Some(manifest)
    }

    fn name(&mut self, name: &Spanned<String>) {
        let text = &name.value;
        if text.len() > Manifest::MAX_NAME_LEN {
            self.error(
                name.referenced,
                format!(
                    "image name `{}` is {} bytes long; at most {} fit in its file names",
                    excerpt(text),
                    text.len(),
                    Manifest::MAX_NAME_LEN
                ),
            )
            .help = Some(format!(
                "the name becomes `<name>-<arch>.elf`, `.json` and `.data.o`, and a file name holds at most {MAX_FILE_NAME} bytes"
            ));
            return;
        }
        let valid = text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && text
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric());
        if !valid {
            self.error(
                name.referenced,
                format!("`{}` is not a usable image name", excerpt(text)),
            )
            .help = Some(
                "names the output file: start with a letter or digit, then letters, digits, `.`, `_`, `-`"
                    .to_owned(),
            );
        }
    }

    fn app(&mut self, app: Spanned<RawApp>) -> Option<App> {
        let at = app.referenced;
        let RawApp {
            package,
            bin,
            path,
            objects,
            entry,
        } = app.value;
        let entry_name = entry.as_ref().map(|e| {
            self.symbol(e);
            e.value.clone()
        });
        match (package, objects) {
            (Some(package), None) => {
                if package.value.trim().is_empty() {
                    self.error(package.referenced, "`package` cannot be empty");
                }
                let dir = self.base_dir();
                let (path, path_at) = match path {
                    Some(p) => (dir.join(&p.value), p.referenced),
                    None => (dir, package.referenced),
                };
                if self.disk == Disk::Check {
                    self.package_dir(&path, path_at);
                }
                Some(App::Cargo {
                    package: package.value,
                    bin: bin.map(|b| b.value),
                    path,
                    entry: entry_name,
                })
            }
            (None, Some(objects)) => {
                for field in [&bin, &path].into_iter().flatten() {
                    self.error(
                        field.referenced,
                        "`bin` and `path` describe a cargo package; prebuilt `objects` take neither",
                    );
                }
                if objects.value.is_empty() {
                    self.error(objects.referenced, "`objects` lists no files");
                }
                let dir = self.base_dir();
                let mut files = Vec::new();
                for object in &objects.value {
                    let file = dir.join(&object.value);
                    if object.value.trim().is_empty() {
                        self.error(object.referenced, "empty object path");
                    } else if self.disk == Disk::Check {
                        self.object_file(&file, object.referenced);
                    }
                    files.push(file);
                }
                Some(App::Prebuilt {
                    objects: files,
                    entry: entry_name.unwrap_or_else(|| DEFAULT_PREBUILT_ENTRY.to_owned()),
                })
            }
            (Some(package), Some(objects)) => {
                self.error(
                    objects.referenced,
                    "`app` names both a cargo `package` and prebuilt `objects`",
                )
                .help = Some(format!(
                    "keep one: `package: {}` or the `objects` list",
                    package.value
                ));
                None
            }
            (None, None) => {
                self.error(at, "`app` needs a cargo `package` or a list of `objects`");
                None
            }
        }
    }

    /// `build` runs cargo in this directory, which must hold a package's `Cargo.toml`.
    fn package_dir(&mut self, dir: &Path, at: Location) {
        let shown = excerpt(&dir.display().to_string());
        let problem = match std::fs::metadata(dir) {
            Err(error) => format!("app path `{shown}` cannot be used: {error}"),
            Ok(m) if !m.is_dir() => {
                format!("app path `{shown}` is a file, not a package directory")
            }
            Ok(_) if !dir.join("Cargo.toml").is_file() => {
                format!("app path `{shown}` is not a cargo package: it has no Cargo.toml")
            }
            Ok(_) => return,
        };
        self.error(at, problem).help = Some(
            "`app.path` is the cargo package's directory, relative to the manifest".to_owned(),
        );
    }

    /// `build` links each prebuilt object, which must be a regular file.
    fn object_file(&mut self, file: &Path, at: Location) {
        let shown = excerpt(&file.display().to_string());
        match std::fs::metadata(file) {
            Err(error) => {
                self.error(at, format!("object `{shown}` cannot be used: {error}"));
            }
            Ok(m) if !m.is_file() => {
                self.error(at, format!("object `{shown}` is not a regular file"));
            }
            Ok(_) => {}
        }
    }

    fn targets(
        &mut self,
        arch: Option<Spanned<ArchList>>,
        platform: Option<Spanned<Platform>>,
    ) -> Vec<Target> {
        let mut listed: Vec<Spanned<Arch>> = Vec::new();
        if let Some(list) = arch {
            if list.value.0.is_empty() {
                self.error(list.referenced, "`arch` lists no architecture");
            }
            for name in list.value.0 {
                let at = match name.referenced.line() {
                    0 => list.referenced,
                    _ => name.referenced,
                };
                match Arch::ALL.into_iter().find(|a| a.name() == name.value) {
                    Some(arch) => listed.push(Spanned::new(arch, at, at)),
                    None => {
                        let error = self
                            .source
                            .error_at(
                                at,
                                format!("unknown architecture `{}`", excerpt(&name.value)),
                            )
                            .with_label("expected x86_64 or aarch64")
                            .suggest(&name.value, Arch::ALL.map(Arch::name));
                        self.push(error);
                    }
                }
            }
        }
        let mut unique: Vec<Spanned<Arch>> = Vec::new();
        for arch in listed {
            if unique.iter().any(|u| u.value == arch.value) {
                self.error(
                    arch.referenced,
                    format!("architecture `{}` is listed twice", arch.value),
                );
            } else {
                unique.push(arch);
            }
        }
        let mut arches = unique;
        match platform {
            Some(platform) => {
                if arches.is_empty() {
                    let arch = platform.value.arches()[0];
                    arches.push(Spanned::new(arch, platform.referenced, platform.defined));
                }
                for arch in &arches {
                    if !platform.value.supports(arch.value) {
                        let bootable: Vec<&str> = Platform::ALL
                            .iter()
                            .filter(|p| p.supports(arch.value))
                            .map(|p| p.name())
                            .collect();
                        let supported: Vec<&str> =
                            platform.value.arches().iter().map(|a| a.name()).collect();
                        let error = self
                            .source
                            .error_at(
                                platform.referenced,
                                format!(
                                    "platform `{}` cannot boot {} images",
                                    platform.value, arch.value
                                ),
                            )
                            .with_label(format!("{} only", supported.join(" and ")))
                            .with_help(format!("{} boots on: {}", arch.value, bootable.join(", ")));
                        self.push(error);
                    }
                }
                arches
                    .iter()
                    .map(|a| Target {
                        arch: a.value,
                        platform: platform.value,
                    })
                    .collect()
            }
            None if arches.is_empty() => vec![Target {
                arch: Arch::X86_64,
                platform: Arch::X86_64.default_platform(),
            }],
            None => arches
                .iter()
                .map(|a| Target {
                    arch: a.value,
                    platform: a.value.default_platform(),
                })
                .collect(),
        }
    }

    fn component_names(&mut self, list: &[Spanned<String>], what: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for item in list {
            if self.registry.get(&item.value).is_none() {
                let error = self
                    .source
                    .error_at(
                        item.referenced,
                        format!("unknown component `{}`", excerpt(&item.value)),
                    )
                    .unknown_component(&item.value, self.registry);
                self.push(error);
            } else if names.contains(&item.value) {
                self.error(
                    item.referenced,
                    format!("component `{}` is {what} twice", excerpt(&item.value)),
                );
            } else {
                names.push(item.value.clone());
            }
        }
        names
    }

    fn components(&mut self, raw: &RawComponents) -> ComponentSelection {
        let require = self.component_names(&raw.require, "required");
        let forbid = self.component_names(&raw.forbid, "forbidden");
        for item in &raw.forbid {
            if let Some(required) = raw.require.iter().find(|r| r.value == item.value) {
                let line = required.referenced.line();
                self.error(
                    item.referenced,
                    format!(
                        "component `{}` is both required (line {line}) and forbidden",
                        item.value
                    ),
                )
                .help = Some("remove it from `require` or from `forbid`".to_owned());
            }
        }
        let mut params = BTreeMap::new();
        for (component_key, overrides) in &raw.params.0 {
            let component_name = component_key.value.as_str();
            let Some(component) = self.registry.get(component_name) else {
                let error = self
                    .source
                    .error_at(
                        component_key.referenced,
                        format!("unknown component `{}`", excerpt(component_name)),
                    )
                    .unknown_component(component_name, self.registry);
                self.push(error);
                continue;
            };
            if forbid.iter().any(|f| f == component_name) {
                self.error(
                    component_key.referenced,
                    format!(
                        "component `{component_name}` is forbidden, so it has no parameters to set"
                    ),
                );
            }
            let mut values = BTreeMap::new();
            for (param_key, value) in &overrides.0 {
                let param_name = param_key.value.as_str();
                let Some(param) = component.params.get(param_name) else {
                    let known = component.params.keys().map(String::as_str);
                    let error = self
                        .source
                        .error_at(
                            param_key.referenced,
                            format!(
                                "component `{component_name}` has no parameter `{}`",
                                excerpt(param_name)
                            ),
                        )
                        .with_label(format!(
                            "parameters: {}",
                            component
                                .params
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                        .suggest(param_name, known);
                    self.push(error);
                    continue;
                };
                let checked = param
                    .kind
                    .convert(&value.value)
                    .and_then(|value| crate::component::check_min(value, param.min));
                match checked {
                    Ok(converted) => {
                        values.insert(param_name.to_owned(), converted);
                    }
                    Err(message) => {
                        let error = self
                            .source
                            .error_at(
                                value.referenced,
                                format!("`{component_name}.{param_name}`: {message}"),
                            )
                            .with_label(format!("{}: {}", param.kind.a(), param.doc.trim()));
                        self.push(error);
                    }
                }
            }
            params.insert(component_name.to_owned(), values);
        }
        ComponentSelection {
            require,
            forbid,
            params,
        }
    }

    fn symbol(&mut self, symbol: &Spanned<String>) {
        let text = &symbol.value;
        if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c == '\0') {
            self.error(
                symbol.referenced,
                format!("`{}` is not a symbol name", excerpt(text)),
            );
        }
    }

    fn symbols(&mut self, list: &[Spanned<String>]) -> Vec<String> {
        list.iter()
            .map(|s| {
                self.symbol(s);
                s.value.clone()
            })
            .collect()
    }

    fn ports(&mut self, list: &[Spanned<PortText>]) -> Vec<PortForward> {
        let mut ports: Vec<PortForward> = Vec::new();
        for text in list {
            let port = match PortForward::parse(&text.value.0) {
                Ok(port) => port,
                Err(message) => {
                    self.error(text.referenced, message);
                    continue;
                }
            };
            if ports.iter().any(|p| p.host == port.host) {
                self.error(
                    text.referenced,
                    format!("host port {} is forwarded twice", port.host),
                );
            }
            ports.push(port);
        }
        ports
    }

    /// A manifest key in use (at its first entry) requires the component that owns it, so
    /// that component cannot be forbidden.
    fn owned_keys(
        &mut self,
        used: &[(OwnedKey, Option<Location>)],
        components: &ComponentSelection,
    ) {
        let registry = self.registry;
        for &(key, at) in used {
            let (Some(at), Some(owner)) = (at, registry.owner(key)) else {
                continue;
            };
            if components.forbid.contains(&owner.name) {
                let name = &owner.name;
                self.error(
                    at,
                    format!("`{key}` belongs to component `{name}`, which is forbidden"),
                )
                .help = Some(format!(
                    "remove `{name}` from `components.forbid` or drop `{key}`"
                ));
            }
        }
    }

    /// Checks a guest path (`what` names it in messages); false if it is unusable.
    fn guest_path(&mut self, path: &Spanned<String>, what: &str) -> bool {
        let Some(problem) = guest_path_problem(&path.value) else {
            return true;
        };
        let shown = path.value.replace('\0', "\\0");
        self.error(path.referenced, format!("{what} `{shown}` {problem}"));
        false
    }

    fn volumes(&mut self, list: &[Spanned<RawVolume>]) -> Vec<Volume> {
        let dir = self.base_dir();
        let mut volumes: Vec<Volume> = Vec::new();
        // Earlier volumes with a usable mount, for the nesting check.
        let mut mounts: Vec<&RawVolume> = Vec::new();
        for (index, volume) in list.iter().enumerate() {
            let raw = &volume.value;
            let name = &raw.name;
            if !is_volume_name(&name.value) {
                self.error(
                    name.referenced,
                    format!("`{}` is not a usable volume name", excerpt(&name.value)),
                )
                .help = Some(format!(
                    "1 to {} letters, digits, `.`, `_` or `-`: the guest finds the disk by this \
                     name, its virtio-blk serial",
                    Volume::MAX_NAME_LEN
                ));
            } else if let Some(first) = list[..index]
                .iter()
                .find(|v| v.value.name.value == name.value)
            {
                let line = first.value.name.referenced.line();
                self.error(
                    name.referenced,
                    format!(
                        "volume `{}` is declared twice (first on line {line})",
                        name.value
                    ),
                );
            }
            if raw.image.value.trim().is_empty() {
                self.error(raw.image.referenced, "empty `image` path");
            }
            let size = raw.size.value;
            if size < Volume::MIN_SIZE {
                self.error(
                    raw.size.referenced,
                    format!(
                        "a volume of {size} is too small; the least is {}",
                        Volume::MIN_SIZE
                    ),
                );
            } else if !size.0.is_multiple_of(Volume::SIZE_GRANULE.0) {
                self.error(
                    raw.size.referenced,
                    format!(
                        "volume size {size} is not a multiple of {}",
                        Volume::SIZE_GRANULE
                    ),
                );
            }
            if self.guest_path(&raw.mount, "mount point") {
                let mount = &raw.mount.value;
                if let Some(other) = mounts.iter().find(|o| nested(mount, &o.mount.value)) {
                    let line = other.mount.referenced.line();
                    let message = if *mount == other.mount.value {
                        format!(
                            "`{mount}` is already the mount point of volume `{}` (line {line})",
                            other.name.value
                        )
                    } else {
                        format!(
                            "mount point `{mount}` and volume `{}`'s `{}` (line {line}) lie one \
                             under the other",
                            other.name.value, other.mount.value
                        )
                    };
                    self.error(raw.mount.referenced, message);
                }
                mounts.push(raw);
            }
            volumes.push(Volume {
                name: name.value.clone(),
                image: dir.join(&raw.image.value),
                size,
                mount: raw.mount.value.clone(),
                readonly: raw.readonly,
            });
        }
        volumes
    }

    /// `volumes` are the manifest's as written: a baked file under a disk's mount point would
    /// be hidden by the disk, or hide part of it.
    fn files(
        &mut self,
        list: &[Spanned<RawFile>],
        volumes: &[Spanned<RawVolume>],
    ) -> Vec<FileMapping> {
        let dir = self.base_dir();
        let mut files = Vec::new();
        for (index, file) in list.iter().enumerate() {
            let RawFile { from, to } = &file.value;
            if from.value.trim().is_empty() {
                self.error(from.referenced, "empty `from` path");
            }
            if self.guest_path(to, "`to`") {
                let target = &to.value;
                if let Some(first) = list[..index].iter().find(|f| f.value.to.value == *target) {
                    let line = first.value.to.referenced.line();
                    self.error(
                        to.referenced,
                        format!(
                            "`{target}` is already the target of the `files` entry on line {line}"
                        ),
                    );
                }
                if let Some(volume) = volumes
                    .iter()
                    .map(|v| &v.value)
                    .filter(|v| guest_path_problem(&v.mount.value).is_none())
                    .find(|v| under(target, &v.mount.value))
                {
                    self.error(
                        to.referenced,
                        format!(
                            "`{target}` lies under `{}`, the mount point of volume `{}`",
                            volume.mount.value, volume.name.value
                        ),
                    )
                    .help = Some(
                        "the disk would hide the baked files; bake them elsewhere or move the mount point"
                            .to_owned(),
                    );
                }
            }
            files.push(FileMapping {
                from: dir.join(&from.value),
                to: to.value.clone(),
            });
        }
        files
    }

    /// The app's arguments and environment: no NUL anywhere, names as shells take them, and
    /// all of it, encoded, fitting on the command line beside `cmdline`.
    fn args_and_env(
        &mut self,
        args: &[Spanned<String>],
        env: &KeyedMap<Spanned<String>>,
        cmdline: Option<&str>,
    ) -> (Vec<String>, Vec<(String, String)>) {
        for arg in args {
            if arg.value.contains('\0') {
                self.error(arg.referenced, "an argument cannot contain a NUL character");
            }
        }
        for (name, value) in &env.0 {
            if !unik_platform::cmdline::is_env_name(name.value.as_bytes()) {
                self.error(
                    name.referenced,
                    format!(
                        "`{}` is not an environment variable name (a letter or `_`, then letters, digits and `_`)",
                        excerpt(&name.value)
                    ),
                );
            }
            if value.value.contains('\0') {
                self.error(value.referenced, "a value cannot contain a NUL character");
            }
        }
        let at = args
            .first()
            .map(|a| a.referenced)
            .or_else(|| env.0.first().map(|(name, _)| name.referenced));
        let args: Vec<String> = args.iter().map(|a| a.value.clone()).collect();
        let env: Vec<(String, String)> = env
            .0
            .iter()
            .map(|(name, value)| (name.value.clone(), value.value.clone()))
            .collect();
        let length = crate::resolve::command_line(cmdline.unwrap_or(""), &args, &env).len();
        if let Some(at) = at
            && length > crate::resolve::MAX_COMMAND_LINE
        {
            self.error(
                at,
                format!(
                    "`cmdline`, `args` and `env` take {length} bytes on the kernel command line, \
                     more than the {} every platform accepts",
                    crate::resolve::MAX_COMMAND_LINE
                ),
            );
        }
        (args, env)
    }

    fn budgets(&mut self, raw: &RawBudgets) -> Budgets {
        if let Some(size) = &raw.image_size
            && size.value.0 == 0
        {
            self.error(
                size.referenced,
                "an image size budget of 0 can never be met",
            );
        }
        if let Some(time) = &raw.boot_time
            && time.value.0.is_zero()
        {
            self.error(time.referenced, "a boot time budget of 0 can never be met");
        }
        let profile = match &raw.profile {
            None => Some(crate::raw::BUDGET_PROFILE.to_owned()),
            Some(p) if p.value == "any" => None,
            Some(p) => {
                let valid = !p.value.is_empty()
                    && p.value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !valid {
                    self.error(
                        p.referenced,
                        format!(
                            "`{}` is not a cargo profile name (letters, digits, `-`, `_`) or `any`",
                            p.value
                        ),
                    );
                }
                Some(p.value.clone())
            }
        };
        Budgets {
            image_size: raw.image_size.as_ref().map(|s| s.value),
            boot_time: raw.boot_time.as_ref().map(|t| t.value),
            profile,
        }
    }
}

/// At most the first 100 characters of `text`, marked when cut, for messages about values
/// that may be huge.
pub(crate) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Why `path` is not a guest path (absolute, normalised, no NUL), if it is not one.
fn guest_path_problem(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        Some("is not an absolute guest path (starting with `/`)")
    } else if path.contains('\0') {
        Some("contains a NUL character")
    } else if path != "/" && path[1..].split('/').any(|c| matches!(c, "" | "." | "..")) {
        Some("has an empty, `.` or `..` component; write the path out in full")
    } else {
        None
    }
}

/// A virtio-blk serial the guest can match: 1 to 20 bytes of `[A-Za-z0-9._-]`.
fn is_volume_name(name: &str) -> bool {
    (1..=Volume::MAX_NAME_LEN).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Whether the guest path `path` is `base` or lies below it.
fn under(path: &str, base: &str) -> bool {
    base == "/"
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether one of two guest paths lies under the other (or they are the same).
fn nested(a: &str, b: &str) -> bool {
    under(a, b) || under(b, a)
}
