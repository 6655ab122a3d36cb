//! Unikernel images as OCI images: `cargo uniklink pkg` writes an OCI image layout with one
//! manifest per architecture the manifest builds, under an image index.
//!
//! Each manifest's layers are uncompressed tars: the first holds the image at
//! `/unikernel/<name>-<arch>.elf` and nothing else, so its digest changes only with the
//! kernel; urunc's `/urunc.json`, its DWARF (`<image>.debug`, when the build wrote one) and
//! the archive of baked files (when the image links one) follow in layers of their own. A config records what `run`
//! needs: the platform, memory, command line, arguments, environment, ports and volumes. The
//! manifest carries urunc's annotations (`com.urunc.unikernel.*`: the kernel's path in the
//! layer, the hypervisor, the command line), so urunc finds the kernel, and uniklink's own
//! (`dev.uniklink.*`: build id, sizes, version). With `sbom`, each image gets a CycloneDX
//! document ([`sbom`]) as an OCI 1.1 referrer: an artifact manifest whose `subject` is the
//! image manifest, listed in the layout's `index.json` beside the tagged index.
//!
//! Everything is reproducible: the tars have fixed metadata and sorted entries, JSON objects
//! have sorted keys and no timestamps, so the same images give the same digests.

use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Arch as OciArch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest,
    ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType, Os,
    PlatformBuilder, RootFsBuilder,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use uniklink_config::{Arch, ResolvedConfig};

use crate::build::Built;

pub mod registry;
pub mod sbom;

pub(crate) const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// Where the kernel lies inside a layer, as urunc's `com.urunc.unikernel.binary` names it.
const KERNEL_DIR: &str = "unikernel";
/// The layer annotation that says what a layer holds: `kernel`, `urunc`, `debug` or `files`.
const LAYER_CONTENT: &str = "dev.uniklink.content";
/// KraftKit's layer annotation naming the kernel's path in the layer (its `oci/annotations.go`).
const KRAFTKIT_KERNEL: &str = "org.unikraft.kernel.image";
/// Where urunc looks for its settings in the root file system when annotations do not reach it.
const URUNC_JSON: &str = "urunc.json";
/// The section of the generated data object holding the baked-files archive (`build::data`):
/// kept in the image exactly when the app reads files.
const FILES_SECTION: &str = ".rodata.__uniklink_files";
/// The empty JSON object an artifact manifest has for config (image-spec 1.1).
const EMPTY_JSON: &[u8] = b"{}";
/// The tag the layout's index names the image by unless told otherwise.
pub const DEFAULT_TAG: &str = "latest";

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot put the new layout at {} (and the old one could not go back: it is at {})",
        path.display(),
        kept.display()
    )]
    OldLayoutKept {
        path: PathBuf,
        kept: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message} (the Docker config file, read for registry credentials)", path.display())]
    DockerConfig { path: PathBuf, message: String },
    #[error(
        "{}: not replaced, as it is {what}; give a new path, an empty directory or an image \
         layout to replace",
        path.display()
    )]
    NotReplaceable { path: PathBuf, what: &'static str },
    #[error("{0}")]
    Spec(#[from] oci_spec::OciSpecError),
    #[error("the manifest's `files`: {source}")]
    Files {
        #[source]
        source: crate::build::data::DataError,
    },
    #[error(
        "`{0}` is not a tag: 1 to 128 of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
    )]
    BadTag(String),
    #[error("`{0}` is not an image reference: {1}")]
    BadReference(String, String),
    #[error("{reference}: {message}")]
    Registry { reference: String, message: String },
    #[error(
        "{reference}: a blob's content does not match its digest (expected {expected}, got {actual}); refusing it"
    )]
    DigestMismatch {
        reference: String,
        expected: String,
        actual: String,
    },
    #[error("{}: not a uniklink OCI image layout: {message}", path.display())]
    BadLayout { path: PathBuf, message: String },
    #[error("{}: no image for {arch} (it has {has})", path.display())]
    NoArch {
        path: PathBuf,
        arch: Arch,
        has: String,
    },
}

/// What `package` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Packaged {
    pub layout: PathBuf,
    pub tag: String,
    /// The digest of the image index the tag names.
    pub index_digest: String,
    /// Per architecture: the manifest's digest and the kernel layer's.
    pub manifests: Vec<PackagedManifest>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PackagedManifest {
    pub arch: String,
    pub manifest_digest: String,
    /// The kernel layer's digest.
    pub layer_digest: String,
    /// The DWARF layer's, when the build wrote a debug file.
    pub debug_layer_digest: Option<String>,
    /// The baked-files layer's, when the image links baked files.
    pub files_layer_digest: Option<String>,
    /// The SBOM's referrer manifest and its document, with `sbom`.
    pub sbom_manifest_digest: Option<String>,
    pub sbom_digest: Option<String>,
}

/// What `package` writes besides the images.
#[derive(Debug, Clone, Default)]
pub struct PackageOptions {
    /// The tag the layout's index names the image by.
    pub tag: String,
    /// Attach a CycloneDX SBOM to each image as a referrer.
    pub sbom: bool,
}

/// A tag as the OCI distribution spec allows it.
pub fn check_tag(tag: &str) -> Result<(), OciError> {
    let valid = (1..=128).contains(&tag.len())
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(OciError::BadTag(tag.to_owned()))
    }
}

/// Blobs by digest, written into `blobs/sha256/` at the end.
#[derive(Default)]
pub(crate) struct Blobs(BTreeMap<String, Vec<u8>>);

impl Blobs {
    /// The blobs of the layout at `layout`, each checked against its name (a digest).
    pub(crate) fn read_layout(layout: &Path) -> Result<Blobs, OciError> {
        let dir = layout.join("blobs/sha256");
        let entries = std::fs::read_dir(&dir).map_err(|source| OciError::Read {
            path: dir.clone(),
            source,
        })?;
        let mut blobs = Blobs::default();
        for entry in entries {
            let path = entry
                .map_err(|source| OciError::Read {
                    path: dir.clone(),
                    source,
                })?
                .path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if !is_sha256_hex(name) {
                return Err(OciError::BadLayout {
                    path,
                    message: "a blob whose name is no SHA-256 digest".to_owned(),
                });
            }
            let bytes = read_file(&path, registry::MAX_BLOB)?;
            if hex_sha256(&bytes) != name {
                return Err(OciError::DigestMismatch {
                    reference: layout.display().to_string(),
                    expected: format!("sha256:{name}"),
                    actual: format!("sha256:{}", hex_sha256(&bytes)),
                });
            }
            blobs.0.insert(name.to_owned(), bytes);
        }
        Ok(blobs)
    }

    /// The digest of the index the layout's `index.json` tags `tag`.
    pub(crate) fn tagged(&self, tag: &str, layout: &Path) -> Result<String, OciError> {
        let (path, index) = read_index(layout)?;
        index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .and_then(|m| m["digest"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| OciError::BadLayout {
                path,
                message: format!("no image tagged `{tag}`"),
            })
    }

    /// The descriptors of the layout's `index.json` that have no tag: the manifests that refer
    /// to its images (OCI 1.1 referrers, such as SBOMs).
    pub(crate) fn referrers(layout: &Path) -> Result<Vec<serde_json::Value>, OciError> {
        let (_, index) = read_index(layout)?;
        Ok(index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["annotations"]["org.opencontainers.image.ref.name"].is_null())
            .cloned()
            .collect())
    }

    /// The blob `digest` (`sha256:<hex>`).
    pub(crate) fn get(&self, digest: &str, layout: &Path) -> Result<Vec<u8>, OciError> {
        digest
            .strip_prefix("sha256:")
            .and_then(|hex| self.0.get(hex))
            .cloned()
            .ok_or_else(|| OciError::BadLayout {
                path: layout.to_path_buf(),
                message: format!("blob {digest} is missing"),
            })
    }

    pub(crate) fn insert(&mut self, digest: &str, bytes: Vec<u8>) {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.0.insert(hex.to_owned(), bytes);
    }

    pub(crate) fn size(&self, digest: &str) -> u64 {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.0.get(hex).map_or(0, |b| b.len() as u64)
    }

    /// Adds `bytes` and describes them as `media_type`.
    fn add(&mut self, media_type: MediaType, bytes: Vec<u8>) -> Result<Descriptor, OciError> {
        let hex = hex_sha256(&bytes);
        let descriptor = DescriptorBuilder::default()
            .media_type(media_type)
            .digest(sha256_digest(&hex)?)
            .size(bytes.len() as u64)
            .build()?;
        self.0.insert(hex, bytes);
        Ok(descriptor)
    }

    /// Adds a JSON document with its keys sorted, so its digest depends on its content only.
    fn add_json(
        &mut self,
        media_type: MediaType,
        value: &impl Serialize,
    ) -> Result<Descriptor, OciError> {
        self.add(media_type, canonical_json(value))
    }
}

/// The layout's `index.json`, parsed, and its path.
fn read_index(layout: &Path) -> Result<(PathBuf, serde_json::Value), OciError> {
    let path = layout.join("index.json");
    let text = read_file(&path, registry::MAX_MANIFEST)?;
    let index = serde_json::from_slice(&text).map_err(|e| OciError::BadLayout {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok((path, index))
}

/// Whether `hex` is the hex of a SHA-256 digest as OCI spells it: 64 lowercase digits.
pub(crate) fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The bytes of the layout's file at `path`: a regular file, or a link to one (not a FIFO,
/// which would block, nor a device such as /dev/zero), of at most `max` bytes.
fn read_file(path: &Path, max: u64) -> Result<Vec<u8>, OciError> {
    let read_error = |source| OciError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    let bad = |message: String| OciError::BadLayout {
        path: path.to_path_buf(),
        message,
    };
    if !meta.is_file() {
        return Err(bad("not a regular file".to_owned()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(max.saturating_add(1)).read_to_end(&mut bytes))
        .map_err(read_error)?;
    if bytes.len() as u64 > max {
        return Err(bad(format!("more than {max} bytes")));
    }
    Ok(bytes)
}

pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha256_digest(hex: &str) -> Result<Digest, OciError> {
    Ok(format!("sha256:{hex}").parse()?)
}

/// Serialised through `serde_json::Value`, whose objects keep their keys sorted: the spec
/// types hold annotations and labels in hash maps, whose order varies between runs.
fn canonical_json(value: &impl Serialize) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("OCI documents serialise");
    serde_json::to_vec(&value).expect("a JSON value serialises")
}

fn oci_arch(arch: Arch) -> OciArch {
    match arch {
        Arch::X86_64 => OciArch::Amd64,
        Arch::Aarch64 => OciArch::ARM64,
    }
}

/// A tar of `files` (name in the archive, bytes, executable), with fixed metadata.
fn reproducible_tar(files: &[(String, Vec<u8>, bool)]) -> Result<Vec<u8>, std::io::Error> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    if files
        .iter()
        .any(|(name, _, _)| name.starts_with(&format!("{KERNEL_DIR}/")))
    {
        let mut dir = tar::Header::new_ustar();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_size(0);
        dir.set_mtime(0);
        builder.append_data(&mut dir, format!("{KERNEL_DIR}/"), std::io::empty())?;
    }
    let mut sorted: Vec<&(String, Vec<u8>, bool)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, bytes, executable) in sorted {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(if *executable { 0o755 } else { 0o644 });
        header.set_size(bytes.len() as u64);
        header.set_mtime(0);
        builder.append_data(&mut header, name, bytes.as_slice())?;
    }
    builder.into_inner()
}

/// One layer's tar and the annotations of its descriptor.
struct Layer {
    tar: Vec<u8>,
    annotations: HashMap<String, String>,
}

/// urunc's annotations as the `/urunc.json` it reads from the container's root file system
/// when the container engine does not pass image annotations on (Docker, containerd's CRI):
/// the same keys, each value base64-encoded (urunc's `pkg/unikontainers/config.go`).
fn urunc_json(annotations: &[(&str, String)]) -> Vec<u8> {
    use base64::Engine as _;
    let object: BTreeMap<&str, String> = annotations
        .iter()
        .map(|(key, value)| {
            (
                *key,
                base64::engine::general_purpose::STANDARD.encode(value),
            )
        })
        .collect();
    canonical_json(&object)
}

/// The layers of one image: the kernel at `kernel_path` alone, so its digest changes with
/// the kernel only; urunc's `/urunc.json`; then its DWARF and the baked-files archive, when
/// there are any.
fn image_layers(
    kernel_path: &str,
    kernel: Vec<u8>,
    urunc: Vec<u8>,
    debug: Option<Vec<u8>>,
    files: Option<Vec<u8>>,
) -> Result<Vec<Layer>, std::io::Error> {
    let layer = |content: &str, name: String, bytes: Vec<u8>, executable: bool| {
        let tar = reproducible_tar(&[(name, bytes, executable)])?;
        let annotations = HashMap::from([(LAYER_CONTENT.to_owned(), content.to_owned())]);
        Ok::<_, std::io::Error>(Layer { tar, annotations })
    };
    let mut kernel_layer = layer("kernel", kernel_path.to_owned(), kernel, true)?;
    kernel_layer
        .annotations
        .insert(KRAFTKIT_KERNEL.to_owned(), format!("/{kernel_path}"));
    let mut layers = vec![
        kernel_layer,
        layer("urunc", URUNC_JSON.to_owned(), urunc, false)?,
    ];
    if let Some(debug) = debug {
        layers.push(layer(
            "debug",
            format!("{kernel_path}.debug"),
            debug,
            false,
        )?);
    }
    if let Some(files) = files {
        let name = kernel_path.replace(".elf", ".files.cpio");
        let mut files_layer = layer("files", name, files, false)?;
        files_layer.annotations.insert(
            "dev.uniklink.files.format".to_owned(),
            "cpio-newc".to_owned(),
        );
        layers.push(files_layer);
    }
    Ok(layers)
}

/// Writes the OCI image layout of `built` (one image per architecture of `config`'s
/// manifest) to `out`, the index tagged `opts.tag`. An existing layout there is replaced.
pub fn package(
    config: &ResolvedConfig,
    built: &[Built],
    out: &Path,
    opts: &PackageOptions,
) -> Result<Packaged, OciError> {
    let tag = opts.tag.as_str();
    check_tag(tag)?;
    let mut blobs = Blobs::default();
    let mut manifests = Vec::new();
    let mut referrers = Vec::new();
    let mut summary = Vec::new();
    let rustc = opts
        .sbom
        .then(|| built.iter().find_map(|b| b.metadata.as_ref()))
        .flatten()
        .and_then(|m| sbom::rustc_release(m.workspace_root.as_std_path()));
    for image in built {
        let arch = image.target.arch;
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| OciError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let file_name = format!("{}-{}.elf", config.name, arch.name());
        let kernel_path = format!("{KERNEL_DIR}/{file_name}");
        let debug = match &image.link.debug_file {
            Some((debug, _)) => Some(read(debug)?),
            None => None,
        };
        // The archive is linked into the image, and section GC keeps it only when the app
        // reads files: the layer is there exactly when the image has the files.
        let files_linked = image
            .report
            .kept_sections
            .iter()
            .any(|s| s.section == FILES_SECTION);
        let files = if files_linked {
            Some(
                crate::build::data::pack(&config.files)
                    .map_err(|source| OciError::Files { source })?,
            )
        } else {
            None
        };
        // What urunc needs, as manifest annotations and as `/urunc.json` (its
        // `pkg/unikontainers/config.go`; the required ones per its `docs/package/index.md`).
        let urunc = [
            ("com.urunc.unikernel.binary", format!("/{kernel_path}")),
            ("com.urunc.unikernel.unikernelType", "uniklink".to_owned()),
            ("com.urunc.unikernel.hypervisor", "qemu".to_owned()),
            ("com.urunc.unikernel.cmdline", config.cmdline.clone()),
            (
                "com.urunc.unikernel.unikernelVersion",
                env!("CARGO_PKG_VERSION").to_owned(),
            ),
        ];
        let layers = image_layers(
            &kernel_path,
            read(&image.paths.image)?,
            urunc_json(&urunc),
            debug,
            files,
        )
        .map_err(|source| OciError::Write {
            path: out.to_path_buf(),
            source,
        })?;
        let mut diff_ids = Vec::new();
        let mut layer_descriptors = Vec::new();
        for layer in layers {
            diff_ids.push(format!("sha256:{}", hex_sha256(&layer.tar)));
            let mut descriptor = blobs.add(MediaType::ImageLayer, layer.tar)?;
            descriptor.set_annotations(Some(layer.annotations));
            layer_descriptors.push(descriptor);
        }
        let layer_digest = |content: &str| {
            layer_descriptors
                .iter()
                .find(|d| {
                    d.annotations()
                        .as_ref()
                        .and_then(|a| a.get(LAYER_CONTENT))
                        .is_some_and(|c| c == content)
                })
                .map(|d| d.digest().to_string())
        };
        let (debug_layer_digest, files_layer_digest) =
            (layer_digest("debug"), layer_digest("files"));
        let kernel_layer_digest = layer_descriptors[0].digest().to_string();

        let mut labels = HashMap::new();
        labels.insert(
            "dev.uniklink.platform".to_owned(),
            image.target.platform.name().to_owned(),
        );
        labels.insert(
            "dev.uniklink.memory".to_owned(),
            config.memory.value.bytes().to_string(),
        );
        labels.insert("dev.uniklink.cmdline".to_owned(), config.cmdline.clone());
        labels.insert(
            "dev.uniklink.volumes".to_owned(),
            config
                .volumes
                .iter()
                .map(|v| v.name.clone())
                .collect::<Vec<_>>()
                .join(","),
        );
        let container = ConfigBuilder::default()
            .cmd(config.args.clone())
            .env(
                config
                    .env
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect::<Vec<_>>(),
            )
            .exposed_ports(
                config
                    .ports
                    .iter()
                    .map(|p| format!("{}/tcp", p.guest))
                    .collect::<Vec<_>>(),
            )
            .labels(labels)
            .build()?;
        let image_config = ImageConfigurationBuilder::default()
            .architecture(oci_arch(arch))
            .os(Os::Linux)
            .config(container)
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(diff_ids)
                    .build()?,
            )
            .build()?;
        let config_descriptor = blobs.add_json(MediaType::ImageConfig, &image_config)?;

        let report = &image.report;
        let mut annotations: HashMap<String, String> = urunc
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect();
        for (key, value) in [
            // bima, urunc's older packager, required `version`; urunc reads
            // `unikernelVersion`.
            (
                "com.urunc.unikernel.version",
                env!("CARGO_PKG_VERSION").to_owned(),
            ),
            ("dev.uniklink.version", env!("CARGO_PKG_VERSION").to_owned()),
            ("dev.uniklink.image-size", report.image_size.to_string()),
            (
                "dev.uniklink.stripped-size",
                report.stripped_size.to_string(),
            ),
        ] {
            annotations.insert(key.to_owned(), value);
        }
        if let Some(id) = &report.build_id {
            annotations.insert("dev.uniklink.build-id".to_owned(), id.clone());
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config_descriptor)
            .layers(layer_descriptors)
            .annotations(annotations)
            .build()?;
        let mut descriptor = blobs.add_json(MediaType::ImageManifest, &manifest)?;
        let (sbom_manifest_digest, sbom_digest) = if opts.sbom {
            let (referrer, document) =
                add_sbom(&mut blobs, config, image, &descriptor, rustc.as_deref())?;
            let digests = (Some(referrer.digest().to_string()), Some(document));
            referrers.push(referrer);
            digests
        } else {
            (None, None)
        };
        descriptor.set_platform(Some(
            PlatformBuilder::default()
                .architecture(oci_arch(arch))
                .os(Os::Linux)
                .build()?,
        ));
        summary.push(PackagedManifest {
            arch: arch.name().to_owned(),
            manifest_digest: descriptor.digest().to_string(),
            layer_digest: kernel_layer_digest,
            debug_layer_digest,
            files_layer_digest,
            sbom_manifest_digest,
            sbom_digest,
        });
        manifests.push(descriptor);
    }
    let image_index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()?;
    let index_descriptor = blobs.add_json(MediaType::ImageIndex, &image_index)?;
    let index_digest = index_descriptor.digest().to_string();
    let top = tag_index(&index_digest, tag, index_descriptor.size(), referrers)?;
    write_layout(out, &blobs, &top)?;
    Ok(Packaged {
        layout: out.to_path_buf(),
        tag: tag.to_owned(),
        index_digest,
        manifests: summary,
    })
}

/// Adds the SBOM of `image`, whose manifest `subject` describes, and the artifact manifest
/// that refers to it; returns that manifest's descriptor as a referrers list holds it, and
/// the document's digest.
fn add_sbom(
    blobs: &mut Blobs,
    config: &ResolvedConfig,
    image: &Built,
    subject: &Descriptor,
    rustc: Option<&str>,
) -> Result<(Descriptor, String), OciError> {
    let arch = oci_arch(image.target.arch).to_string();
    let manifest_digest = subject.digest().to_string();
    let packages = image
        .metadata
        .as_ref()
        .map(sbom::packages)
        .unwrap_or_default();
    let document = sbom::document(
        sbom::Subject {
            name: &config.name,
            arch: &arch,
            manifest_digest: &manifest_digest,
            build_id: image.report.build_id.as_deref(),
        },
        &packages,
        &image.report.sizes.crates,
        rustc,
    );
    let sbom_type = MediaType::Other(sbom::MEDIA_TYPE.to_owned());
    let mut layer = blobs.add_json(sbom_type.clone(), &document)?;
    layer.set_annotations(Some(HashMap::from([(
        "org.opencontainers.image.title".to_owned(),
        format!("{}-{}.cdx.json", config.name, image.target.arch.name()),
    )])));
    let document_digest = layer.digest().to_string();
    let empty = blobs.add(MediaType::EmptyJSON, EMPTY_JSON.to_vec())?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(sbom_type.clone())
        .config(empty)
        .layers(vec![layer])
        .subject(subject.clone())
        .build()?;
    let mut descriptor = blobs.add_json(MediaType::ImageManifest, &manifest)?;
    descriptor.set_artifact_type(Some(sbom_type));
    Ok((descriptor, document_digest))
}

/// The layout's `index.json`: the image index `digest` (of `size` bytes), tagged `tag`, and
/// the manifests that refer to its images (`subject`), untagged, as OCI 1.1 layouts list
/// referrers.
pub(crate) fn tag_index(
    digest: &str,
    tag: &str,
    size: u64,
    referrers: Vec<Descriptor>,
) -> Result<Vec<u8>, OciError> {
    let descriptor = DescriptorBuilder::default()
        .media_type(MediaType::ImageIndex)
        .digest(digest.parse::<Digest>()?)
        .size(size)
        .annotations(HashMap::from([(
            "org.opencontainers.image.ref.name".to_owned(),
            tag.to_owned(),
        )]))
        .build()?;
    let top = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(
            std::iter::once(descriptor)
                .chain(referrers)
                .collect::<Vec<_>>(),
        )
        .build()?;
    Ok(canonical_json(&top))
}

/// What `run` needs of one architecture's image in a layout.
#[derive(Debug, Clone)]
pub struct Runnable {
    pub arch: Arch,
    /// The ELF image, from the layer (its digest checked).
    pub kernel: Vec<u8>,
    /// The config's labels: `dev.uniklink.platform`, `.memory`, `.cmdline`.
    pub platform: Option<String>,
    pub memory: Option<u64>,
    pub cmdline: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub ports: Vec<u16>,
}

/// The image for `arch` in the layout at `layout`, tagged `tag`.
pub fn runnable(layout: &Path, tag: &str, arch: Arch) -> Result<Runnable, OciError> {
    let blobs = Blobs::read_layout(layout)?;
    let bad = |message: String| OciError::BadLayout {
        path: layout.to_path_buf(),
        message,
    };
    let json = |digest: &str| -> Result<serde_json::Value, OciError> {
        serde_json::from_slice(&blobs.get(digest, layout)?).map_err(|e| bad(e.to_string()))
    };
    let index = json(&blobs.tagged(tag, layout)?)?;
    let wanted = oci_arch(arch).to_string();
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    let entry = entries
        .iter()
        .find(|m| m["platform"]["architecture"].as_str() == Some(wanted.as_str()))
        .ok_or_else(|| OciError::NoArch {
            path: layout.to_path_buf(),
            arch,
            has: entries
                .iter()
                .filter_map(|m| m["platform"]["architecture"].as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let manifest = json(entry["digest"].as_str().unwrap_or_default())?;
    let kernel_path = manifest["annotations"]["com.urunc.unikernel.binary"]
        .as_str()
        .map(|p| p.trim_start_matches('/').to_owned())
        .ok_or_else(|| bad("the manifest names no kernel (com.urunc.unikernel.binary)".into()))?;
    let config = json(manifest["config"]["digest"].as_str().unwrap_or_default())?;
    // The layers applied in order, as a container runtime would: the last one holding the
    // kernel's path wins.
    let mut kernel = None;
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        let layer = blobs.get(layer["digest"].as_str().unwrap_or_default(), layout)?;
        let mut archive = tar::Archive::new(layer.as_slice());
        for entry in archive
            .entries()
            .map_err(|e| bad(format!("a layer: {e}")))?
        {
            let mut entry = entry.map_err(|e| bad(format!("a layer: {e}")))?;
            let path = entry
                .path()
                .map_err(|e| bad(e.to_string()))?
                .display()
                .to_string();
            if path == kernel_path {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut bytes)
                    .map_err(|e| bad(e.to_string()))?;
                kernel = Some(bytes);
            }
        }
    }
    let kernel = kernel.ok_or_else(|| bad(format!("no layer has {kernel_path}")))?;
    let labels = &config["config"]["Labels"];
    let strings = |value: &serde_json::Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    Ok(Runnable {
        arch,
        kernel,
        platform: labels["dev.uniklink.platform"].as_str().map(str::to_owned),
        memory: labels["dev.uniklink.memory"]
            .as_str()
            .and_then(|m| m.parse().ok()),
        cmdline: labels["dev.uniklink.cmdline"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        args: strings(&config["config"]["Cmd"]),
        env: strings(&config["config"]["Env"])
            .into_iter()
            .filter_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                Some((name.to_owned(), value.to_owned()))
            })
            .collect(),
        ports: config["config"]["ExposedPorts"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(port, _)| port.strip_suffix("/tcp")?.parse().ok())
            .collect(),
    })
}

/// Writes the layout into a fresh directory beside `out` and renames it over `out`, so a
/// failure leaves no half-written layout and the layout it replaces stays until the new one
/// is in place. `out` must be new, an empty directory or an image layout (its `oci-layout`
/// file): `-o` naming anything else, a source tree say, is refused before anything is written.
pub(crate) fn write_layout(out: &Path, blobs: &Blobs, index: &[u8]) -> Result<(), OciError> {
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OciError::Write { path, source }
    };
    let replaces = replaceable(out)?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(write_error(parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".uniklink-oci-")
        .tempdir_in(parent)
        .map_err(write_error(parent))?;
    let root = staging.path().join("layout");
    let blob_dir = root.join("blobs/sha256");
    std::fs::create_dir_all(&blob_dir).map_err(write_error(&blob_dir))?;
    for (hex, bytes) in &blobs.0 {
        let path = blob_dir.join(hex);
        std::fs::write(&path, bytes).map_err(write_error(&path))?;
    }
    let layout = root.join("oci-layout");
    std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(write_error(&layout))?;
    let index_path = root.join("index.json");
    std::fs::write(&index_path, index).map_err(write_error(&index_path))?;
    // The old layout moves into the staging directory, which is removed with whatever it
    // holds when this returns: the old layout once the new one is in place, the new one if
    // the swap failed and the old one went back.
    let old = staging.path().join("replaced");
    if replaces {
        std::fs::rename(out, &old).map_err(write_error(out))?;
    }
    if let Err(source) = std::fs::rename(&root, out) {
        if replaces && std::fs::rename(&old, out).is_err() {
            return Err(OciError::OldLayoutKept {
                path: out.to_path_buf(),
                kept: staging.keep().join("replaced"),
                source,
            });
        }
        return Err(OciError::Write {
            path: out.to_path_buf(),
            source,
        });
    }
    Ok(())
}

/// Checks, before any work, that a layout may be written at `out` (see [`write_layout`]).
pub fn check_output(out: &Path) -> Result<(), OciError> {
    replaceable(out).map(|_| ())
}

/// Whether `out` exists and may be replaced by a layout (an empty directory or an image
/// layout); an error for anything else that exists.
fn replaceable(out: &Path) -> Result<bool, OciError> {
    let refuse = |what| {
        Err(OciError::NotReplaceable {
            path: out.to_path_buf(),
            what,
        })
    };
    // `x/.` has a file name to Path (`x`), but nothing can be renamed onto it.
    if out.file_name().is_none() || out.as_os_str().as_encoded_bytes().ends_with(b"/.") {
        return refuse("a path without a name of its own (`.`, `..`, a root)");
    }
    let meta = match std::fs::symlink_metadata(out) {
        Ok(meta) => meta,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(OciError::Read {
                path: out.to_path_buf(),
                source,
            });
        }
    };
    if meta.is_symlink() {
        return refuse("a symbolic link");
    }
    if !meta.is_dir() {
        return refuse("not a directory");
    }
    if out.join("oci-layout").is_file() {
        return Ok(true);
    }
    let mut entries = std::fs::read_dir(out).map_err(|source| OciError::Read {
        path: out.to_path_buf(),
        source,
    })?;
    match entries.next() {
        None => Ok(true),
        Some(_) => refuse("a directory that is neither empty nor an image layout"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_the_distribution_spec() {
        for good in ["latest", "v1.2.3", "a_b-c", &"x".repeat(128)] {
            assert!(check_tag(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "-x", "a/b", "a:b", &"x".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_tar_is_the_same_whatever_the_order_given() {
        let a = ("unikernel/a".to_owned(), b"one".to_vec(), true);
        let b = ("unikernel/b".to_owned(), b"two".to_vec(), false);
        let first = reproducible_tar(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(first, reproducible_tar(&[b, a]).unwrap());
        let mut archive = tar::Archive::new(first.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["unikernel/", "unikernel/a", "unikernel/b"]);
    }

    #[test]
    fn the_kernel_layer_holds_the_kernel_alone() {
        let path = "unikernel/k-x86_64.elf";
        let with_dwarf = |dwarf: &[u8]| {
            image_layers(
                path,
                b"kernel".to_vec(),
                b"{}".to_vec(),
                Some(dwarf.to_vec()),
                Some(b"cpio".to_vec()),
            )
            .unwrap()
        };
        let (a, b) = (with_dwarf(b"one"), with_dwarf(b"two"));
        assert_eq!(
            a[0].tar, b[0].tar,
            "DWARF alone leaves the kernel layer as it is"
        );
        assert_ne!(a[2].tar, b[2].tar);
        let contents: Vec<&str> = a
            .iter()
            .map(|l| l.annotations[LAYER_CONTENT].as_str())
            .collect();
        assert_eq!(contents, ["kernel", "urunc", "debug", "files"]);
        assert_eq!(a[0].annotations[KRAFTKIT_KERNEL], format!("/{path}"));
        let names = |tar: &[u8]| -> Vec<String> {
            tar::Archive::new(tar)
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .collect()
        };
        assert_eq!(names(&a[0].tar), ["unikernel/", path]);
        assert_eq!(names(&a[1].tar), ["urunc.json"]);
        assert_eq!(
            names(&a[3].tar),
            ["unikernel/", "unikernel/k-x86_64.files.cpio"]
        );
        let bare = image_layers(path, b"kernel".to_vec(), b"{}".to_vec(), None, None).unwrap();
        assert_eq!(bare.len(), 2);
        assert_eq!(bare[0].tar, a[0].tar);
    }

    #[test]
    fn urunc_json_holds_base64_values_as_urunc_decodes_them() {
        let json = urunc_json(&[
            ("com.urunc.unikernel.binary", "/unikernel/k.elf".to_owned()),
            ("com.urunc.unikernel.cmdline", String::new()),
        ]);
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"com.urunc.unikernel.binary":"L3VuaWtlcm5lbC9rLmVsZg==","com.urunc.unikernel.cmdline":""}"#
        );
    }
}
