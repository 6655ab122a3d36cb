//! Pushing a layout to an OCI distribution registry and pulling one back (the distribution
//! spec's blob uploads and manifest puts and gets), over HTTPS, or plain HTTP with
//! `insecure` for a registry on loopback. Credentials: `UNIKLINK_REGISTRY_USERNAME` and
//! `UNIKLINK_REGISTRY_PASSWORD`, else the registry's entry in the Docker config file
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, `auths.<host>.auth`), sent as
//! HTTP Basic; registries that want a bearer token from a separate service are not supported.
//!
//! Every blob and manifest pulled is checked against its digest before it is written, so a
//! tampered registry gives an error, not an image.

use std::fmt;
use std::io::Read as _;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;

use super::{Blobs, OciError, check_tag, hex_sha256};

/// How long one request may take, a connect and a transfer of the largest image included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest manifest or index read; the spec suggests registries accept at least 4 MiB.
const MAX_MANIFEST: u64 = 4 << 20;
/// Largest blob read: an image PVH can load, below 4 GiB.
const MAX_BLOB: u64 = 4 << 30;

const MANIFEST_TYPES: &str =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json";

/// `host[:port]/name[:tag]` (a digest reference, `@sha256:...`, too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    /// A tag, or `sha256:<hex>`.
    pub reference: String,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.reference.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        write!(
            f,
            "{}/{}{sep}{}",
            self.registry, self.repository, self.reference
        )
    }
}

impl FromStr for Reference {
    type Err = OciError;

    fn from_str(s: &str) -> Result<Reference, OciError> {
        let bad = |why: &str| OciError::BadReference(s.to_owned(), why.to_owned());
        let (registry, rest) = s
            .split_once('/')
            .ok_or_else(|| bad("no registry: write host[:port]/name[:tag]"))?;
        let host_like = registry.contains('.') || registry.contains(':') || registry == "localhost";
        if !host_like || registry.is_empty() {
            return Err(bad(
                "the first part must be a registry host (with a dot or a port)",
            ));
        }
        let (repository, reference) = match rest.split_once('@') {
            Some((repository, digest)) => {
                let hex = digest
                    .strip_prefix("sha256:")
                    .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .ok_or_else(|| bad("a digest is sha256: and 64 hex digits"))?;
                (repository, format!("sha256:{}", hex.to_ascii_lowercase()))
            }
            None => match rest.rsplit_once(':') {
                Some((repository, tag)) if !tag.contains('/') => {
                    check_tag(tag).map_err(|_| bad("a tag is letters, digits, `_`, `.`, `-`"))?;
                    (repository, tag.to_owned())
                }
                _ => (rest, super::DEFAULT_TAG.to_owned()),
            },
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        };
        if !repository.split('/').all(component_ok) {
            return Err(bad(
                "a repository name is lowercase letters, digits, `.`, `_`, `-`, and `/`",
            ));
        }
        Ok(Reference {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            reference,
        })
    }
}

/// A client for one registry.
pub struct Registry {
    agent: ureq::Agent,
    base: String,
    authorization: Option<String>,
    reference: Reference,
}

impl Registry {
    pub fn new(reference: &Reference, insecure: bool) -> Registry {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .new_agent();
        let scheme = if insecure { "http" } else { "https" };
        Registry {
            agent,
            base: format!(
                "{scheme}://{}/v2/{}",
                reference.registry, reference.repository
            ),
            authorization: credentials(&reference.registry),
            reference: reference.clone(),
        }
    }

    fn failed(&self, what: &str, detail: impl fmt::Display) -> OciError {
        OciError::Registry {
            reference: self.reference.to_string(),
            message: format!("{what}: {detail}"),
        }
    }

    fn auth<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }

    /// Whether the registry has the blob already.
    fn has_blob(&self, digest: &str) -> Result<bool, OciError> {
        let response = self
            .auth(self.agent.head(format!("{}/blobs/{digest}", self.base)))
            .call()
            .map_err(|e| self.failed("cannot reach the registry", e))?;
        Ok(response.status().is_success())
    }

    fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), OciError> {
        if self.has_blob(digest)? {
            return Ok(());
        }
        let response = self
            .auth(self.agent.post(format!("{}/blobs/uploads/", self.base)))
            .send_empty()
            .map_err(|e| self.failed("cannot start an upload", e))?;
        if response.status().as_u16() != 202 {
            return Err(self.failed("starting an upload", response.status()));
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| self.failed("starting an upload", "no Location header"))?;
        let location = if location.starts_with("http") {
            location.to_owned()
        } else {
            let origin = self.base.split("/v2/").next().unwrap_or_default();
            format!("{origin}{location}")
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let response = self
            .auth(self.agent.put(format!("{location}{sep}digest={digest}")))
            .header("Content-Type", "application/octet-stream")
            .send(bytes)
            .map_err(|e| self.failed("cannot upload a blob", e))?;
        if response.status().as_u16() != 201 {
            return Err(self.failed(&format!("uploading {digest}"), response.status()));
        }
        Ok(())
    }

    fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), OciError> {
        let response = self
            .auth(
                self.agent
                    .put(format!("{}/manifests/{reference}", self.base)),
            )
            .header("Content-Type", media_type)
            .send(bytes)
            .map_err(|e| self.failed("cannot put a manifest", e))?;
        if !response.status().is_success() {
            return Err(self.failed(&format!("putting manifest {reference}"), response.status()));
        }
        Ok(())
    }

    /// A manifest or index by tag or digest: its bytes, checked against `digest` when given.
    fn get_manifest(&self, reference: &str, digest: Option<&str>) -> Result<Vec<u8>, OciError> {
        let mut response = self
            .auth(
                self.agent
                    .get(format!("{}/manifests/{reference}", self.base)),
            )
            .header("Accept", MANIFEST_TYPES)
            .call()
            .map_err(|e| self.failed("cannot reach the registry", e))?;
        match response.status().as_u16() {
            200 => {}
            404 => return Err(self.failed(&format!("no manifest `{reference}`"), "not found")),
            _ => {
                return Err(
                    self.failed(&format!("getting manifest {reference}"), response.status())
                );
            }
        }
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST)
            .read_to_vec()
            .map_err(|e| self.failed("reading a manifest", e))?;
        if let Some(digest) = digest {
            verify(&self.reference, digest, &bytes)?;
        }
        Ok(bytes)
    }

    fn get_blob(&self, digest: &str) -> Result<Vec<u8>, OciError> {
        let mut response = self
            .auth(self.agent.get(format!("{}/blobs/{digest}", self.base)))
            .call()
            .map_err(|e| self.failed("cannot reach the registry", e))?;
        if !response.status().is_success() {
            return Err(self.failed(&format!("getting blob {digest}"), response.status()));
        }
        let mut bytes = Vec::new();
        response
            .body_mut()
            .with_config()
            .limit(MAX_BLOB)
            .reader()
            .read_to_end(&mut bytes)
            .map_err(|e| self.failed("reading a blob", e))?;
        verify(&self.reference, digest, &bytes)?;
        Ok(bytes)
    }
}

/// `bytes` hash to `digest`, or a tampering error.
fn verify(reference: &Reference, digest: &str, bytes: &[u8]) -> Result<(), OciError> {
    let actual = format!("sha256:{}", hex_sha256(bytes));
    if actual == digest {
        Ok(())
    } else {
        Err(OciError::DigestMismatch {
            reference: reference.to_string(),
            expected: digest.to_owned(),
            actual,
        })
    }
}

/// `Basic <base64>` from the environment or the Docker config file, for `registry`.
fn credentials(registry: &str) -> Option<String> {
    let basic = |pair: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    if let (Ok(user), Ok(password)) = (
        std::env::var("UNIKLINK_REGISTRY_USERNAME"),
        std::env::var("UNIKLINK_REGISTRY_PASSWORD"),
    ) {
        return Some(basic(&format!("{user}:{password}")));
    }
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker")))?;
    let text = std::fs::read(dir.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let auth = config["auths"][registry]["auth"].as_str()?;
    Some(format!("Basic {auth}"))
}

/// Pushes the layout at `layout` (its index tagged `tag`) to `reference`.
pub fn push(
    layout: &Path,
    tag: &str,
    reference: &Reference,
    insecure: bool,
) -> Result<String, OciError> {
    let registry = Registry::new(reference, insecure);
    let blobs = Blobs::read_layout(layout)?;
    let index_digest = blobs.tagged(tag, layout)?;
    let index_bytes = blobs.get(&index_digest, layout)?;
    let index: serde_json::Value = parse_json(&index_bytes, layout)?;
    for manifest in index["manifests"].as_array().into_iter().flatten() {
        let digest = manifest["digest"].as_str().unwrap_or_default();
        let bytes = blobs.get(digest, layout)?;
        let parsed: serde_json::Value = parse_json(&bytes, layout)?;
        let referenced = std::iter::once(&parsed["config"])
            .chain(parsed["layers"].as_array().into_iter().flatten());
        for blob in referenced {
            let digest = blob["digest"].as_str().unwrap_or_default();
            registry.put_blob(digest, &blobs.get(digest, layout)?)?;
        }
        registry.put_manifest(
            digest,
            manifest["mediaType"]
                .as_str()
                .unwrap_or(super::MANIFEST_MEDIA_TYPE),
            &bytes,
        )?;
    }
    registry.put_manifest(&reference.reference, super::INDEX_MEDIA_TYPE, &index_bytes)?;
    Ok(index_digest)
}

/// Pulls `reference` into a layout at `out`, every blob checked against its digest, the
/// index tagged `tag`; returns the index's digest.
pub fn pull(
    reference: &Reference,
    out: &Path,
    tag: &str,
    insecure: bool,
) -> Result<String, OciError> {
    let registry = Registry::new(reference, insecure);
    let expected = reference
        .reference
        .starts_with("sha256:")
        .then_some(reference.reference.as_str());
    let top = registry.get_manifest(&reference.reference, expected)?;
    let top_digest = format!("sha256:{}", hex_sha256(&top));
    let parsed: serde_json::Value = parse_json(&top, out)?;
    let mut blobs = Blobs::default();
    let manifests: Vec<(String, Vec<u8>)> = match parsed["mediaType"].as_str() {
        Some(super::INDEX_MEDIA_TYPE) => parsed["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let digest = m["digest"].as_str().unwrap_or_default().to_owned();
                let bytes = registry.get_manifest(&digest, Some(&digest))?;
                Ok((digest, bytes))
            })
            .collect::<Result<_, OciError>>()?,
        _ => vec![(top_digest.clone(), top.clone())],
    };
    for (_, bytes) in &manifests {
        let manifest: serde_json::Value = parse_json(bytes, out)?;
        let referenced = std::iter::once(&manifest["config"])
            .chain(manifest["layers"].as_array().into_iter().flatten());
        for blob in referenced {
            let digest = blob["digest"].as_str().unwrap_or_default();
            blobs.insert(digest, registry.get_blob(digest)?);
        }
    }
    for (digest, bytes) in manifests {
        blobs.insert(&digest, bytes);
    }
    blobs.insert(&top_digest, top);
    let top_index = super::tag_index(&top_digest, tag, blobs.size(&top_digest))?;
    super::write_layout(out, &blobs, &top_index)?;
    Ok(top_digest)
}

fn parse_json(bytes: &[u8], path: &Path) -> Result<serde_json::Value, OciError> {
    serde_json::from_slice(bytes).map_err(|e| OciError::BadLayout {
        path: path.to_path_buf(),
        message: format!("a manifest that is not JSON: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_registries_write_them() {
        let r: Reference = "127.0.0.1:5000/apps/hello:v1".parse().unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("127.0.0.1:5000", "apps/hello", "v1")
        );
        let r: Reference = "registry.example.com/hello".parse().unwrap();
        assert_eq!(r.reference, "latest");
        let digest = format!("localhost/hello@sha256:{}", "A".repeat(64));
        let r: Reference = digest.parse().unwrap();
        assert_eq!(r.reference, format!("sha256:{}", "a".repeat(64)));
        assert_eq!(
            r.to_string(),
            format!("localhost/hello@sha256:{}", "a".repeat(64))
        );
        for bad in [
            "hello",
            "hello:v1",
            "library/hello",
            "127.0.0.1:5000/",
            "127.0.0.1:5000/Hello",
            "127.0.0.1:5000/hello:bad/tag",
            "127.0.0.1:5000/hello@sha256:123",
            "127.0.0.1:5000/hello:",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad}");
        }
    }
}
