//! Weaving: component inits are not roots. A component is live when any of its sections is
//! reachable from the entry and the manifest's roots, when the manifest requires it, or when
//! a live component depends on it; only live components' inits run, in dependency order,
//! from the glue object's start routine.
//!
//! Before the graph, [`Registrations`] separates the `.init_array` entries that register
//! component inits (never roots: the glue calls live inits itself) from every other init
//! array (roots, as in a conventional link). After it, [`Weaving::decide`] says which
//! components are live and why, or why not.

use rustc_hash::FxHashSet;

use crate::component::{Attribution, ComponentId, Components, param_symbol};
use crate::graph::{RootReason, SectionGraph, is_init_array};
use crate::id::IdVec;
use crate::object::{SectionId, SymbolIndex, SymbolPlace};
use crate::resolve::{Definition, SymbolDb, SymbolRef};

/// Init-array sections split by what they register.
#[derive(Debug, Clone, Default)]
pub struct Registrations {
    /// Sections whose every entry is a component's init.
    pub components: Vec<SectionId>,
    /// All other init/fini arrays: roots, as GNU ld keeps them.
    pub roots: Vec<(SectionId, RootReason)>,
}

impl Registrations {
    pub fn find(db: &SymbolDb<'_>, components: &Components) -> Registrations {
        let inits: FxHashSet<(SectionId, u64)> = components
            .defs
            .iter()
            .filter_map(|d| defined_at(db, d.init.as_deref()?))
            .collect();
        let mut found = Registrations::default();
        for &oid in &db.live {
            let o = db.object(oid);
            for (index, s) in o.sections.iter_ids().skip(1) {
                let id = SectionId { object: oid, index };
                if !is_init_array(s) || db.is_discarded(id) {
                    continue;
                }
                let mut relocs = s.relocs().peekable();
                let registers_only_inits = relocs.peek().is_some()
                    && relocs.all(|r| {
                        reloc_target(db, oid, r.symbol, r.addend)
                            .is_some_and(|t| inits.contains(&t))
                    });
                if registers_only_inits {
                    found.components.push(id);
                } else {
                    found.roots.push((id, RootReason::InitArray));
                }
            }
        }
        found
    }
}

/// Where a global symbol is defined: its section and offset.
fn defined_at(db: &SymbolDb<'_>, name: &str) -> Option<(SectionId, u64)> {
    let Definition::Defined { object, index } = db.global(db.lookup(name.as_bytes())?).def else {
        return None;
    };
    let sym = &db.object(object).symbols[index];
    match sym.place() {
        SymbolPlace::Section(s) => Some((SectionId { object, index: s }, sym.value)),
        _ => None,
    }
}

/// The section and offset an absolute pointer relocation (an init-array entry) points at.
fn reloc_target(
    db: &SymbolDb<'_>,
    object: crate::object::ObjectId,
    symbol: SymbolIndex,
    addend: i64,
) -> Option<(SectionId, u64)> {
    let (object, index) = match db.symbol_ref(object, symbol) {
        SymbolRef::Local { object, index } => (object, index),
        SymbolRef::Global(g) => match db.global(g).def {
            Definition::Defined { object, index } => (object, index),
            _ => return None,
        },
    };
    let sym = &db.object(object).symbols[index];
    let SymbolPlace::Section(s) = sym.place() else {
        return None;
    };
    let offset = sym.value.checked_add_signed(addend)?;
    Some((SectionId { object, index: s }, offset))
}

/// Why a component is in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// This section of it is reachable from a root.
    Reached(SectionId),
    /// The manifest or profile requires it.
    Required,
    /// A live component depends on it.
    DependencyOf(ComponentId),
}

/// Why a component is not in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Its code was loaded, but nothing reaches it and nothing requires it.
    Unreachable,
    /// Nothing references or requires it, so none of its code was even loaded.
    NotRequired,
    /// The manifest forbids it (and nothing reaches it).
    Forbidden,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Live(Live),
    Dropped(Dropped),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeaveError {
    #[error(
        "component `{component}` is forbidden, but {object} section {section} is reachable: {chain}"
    )]
    ForbiddenReached {
        component: String,
        object: String,
        section: String,
        chain: String,
    },
    #[error("component `{component}` is forbidden, but live component `{dependent}` depends on it")]
    ForbiddenDependency {
        component: String,
        dependent: String,
    },
    #[error("component `{component}` is live ({why}), but no input defines its init `{init}`")]
    MissingInit {
        component: String,
        init: String,
        why: String,
    },
    #[error(
        "component `{component}` parameter `{param}`: component.yaml gives it {expected} bytes, \
         but {object} defines `{symbol}` with {found}; the declared type and the code disagree"
    )]
    ParamSize {
        component: String,
        param: String,
        symbol: String,
        object: String,
        expected: u64,
        found: u64,
    },
    #[error(
        "component `{used}` is reached only through the init of {by}, which does not list it \
         in `depends`, so its own init would not run first ({object} section {section})"
    )]
    UndeclaredUse {
        used: String,
        by: String,
        object: String,
        section: String,
    },
}

/// Which components are live, why, and the order their inits run in.
#[derive(Debug, Clone)]
pub struct Weaving {
    pub status: IdVec<ComponentId, Status>,
    /// Live components with an init, dependencies first.
    pub init_order: Vec<ComponentId>,
}

impl Weaving {
    /// Decides liveness from a graph built without component registrations as roots.
    pub fn decide(
        graph: &SectionGraph<'_>,
        attribution: &Attribution,
        components: &Components,
    ) -> Result<Weaving, WeaveError> {
        let db = graph.db;
        let n = components.defs.len();
        let mut reached: IdVec<ComponentId, Option<SectionId>> = IdVec::filled(None, n);
        let mut loaded: IdVec<ComponentId, bool> = IdVec::filled(false, n);
        for &oid in &db.live {
            for index in db.object(oid).sections.ids().skip(1) {
                let id = SectionId { object: oid, index };
                let Some(c) = attribution.owner(id).and_then(|o| o.component()) else {
                    continue;
                };
                loaded[c] = true;
                if reached[c].is_none() && is_reached(graph, id) {
                    reached[c] = Some(id);
                }
            }
        }

        let mut live: IdVec<ComponentId, Option<Live>> = IdVec::filled(None, n);
        for id in components.ids() {
            let def = components.def(id);
            if let Some(section) = reached[id] {
                if def.forbidden {
                    return Err(forbidden_reached(graph, components, id, section));
                }
                live[id] = Some(Live::Reached(section));
            } else if def.required {
                live[id] = Some(Live::Required);
            }
        }
        // Dependents come after their dependencies, so walking the order backwards sees every
        // dependent before the components it pulls in.
        for &id in components.dependency_order().iter().rev() {
            if live[id].is_none() {
                continue;
            }
            for dep in components.dependencies(id) {
                if components.def(dep).forbidden {
                    return Err(WeaveError::ForbiddenDependency {
                        component: components.def(dep).name.clone(),
                        dependent: components.def(id).name.clone(),
                    });
                }
                if live[dep].is_none() {
                    live[dep] = Some(Live::DependencyOf(id));
                }
            }
        }

        let mut init_order = Vec::new();
        for &id in components.dependency_order() {
            let Some(why) = live[id] else {
                continue;
            };
            let def = components.def(id);
            if let Some(init) = &def.init {
                let defined = db
                    .lookup(init.as_bytes())
                    .is_some_and(|g| db.global(g).def != Definition::Undefined);
                if !defined {
                    return Err(WeaveError::MissingInit {
                        component: def.name.clone(),
                        init: init.clone(),
                        why: describe(components, why),
                    });
                }
                init_order.push(id);
            }
            check_params(db, components, id)?;
        }

        let status = components
            .ids()
            .map(|id| match live[id] {
                Some(why) => Status::Live(why),
                None if components.def(id).forbidden => Status::Dropped(Dropped::Forbidden),
                None if loaded[id] => Status::Dropped(Dropped::Unreachable),
                None => Status::Dropped(Dropped::NotRequired),
            })
            .collect();
        Ok(Weaving { status, init_order })
    }

    pub fn is_live(&self, id: ComponentId) -> bool {
        matches!(self.status[id], Status::Live(_))
    }

    /// After linking with the glue object, where live inits are roots: an init may only reach
    /// components that are live already, or their inits would be skipped.
    pub fn check_final(
        &self,
        graph: &SectionGraph<'_>,
        attribution: &Attribution,
        components: &Components,
    ) -> Result<(), WeaveError> {
        for id in graph.kept_sections() {
            let Some(c) = attribution.owner(id).and_then(|o| o.component()) else {
                continue;
            };
            if self.is_live(c) {
                continue;
            }
            let by = graph
                .why_section(id)
                .and_then(|chain| {
                    chain.steps.iter().find_map(|step| {
                        attribution
                            .owner(step.section)
                            .and_then(|o| o.component())
                            .filter(|&owner| self.is_live(owner))
                    })
                })
                .map_or_else(
                    || "a live component".to_owned(),
                    |b| format!("`{}`", components.def(b).name),
                );
            let o = graph.db.object(id.object);
            return Err(WeaveError::UndeclaredUse {
                used: components.def(c).name.clone(),
                by,
                object: o.name.clone(),
                section: o.section_name(id.index),
            });
        }
        Ok(())
    }
}

/// Kept because something references it, or a root the app or manifest chose; sections a
/// rule keeps for their own sake (notes, unwind tables) say nothing about use.
fn is_reached(graph: &SectionGraph<'_>, id: SectionId) -> bool {
    graph.is_kept(id)
        && graph.why_section(id).is_some_and(|chain| {
            matches!(
                chain.root,
                RootReason::Entry | RootReason::Keep | RootReason::InitArray | RootReason::Retain
            )
        })
}

/// A short reason for messages: "reached", "required", "needed by `net`".
pub fn describe(components: &Components, why: Live) -> String {
    match why {
        Live::Reached(_) => "reached".to_owned(),
        Live::Required => "required by the manifest".to_owned(),
        Live::DependencyOf(by) => format!("a dependency of `{}`", components.def(by).name),
    }
}

fn forbidden_reached(
    graph: &SectionGraph<'_>,
    components: &Components,
    id: ComponentId,
    section: SectionId,
) -> WeaveError {
    let o = graph.db.object(section.object);
    let chain = graph
        .why_section(section)
        .map_or_else(String::new, |chain| {
            chain
                .steps
                .iter()
                .filter_map(|s| s.via.clone())
                .collect::<Vec<_>>()
                .join(" → ")
        });
    WeaveError::ForbiddenReached {
        component: components.def(id).name.clone(),
        object: o.name.clone(),
        section: o.section_name(section.index),
        chain,
    }
}

/// A component's weak parameter defaults must have the size its `component.yaml` type gives,
/// or the code would read more or fewer bytes than the glue object provides.
fn check_params(
    db: &SymbolDb<'_>,
    components: &Components,
    id: ComponentId,
) -> Result<(), WeaveError> {
    let def = components.def(id);
    for param in &def.params {
        let symbol = param_symbol(&def.name, &param.name);
        let Some(g) = db.lookup(symbol.as_bytes()) else {
            continue;
        };
        let Definition::Defined { object, index } = db.global(g).def else {
            continue;
        };
        let o = db.object(object);
        let found = o.symbols[index].size;
        if found != 0 && found != param.size {
            return Err(WeaveError::ParamSize {
                component: def.name.clone(),
                param: param.name.clone(),
                symbol,
                object: o.name.clone(),
                expected: param.size,
                found,
            });
        }
    }
    Ok(())
}
