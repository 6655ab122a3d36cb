//! The weave steps of the pipeline, on one resolution and one graph. The glue object's
//! names are declared before resolution ([`declared`]); the graph, built without component
//! registrations as roots, decides which components are live ([`decide`]), and the glue
//! generated from that decision is attached to the resolved symbols and the graph, which
//! mark what it reaches; [`finish`] checks that against the decision.

use std::collections::BTreeMap;

use serde::Serialize;
use uniklink_analyzer::component::{
    Attribution, ComponentDef, ComponentError, Components, CrateOwners, ParamDef, param_symbol,
};
use uniklink_analyzer::graph::{GraphOptions, RootReason, RootRules, SectionGraph};
use uniklink_analyzer::id::Idx;
use uniklink_analyzer::input::Inputs;
use uniklink_analyzer::object::ObjectId;
use uniklink_analyzer::resolve::SymbolDb;
use uniklink_analyzer::weave::{Dropped, Live, Registrations, Status, WeaveError, Weaving};
use uniklink_config::{
    Arch, ComponentRegistry, DeviceKind, Origin, ParamSpec, ParamValue, Platform, ProfileName,
    Requirement, ResolvedConfig,
};
use uniklink_linker::glue::{
    self, FIXED_SYMBOLS, GlueInit, GlueParam, GlueReserve, GlueSpec, RUNTIME_SYMBOLS, START_SYMBOL,
};

use super::{LinkError, LinkOptions};

/// The library OS's components and the manifest's decisions about them.
#[derive(Debug, Clone)]
pub struct WeaveOptions {
    /// The components, as their `component.yaml` files declare them.
    pub registry: ComponentRegistry,
    pub profile: ProfileName,
    /// Required and forbidden components; parameter values with profile and overrides
    /// applied. Components missing here are neither required nor forbidden and take their
    /// profile defaults.
    pub config: Option<ResolvedConfig>,
    /// Which component each Rust crate (or module path) belongs to, for attribution; `cargo
    /// uniklink build` fills it from the app's cargo graph.
    pub crates: CrateOwners,
    /// The platform the image boots on, for what the glue object tells the runtime about it
    /// (its boot timer); `None` for none in particular.
    pub platform: Option<Platform>,
}

impl WeaveOptions {
    /// Weaving with a resolved manifest whose components come from `registry`.
    pub fn new(registry: ComponentRegistry, config: ResolvedConfig) -> WeaveOptions {
        WeaveOptions {
            registry,
            profile: config.profile,
            config: Some(config),
            crates: CrateOwners::default(),
            platform: None,
        }
    }

    /// The manifest's (or the build's) override, else the component's own default for the
    /// profile (not the manifest table's, which may describe another library OS).
    fn resolved(&self, component: &str, param: &ParamSpec) -> ParamValue {
        let manifest = self
            .config
            .as_ref()
            .and_then(|c| c.component(component)?.params.get(&param.name))
            .filter(|p| p.origin != Origin::Profile);
        manifest.map_or(param.defaults.get(self.profile), |p| p.value)
    }

    fn flag(&self, component: &str, pick: fn(&uniklink_config::ResolvedComponent) -> bool) -> bool {
        self.config
            .as_ref()
            .and_then(|c| c.component(component))
            .is_some_and(pick)
    }
}

/// One component in the report: whether it is in the image and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentReport {
    pub name: String,
    pub live: bool,
    /// `reached`, `required`, `required by the manifest's <key>` (a key the component owns,
    /// in backticks), `dependency of <component>`, `unreachable`, `not required` or
    /// `forbidden`.
    pub reason: String,
    /// For a reached component, the symbols leading from a root to its first reached section.
    pub chain: Vec<String>,
    pub init: Option<String>,
    /// Resolved parameter values of a live component, as stored in the image.
    pub params: BTreeMap<String, u64>,
    /// Bytes of its sections in the image.
    pub size: u64,
    /// The kinds of device it drives (its `component.yaml`'s `devices`): `run` gives the
    /// guest those of the live components.
    pub devices: Vec<DeviceKind>,
}

/// What weaving decided, for the build report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeaveReport {
    pub profile: ProfileName,
    /// In name order.
    pub components: Vec<ComponentReport>,
    /// The init functions `uniklink_start` calls, in order.
    pub init_order: Vec<String>,
    /// Manifest parameter overrides no component of this library OS has
    /// (`component.param`): valid for the manifest's component table, but nothing reads them.
    pub unused_overrides: Vec<String>,
}

/// The components and what the manifest says of them, before anything is linked.
pub(super) struct Setup {
    pub components: Components,
    unused_overrides: Vec<String>,
}

impl Setup {
    pub fn new(w: &WeaveOptions) -> Result<Setup, LinkError> {
        Ok(Setup {
            components: components(w)?,
            unused_overrides: check_selection(w)?,
        })
    }

    /// Symbols resolution must load: every component's init (so each component's code is
    /// loaded and its registration recognised, live or not) and what the glue calls.
    pub fn required(&self) -> impl Iterator<Item = &str> {
        self.components
            .defs
            .iter()
            .filter_map(|d| d.init.as_deref())
            .chain(RUNTIME_SYMBOLS)
    }
}

/// The names the glue object may define, declared before resolution: its fixed symbols and
/// every component's parameters and reserves, since which components are live is decided
/// only on the graph.
pub(super) fn declared(w: &WeaveOptions) -> Vec<String> {
    let params = w.registry.components().flat_map(|spec| {
        spec.params.values().flat_map(|p| {
            std::iter::once(param_symbol(&spec.name, &p.name))
                .chain(p.reserve.then(|| reserve_symbol(&spec.name, &p.name)))
        })
    });
    FIXED_SYMBOLS
        .map(str::to_owned)
        .into_iter()
        .chain(params)
        .collect()
}

/// What the weave decided on the graph, and the glue object made from it.
pub(super) struct Decision {
    weaving: Weaving,
    attribution: Attribution,
    pub glue: Vec<u8>,
    report: WeaveReport,
}

/// The graph's options once the glue is attached: its start routine is the one new root.
pub(super) fn glue_roots() -> Vec<String> {
    vec![START_SYMBOL.to_owned()]
}

/// Turns the registry into the analyzer's component set.
fn components(w: &WeaveOptions) -> Result<Components, ComponentError> {
    let defs = w
        .registry
        .components()
        .map(|spec| ComponentDef {
            name: spec.name.clone(),
            init: spec.init.clone(),
            depends: spec.depends.clone(),
            required: w.flag(&spec.name, |c| c.required.is_some()),
            forbidden: w.flag(&spec.name, |c| c.forbidden),
            crates: spec.crates.clone(),
            symbols: spec.symbols.clone(),
            archive: spec.archive.clone(),
            params: spec
                .params
                .values()
                .map(|p| ParamDef {
                    name: p.name.clone(),
                    size: p.ty.size(),
                })
                .collect(),
        })
        .collect();
    Components::new(defs)
}

/// The graph the weave decides on: component registrations are not roots, other init arrays
/// are, as in a conventional link.
pub(super) fn graph<'a>(
    db: &'a SymbolDb<'a>,
    components: &Components,
    opts: &LinkOptions,
) -> Result<SectionGraph<'a>, LinkError> {
    let registrations = Registrations::find(db, components);
    Ok(SectionGraph::build(
        db,
        &GraphOptions {
            entry: &opts.entry,
            keep: &opts.keep,
            rules: RootRules { init_arrays: false },
            extra_roots: &registrations.roots,
            gc: true,
        },
    )?)
}

/// Which components are live, from the graph built without the glue, and the glue object
/// that runs their inits.
pub(super) fn decide(
    setup: &Setup,
    inputs: &Inputs,
    graph: &SectionGraph<'_>,
    machine: u16,
    w: &WeaveOptions,
) -> Result<Decision, LinkError> {
    let components = &setup.components;
    let attribution = Attribution::compute(inputs, graph.db, components, &w.crates);
    let weaving = Weaving::decide(graph, &attribution, components)?;

    let mut params = Vec::new();
    let mut reserves = Vec::new();
    let mut reports = Vec::new();
    for id in components.ids() {
        let def = components.def(id);
        let live = weaving.is_live(id);
        let mut values = BTreeMap::new();
        if live && let Some(spec) = w.registry.get(&def.name) {
            for param in spec.params.values() {
                let value = w.resolved(&def.name, param);
                // The manifest was checked against the built-in components; these may be
                // another library OS's, with mins of their own.
                let bytes = uniklink_config::check_min(value, param.min)
                    .and_then(|value| param.ty.encode(value))
                    .map_err(|message| LinkError::Param {
                        component: def.name.clone(),
                        param: param.name.clone(),
                        message: format!("{message} (type {})", param.ty),
                    })?;
                values.insert(param.name.clone(), value.as_u64());
                if param.reserve {
                    reserves.push(GlueReserve {
                        symbol: reserve_symbol(&def.name, &param.name),
                        size: value.as_u64(),
                    });
                }
                params.push(GlueParam {
                    symbol: param_symbol(&def.name, &param.name),
                    bytes,
                });
            }
        }
        let requirement = w
            .config
            .as_ref()
            .and_then(|c| c.component(&def.name)?.required);
        let status = weaving.status[id];
        let (reason, chain) = reason(graph, components, status, requirement);
        reports.push(ComponentReport {
            name: def.name.clone(),
            live,
            reason,
            chain,
            init: def.init.clone(),
            params: values,
            size: 0,
            devices: w
                .registry
                .get(&def.name)
                .map(|spec| spec.devices.clone())
                .unwrap_or_default(),
        });
    }
    let glue_inits: Vec<GlueInit> = weaving
        .init_order
        .iter()
        .filter_map(|&id| {
            let def = components.def(id);
            Some(GlueInit {
                component: def.name.clone(),
                function: def.init.clone()?,
            })
        })
        .collect();
    let inits: Vec<String> = glue_inits.iter().map(|i| i.function.clone()).collect();
    let boot_timer = w
        .platform
        .zip(machine_arch(machine))
        .and_then(|(platform, arch)| platform.boot_timer(arch))
        .unwrap_or(0);
    let bytes = glue::generate(
        machine,
        &GlueSpec {
            inits: glue_inits,
            params,
            reserves,
            report: verbose_report(&reports, &inits),
            boot_timer,
        },
    )?;
    Ok(Decision {
        weaving,
        attribution,
        glue: bytes,
        report: WeaveReport {
            profile: w.profile,
            components: reports,
            init_order: inits,
            unused_overrides: setup.unused_overrides.clone(),
        },
    })
}

/// The memory a `reserve` parameter sizes, as the component defines it weakly.
fn reserve_symbol(component: &str, param: &str) -> String {
    format!("__uniklink_reserve_{component}_{param}")
}

/// The architecture of an object's `e_machine`.
fn machine_arch(machine: u16) -> Option<Arch> {
    match machine {
        ::object::elf::EM_X86_64 => Some(Arch::X86_64),
        ::object::elf::EM_AARCH64 => Some(Arch::Aarch64),
        _ => None,
    }
}

/// A component the manifest requires must exist in the library OS; overrides of parameters it
/// lacks are reported, since manifests are validated against the wider built-in table.
fn check_selection(w: &WeaveOptions) -> Result<Vec<String>, LinkError> {
    let Some(config) = &w.config else {
        return Ok(Vec::new());
    };
    let mut unused = Vec::new();
    for c in &config.components {
        let spec = w.registry.get(&c.name);
        if let (Some(requirement), None) = (c.required, spec) {
            return Err(LinkError::MissingComponent {
                component: c.name.clone(),
                by: required_by(requirement),
                available: w.registry.names().collect::<Vec<_>>().join(", "),
            });
        }
        for (param, value) in &c.params {
            let known = spec.is_some_and(|s| s.params.contains_key(param));
            if value.origin == Origin::Manifest && !known {
                unused.push(format!("{}.{param}", c.name));
            }
        }
    }
    Ok(unused)
}

/// What the runtime prints after `uniklink:verbose ` at boot.
fn verbose_report(components: &[ComponentReport], inits: &[String]) -> String {
    let mut text = String::new();
    for c in components {
        let state = if c.live { "live" } else { "dropped" };
        text.push_str(&format!("component {} {state} ({})\n", c.name, c.reason));
        for (param, value) in &c.params {
            text.push_str(&format!("param {}.{param}={value}\n", c.name));
        }
    }
    if inits.is_empty() {
        text.push_str("init order: no inits\n");
    } else {
        text.push_str(&format!("init order: {}\n", inits.join(" ")));
    }
    text
}

/// Who requires a component, for messages ("the manifest's `volumes`").
fn required_by(requirement: Requirement) -> String {
    match requirement {
        Requirement::Manifest => "the manifest".to_owned(),
        Requirement::Key(key) => format!("the manifest's `{key}`"),
        Requirement::Profile => "the profile".to_owned(),
    }
}

fn reason(
    graph: &SectionGraph<'_>,
    components: &Components,
    status: Status,
    requirement: Option<Requirement>,
) -> (String, Vec<String>) {
    match status {
        Status::Live(Live::Reached(section)) => {
            let chain = graph
                .why_section(section)
                .map(|chain| {
                    let root = match chain.root {
                        RootReason::Entry => "entry",
                        RootReason::Keep => "keep",
                        _ => "root",
                    };
                    std::iter::once(root.to_owned())
                        .chain(chain.steps.into_iter().filter_map(|s| s.via))
                        .collect()
                })
                .unwrap_or_default();
            ("reached".to_owned(), chain)
        }
        // Only an owned key is spelled out: it is the one requirement the manifest does not
        // state in so many words.
        Status::Live(Live::Required) => match requirement {
            Some(requirement @ Requirement::Key(_)) => (
                format!("required by {}", required_by(requirement)),
                Vec::new(),
            ),
            _ => ("required".to_owned(), Vec::new()),
        },
        Status::Live(Live::DependencyOf(by)) => (
            format!("dependency of {}", components.def(by).name),
            Vec::new(),
        ),
        Status::Dropped(Dropped::Unreachable) => ("unreachable".to_owned(), Vec::new()),
        Status::Dropped(Dropped::NotRequired) => ("not required".to_owned(), Vec::new()),
        Status::Dropped(Dropped::Forbidden) => ("forbidden".to_owned(), Vec::new()),
    }
}

/// Checks the graph with the glue attached against the decision and completes the report
/// with sizes; a component's parameters and reserves in the glue count as its own.
pub(super) fn finish(
    decision: Decision,
    setup: &Setup,
    inputs: &Inputs,
    graph: &SectionGraph<'_>,
    glue: ObjectId,
    crates: &CrateOwners,
) -> Result<WeaveReport, WeaveError> {
    let Decision {
        weaving,
        mut attribution,
        mut report,
        ..
    } = decision;
    attribution.extend(Attribution::compute_for(
        inputs,
        graph.db,
        &setup.components,
        crates,
        &[glue],
    ));
    weaving.check_final(graph, &attribution, &setup.components)?;
    for id in graph.kept_sections() {
        if let Some(c) = attribution.owner(id).and_then(|o| o.component()) {
            report.components[c.index()].size += graph.db.object(id.object).section(id.index).size;
        }
    }
    Ok(report)
}
