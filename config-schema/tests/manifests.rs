//! The manifest checks end to end: the example manifests are valid, every file in
//! `tests/invalid/` fails with the diagnostic written beside it, hostile inputs generated here
//! fail cleanly, and the committed JSON Schema is current.

use std::path::{Path, PathBuf};

use uniklink_config::{
    App, Arch, ByteSize, ComponentRegistry, DEFAULT_PREBUILT_ENTRY, DeviceKind, FileMapping,
    Manifest, ManifestError, Origin, OwnedKey, ParamValue, Platform, ProfileName, RegistryConflict,
    Requirement, ResolvedConfig, Volume, parse_component, schema_json,
};

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn example_manifests() -> Vec<PathBuf> {
    let dir = crate_dir().join("../manifests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn example_manifests_are_valid_and_point_at_the_schema() {
    let files = example_manifests();
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for required in ["hello.yaml", "httpd.yaml", "kvstore.yaml"] {
        assert!(names.iter().any(|n| n == required), "{required} missing");
    }
    for file in &files {
        if let Err(error) = Manifest::load(file) {
            panic!("{error}");
        }
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.lines()
                .any(|l| l
                    == "# yaml-language-server: $schema=../config-schema/uniklink.schema.json"),
            "{} lacks the yaml-language-server schema line",
            file.display()
        );
    }
}

#[test]
fn profiles_resolve_with_manifest_overrides_marked() {
    let httpd = Manifest::load(&crate_dir().join("../manifests/httpd.yaml")).unwrap();
    let config = httpd.resolve();
    assert_eq!(config.profile, ProfileName::Network);
    let net = config.component("net").unwrap();
    assert_eq!(net.required, Some(Requirement::Manifest));
    assert!(!net.forbidden);
    assert_eq!(net.params["max_sockets"].value, ParamValue::Count(128));
    assert_eq!(net.params["max_sockets"].origin, Origin::Manifest);
    assert_eq!(net.params["rx_ring_size"].value, ParamValue::Count(256));
    assert_eq!(net.params["rx_ring_size"].origin, Origin::Profile);
    assert_eq!(
        net.params["tcp_window"].value,
        ParamValue::Size(ByteSize::kib(128))
    );
    assert_eq!(config.memory.origin, Origin::Profile);
    assert_eq!(config.memory.value, ByteSize::mib(64));
    assert_eq!(config.targets.len(), 1);
    assert_eq!(config.targets[0].platform, Platform::QemuMicrovm);

    let hello = Manifest::load(&crate_dir().join("../manifests/hello.yaml"))
        .unwrap()
        .resolve();
    let arches: Vec<Arch> = hello.arches().collect();
    assert_eq!(arches, [Arch::X86_64, Arch::Aarch64]);
    assert_eq!(hello.targets[1].platform, Platform::QemuVirt);
    assert_eq!(
        hello.targets[1].arch.target_triple(),
        "aarch64-unknown-none"
    );
    assert_eq!(hello.memory.origin, Origin::Manifest);
    assert_eq!(
        hello.param("net", "socket_rx_buffer"),
        Some(ParamValue::Size(ByteSize::kib(2)))
    );
    let json = serde_json::to_value(&hello).unwrap();
    let net = json["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "net")
        .unwrap();
    assert_eq!(net["params"]["max_sockets"]["origin"], "profile");
    assert_eq!(net["params"]["max_sockets"]["value"], 2);
}

/// Checks one failure against its expectation: the first line is `file:line:col`, each
/// further line a fragment of the message or its help.
fn assert_diagnostic(error: &ManifestError, expected: &str, case: &str) {
    let mut lines = expected.lines().filter(|l| !l.trim().is_empty());
    let location = lines
        .next()
        .unwrap_or_else(|| panic!("{case}: empty expectation"));
    let shown = error.to_string();
    let first = &error.diagnostics()[0];
    assert!(
        shown.contains(&format!("{location}: ")),
        "{case}: expected `{location}` in `{shown}`"
    );
    let mut text = format!("{shown}\n");
    if let Some(help) = &first.help {
        text.push_str(help);
    }
    for fragment in lines {
        assert!(
            text.contains(fragment),
            "{case}: expected `{fragment}` in `{text}`"
        );
    }
}

#[test]
fn invalid_manifests_fail_with_their_expected_diagnostic() {
    let dir = crate_dir().join("tests/invalid");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let expected_path = path.with_extension("expected");
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml") => {}
            Some("expected") => {
                assert!(
                    path.with_extension("yaml").exists(),
                    "{} has no manifest",
                    path.display()
                );
                continue;
            }
            _ => panic!("unexpected file {}", path.display()),
        }
        let case = path.file_name().unwrap().to_string_lossy().into_owned();
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        match Manifest::load(&path) {
            Ok(_) => panic!("{case} was accepted"),
            Err(error) => assert_diagnostic(&error, &expected, &case),
        }
        cases += 1;
    }
    assert!(cases >= 20, "only {cases} invalid manifests");
}

/// Inputs too large or too odd to commit: each must fail with a position and a clear reason.
#[test]
fn generated_hostile_manifests_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let deep_flow = format!("name: {}1{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let mut deep_block = String::from("name: hello\napp:\n  package: hello\nkeep:\n");
    for depth in 0..200 {
        deep_block.push_str(&" ".repeat(2 * depth + 2));
        deep_block.push_str("-\n");
    }
    let mut huge = String::from("name: hello\napp:\n  package: hello\ncmdline: \"");
    while huge.len() < 10 * 1024 * 1024 {
        huge.push_str("0123456789abcdef");
    }
    huge.push_str("\"\n");
    let garbage: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "huge.yaml",
            huge.into_bytes(),
            "huge.yaml:4:",
            "larger than the 256 KiB limit",
        ),
        ("garbage.yaml", garbage, "garbage.yaml:1:", "not UTF-8"),
        (
            "late-garbage.yaml",
            b"name: hello\napp:\n  package: h\xffllo\n".to_vec(),
            "late-garbage.yaml:3:13",
            "not UTF-8",
        ),
        // Typed deserialization stops at the first container where a scalar belongs, so
        // nesting never gets deep enough to matter (the depth budget is the second line).
        (
            "deep-flow.yaml",
            deep_flow.into_bytes(),
            "deep-flow.yaml:1:7",
            "expected a single value",
        ),
        (
            "deep-block.yaml",
            deep_block.into_bytes(),
            "deep-block.yaml:6:5",
            "expected a single value",
        ),
    ];
    for (name, bytes, location, message) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        match Manifest::load(&path) {
            Ok(_) => panic!("{name} was accepted"),
            Err(error) => {
                let shown = error.to_string();
                let first = &error.diagnostics()[0].message;
                assert!(
                    shown.contains(location),
                    "{name}: `{location}` not in `{shown}`"
                );
                assert!(
                    first.contains(message),
                    "{name}: `{message}` not in `{first}`"
                );
            }
        }
    }
}

#[test]
fn missing_file_is_a_read_error() {
    let error = Manifest::load(Path::new("/nonexistent/uniklink.yaml")).unwrap_err();
    assert!(matches!(error, ManifestError::Read { .. }));
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/uniklink.yaml: cannot read")
    );
}

#[test]
fn committed_schema_is_current() {
    let path = crate_dir().join("uniklink.schema.json");
    let current = schema_json();
    if std::env::var_os("UNIKLINK_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &current).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "{} is stale; regenerate it with `UNIKLINK_UPDATE_SCHEMA=1 cargo test -p uniklink-config --test manifests` \
         or `cargo uniklink schema > config-schema/uniklink.schema.json`",
        path.display()
    );
}

#[test]
fn every_semantic_error_is_reported_in_file_order() {
    let text = "name: hello\n\
                app:\n  package: hello\n\
                arch: aarch64\n\
                platform: qemu-q35\n\
                components:\n  require: [nett]\n  params:\n    net:\n      max_sockets: lots\n";
    let error = Manifest::from_text(Path::new("many.yaml"), text, &ComponentRegistry::builtin())
        .unwrap_err();
    let locations: Vec<String> = error
        .diagnostics()
        .iter()
        .map(|d| format!("{}:{}", d.line, d.column))
        .collect();
    assert_eq!(locations, ["5:11", "7:13", "10:20"], "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("many.yaml:5:11: platform `qemu-q35`")
    );
    assert!(error.to_string().ends_with("(and 2 more)"));
}

#[test]
fn prebuilt_objects_are_relative_to_the_manifest() {
    let text = "name: blob\napp:\n  objects: [build/app.o, libc.a]\n";
    let manifest = Manifest::from_text(
        Path::new("apps/blob/uniklink.yaml"),
        text,
        &ComponentRegistry::builtin(),
    )
    .unwrap();
    assert_eq!(
        manifest.app,
        App::Prebuilt {
            objects: vec![
                PathBuf::from("apps/blob/build/app.o"),
                PathBuf::from("apps/blob/libc.a")
            ],
            entry: DEFAULT_PREBUILT_ENTRY.to_owned(),
        }
    );
    assert_eq!(manifest.targets[0].arch, Arch::X86_64);
    assert_eq!(manifest.profile, ProfileName::Minimal);
}

#[test]
fn files_and_volumes_are_relative_to_the_manifest() {
    let text = "name: store\napp:\n  objects: [app.o]\n\
                files:\n  - { from: ./static, to: /static }\n  - { from: site, to: / }\n\
                volumes:\n  - { name: data, image: data.img, size: 64MiB, mount: /data }\n  \
                - { name: Cfg_v1.2-ro, image: /srv/cfg.img, size: 64KiB, mount: /database, \
                readonly: true }\n";
    let manifest = Manifest::from_text(
        Path::new("apps/store/uniklink.yaml"),
        text,
        &ComponentRegistry::builtin(),
    )
    .unwrap();
    assert_eq!(
        manifest.files,
        [
            FileMapping {
                from: PathBuf::from("apps/store/./static"),
                to: "/static".to_owned()
            },
            FileMapping {
                from: PathBuf::from("apps/store/site"),
                to: "/".to_owned()
            },
        ]
    );
    assert_eq!(
        manifest.volumes,
        [
            Volume {
                name: "data".to_owned(),
                image: PathBuf::from("apps/store/data.img"),
                size: ByteSize::mib(64),
                mount: "/data".to_owned(),
                readonly: false,
            },
            Volume {
                name: "Cfg_v1.2-ro".to_owned(),
                image: PathBuf::from("/srv/cfg.img"),
                size: ByteSize::kib(64),
                mount: "/database".to_owned(),
                readonly: true,
            },
        ]
    );
    let config = manifest.resolve();
    assert_eq!(config.files, manifest.files);
    assert_eq!(config.volumes, manifest.volumes);
}

#[test]
fn a_key_in_use_requires_the_component_that_owns_it() {
    let builtin = ComponentRegistry::builtin();
    let resolve = |text: &str, registry: &ComponentRegistry| {
        Manifest::from_text(Path::new("app.yaml"), text, registry).map(|m| m.resolve())
    };
    let app = "name: app\napp:\n  objects: [app.o]\n";
    let net = |config: &ResolvedConfig| config.component("net").unwrap().clone();

    let config = resolve(&format!("{app}ports: [8080]\n"), &builtin).unwrap();
    assert_eq!(
        net(&config).required,
        Some(Requirement::Key(OwnedKey::Ports))
    );
    assert_eq!(net(&config).devices, [DeviceKind::VirtioNet]);
    assert_eq!(net(&config).owns, [OwnedKey::Ports]);
    let config = resolve(&format!("{app}profile: network\n"), &builtin).unwrap();
    assert_eq!(net(&config).required, Some(Requirement::Profile));
    let config = resolve(
        &format!("{app}ports: [8080]\ncomponents:\n  require: [net]\n"),
        &builtin,
    );
    assert_eq!(net(&config.unwrap()).required, Some(Requirement::Manifest));
    assert_eq!(net(&resolve(app, &builtin).unwrap()).required, None);

    let disks = parse_component(
        Path::new("disks/component.yaml"),
        "name: disks\ndoc: Volumes.\ndevices: [virtio-blk]\nowns: [volumes]\n",
    )
    .unwrap();
    let registry = ComponentRegistry::with_components([disks]).unwrap();
    let volumes = "volumes:\n  - { name: data, image: data.img, size: 1MiB, mount: /data }\n";
    let config = resolve(&format!("{app}{volumes}"), &registry).unwrap();
    let disks = config.component("disks").unwrap();
    assert_eq!(disks.required, Some(Requirement::Key(OwnedKey::Volumes)));
    let forbidden = format!("{app}{volumes}components:\n  forbid: [disks]\n");
    let error = resolve(&forbidden, &registry).unwrap_err();
    assert_diagnostic(
        &error,
        "app.yaml:5:5\n`volumes` belongs to component `disks`, which is forbidden\n\
         remove `disks` from `components.forbid` or drop `volumes`",
        "forbidden owner",
    );
}

#[test]
fn registries_extend_with_components_from_outside() {
    let tls = parse_component(
        Path::new("tls/component.yaml"),
        "name: tls\ndoc: TLS on top of net.\ndepends: [net]\nparams:\n  sessions:\n    \
         type: u32\n    doc: Cached sessions.\n    default: { minimal: 0, network: 64, filesystem: 0 }\n",
    )
    .unwrap();
    let extra = ComponentRegistry::with_components([tls]).unwrap();
    let text = "name: web\napp:\n  package: web\nprofile: network\n\
                components:\n  require: [tls]\n  params:\n    tls:\n      sessions: 8\n";
    let builtin = ComponentRegistry::builtin();
    let error = Manifest::from_text(Path::new("web.yaml"), text, &builtin).unwrap_err();
    assert!(
        error.to_string().contains("unknown component `tls`"),
        "{error}"
    );

    let mut registry = builtin.clone();
    registry.extend(extra.clone()).unwrap();
    let config = Manifest::from_text(Path::new("web.yaml"), text, &registry)
        .unwrap()
        .resolve();
    let tls = config.component("tls").unwrap();
    assert_eq!(tls.required, Some(Requirement::Manifest));
    assert_eq!(tls.params["sessions"].value, ParamValue::Count(8));
    assert_eq!(tls.params["sessions"].origin, Origin::Manifest);
    assert_eq!(
        registry.extend(extra).unwrap_err(),
        RegistryConflict::DuplicateComponent {
            name: "tls".to_owned()
        }
    );
}

#[test]
fn bad_component_files_are_located_too() {
    let error = parse_component(
        Path::new("bad.yaml"),
        "name: Bad-Name\nparams:\n  size:\n    type: u64\n    kind: size\n    \
         default: { minimal: 1parsec, network: 1, filesystem: 1 }\n",
    )
    .unwrap_err();
    let shown: Vec<String> = error.diagnostics().iter().map(|d| d.to_string()).collect();
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(
        shown[0].starts_with("bad.yaml:1:7: component and parameter names"),
        "{shown:?}"
    );
    assert!(
        shown[1].starts_with("bad.yaml:6:25: `Bad-Name.size` default for minimal"),
        "{shown:?}"
    );
}
