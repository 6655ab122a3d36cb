//! The validated manifest. Loading reads, parses and checks everything the file alone can
//! tell, collecting every problem (not just the first) as a located diagnostic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_saphyr::{Location, Spanned};

use crate::error::{Located, ManifestError, Source};
use crate::raw::{ArchList, Budgets, PortForward, RawApp, RawBudgets, RawComponents, RawManifest};
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
    pub ports: Vec<PortForward>,
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
        Manifest::validate(&source, registry)
    }

    /// Parses and validates manifest text; `path` names it in diagnostics and anchors
    /// relative paths.
    pub fn from_text(
        path: &Path,
        text: &str,
        registry: &ComponentRegistry,
    ) -> Result<Manifest, ManifestError> {
        Manifest::validate(&Source::new(path, text), registry)
    }

    /// The configuration later phases consume: profile defaults with manifest overrides.
    pub fn resolve(&self) -> ResolvedConfig {
        ResolvedConfig::new(self, &self.registry)
    }

    fn validate(source: &Source, registry: &ComponentRegistry) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = crate::parse::from_source(source)?;
        let mut checker = Checker {
            source,
            registry,
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

struct Checker<'a> {
    source: &'a Source,
    registry: &'a ComponentRegistry,
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
        let ports = self.ports(&raw.ports, &components);
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
            ports,
            budgets,
            registry: self.registry.clone(),
        };
        Some(manifest)
    }

    fn name(&mut self, name: &Spanned<String>) {
        let text = &name.value;
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
                format!("`{text}` is not a usable image name"),
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
                let path = match path {
                    Some(p) => dir.join(&p.value),
                    None => dir,
                };
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
                    if object.value.trim().is_empty() {
                        self.error(object.referenced, "empty object path");
                    }
                    files.push(dir.join(&object.value));
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
                            .error_at(at, format!("unknown architecture `{}`", name.value))
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
                        format!("unknown component `{}`", item.value),
                    )
                    .unknown_component(&item.value, self.registry);
                self.push(error);
            } else if names.contains(&item.value) {
                self.error(
                    item.referenced,
                    format!("component `{}` is {what} twice", item.value),
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
                        format!("unknown component `{component_name}`"),
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
                            format!("component `{component_name}` has no parameter `{param_name}`"),
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
                match param.kind.convert(&value.value) {
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
                            .with_label(format!("a {}: {}", param.kind.name(), param.doc.trim()));
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
            self.error(symbol.referenced, format!("`{text}` is not a symbol name"));
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

    fn ports(
        &mut self,
        list: &[Spanned<PortForward>],
        components: &ComponentSelection,
    ) -> Vec<PortForward> {
        let mut hosts: Vec<u16> = Vec::new();
        for port in list {
            if hosts.contains(&port.value.host) {
                self.error(
                    port.referenced,
                    format!("host port {} is forwarded twice", port.value.host),
                );
            }
            hosts.push(port.value.host);
        }
        if let Some(first) = list.first()
            && components.forbid.iter().any(|f| f == "net")
        {
            self.error(
                first.referenced,
                "ports are forwarded to a guest whose `net` component is forbidden",
            )
            .help = Some("remove `net` from `components.forbid` or drop `ports`".to_owned());
        }
        list.iter().map(|p| p.value).collect()
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
        Budgets {
            image_size: raw.image_size.as_ref().map(|s| s.value),
            boot_time: raw.boot_time.as_ref().map(|t| t.value),
        }
    }
}
