//! The library-OS components an app's build can weave: every package in the app's
//! dependency graph with a `component.yaml` beside its `Cargo.toml` (or, for components
//! inside one crate, under its `components/<name>/`), and which crates belong to which.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;

use cargo_metadata::{Metadata, PackageId};
use uniklink_analyzer::component::CrateOwners;
use uniklink_config::{COMPONENT_FILE, ComponentRegistry, ResolvedConfig, load_component};

use super::BuildError;
use crate::pipeline::WeaveOptions;

/// Weaving options for the app of `metadata`, or `None` when no package in its graph is a
/// component (an app that does not use the library OS links conventionally).
pub fn weave_options(
    metadata: &Metadata,
    config: &ResolvedConfig,
) -> Result<Option<WeaveOptions>, BuildError> {
    // (package, component.yaml, whether the package itself is the component)
    let mut files: Vec<(&PackageId, PathBuf, bool)> = Vec::new();
    for package in &metadata.packages {
        let Some(dir) = package.manifest_path.parent() else {
            continue;
        };
        let dir = dir.as_std_path();
        let beside = dir.join(COMPONENT_FILE);
        if beside.is_file() {
            files.push((&package.id, beside, true));
        }
        if let Ok(entries) = std::fs::read_dir(dir.join("components")) {
            let mut inner: Vec<PathBuf> = entries
                .filter_map(|e| Some(e.ok()?.path().join(COMPONENT_FILE)))
                .filter(|p| p.is_file())
                .collect();
            inner.sort();
            files.extend(inner.into_iter().map(|p| (&package.id, p, false)));
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    let mut specs = Vec::new();
    let mut component_of: HashMap<&PackageId, String> = HashMap::new();
    for (package, path, is_crate) in &files {
        let spec = load_component(path).map_err(|e| BuildError::Components { source: e.into() })?;
        if *is_crate {
            component_of.insert(package, spec.name.clone());
        }
        specs.push(spec);
    }
    let registry = ComponentRegistry::with_components(specs)
        .map_err(|e| BuildError::Components { source: e.into() })?;
    let mut weave = WeaveOptions::new(registry, config.clone());
    weave.crates = crate_owners(metadata, &component_of);
    Ok(Some(weave))
}

/// Component crates, and each dependency crate that only components reach: a crate reached
/// from the app without passing through a component is the app's (or the runtime's), one
/// reached through several components is shared.
fn crate_owners(metadata: &Metadata, component_of: &HashMap<&PackageId, String>) -> CrateOwners {
    let Some(resolve) = &metadata.resolve else {
        return CrateOwners::default();
    };
    let deps: HashMap<&PackageId, Vec<&PackageId>> = resolve
        .nodes
        .iter()
        .map(|n| (&n.id, n.deps.iter().map(|d| &d.pkg).collect()))
        .collect();
    let crate_name = |id: &PackageId| {
        metadata
            .packages
            .iter()
            .find(|p| &p.id == id)
            .map(|p| p.name.replace('-', "_"))
    };
    // Everything reachable from `start` without entering a component (other than `start`).
    let reach = |start: &PackageId| {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([start]);
        while let Some(id) = queue.pop_front() {
            for &dep in deps.get(id).into_iter().flatten() {
                if !component_of.contains_key(dep) && seen.insert(dep.clone()) {
                    queue.push_back(dep);
                }
            }
        }
        seen
    };
    let outside: BTreeSet<PackageId> = resolve.root.as_ref().map(reach).unwrap_or_default();
    let mut claims: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (&id, component) in component_of {
        if let Some(name) = crate_name(id) {
            claims.entry(name).or_default().insert(component.clone());
        }
        for dep in reach(id).difference(&outside) {
            if let Some(name) = crate_name(dep) {
                claims.entry(name).or_default().insert(component.clone());
            }
        }
    }
    CrateOwners {
        dependencies: claims
            .into_iter()
            .map(|(krate, owners)| {
                let single = (owners.len() == 1)
                    .then(|| owners.into_iter().next())
                    .flatten();
                (krate, single)
            })
            .collect(),
    }
}
