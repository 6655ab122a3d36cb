//! Pushing a layout to an OCI distribution registry and pulling one back (the distribution
//! spec's blob uploads and manifest puts and gets), over HTTPS, or plain HTTP with
//! `insecure` for a registry on loopback. Credentials: `UNIKLINK_REGISTRY_USERNAME` and
//! `UNIKLINK_REGISTRY_PASSWORD`, else the registry's entry in the Docker config file
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, `auths.<host>.auth`), sent as
//! HTTP Basic; a registry that answers 401 with a Bearer challenge gets a token from the
//! service the challenge names (with those credentials, or anonymously), for the repository's
//! `pull` or `pull,push` scope, and the request again with the token.
//!
//! Every blob and manifest pulled is checked against its digest before it is written, so a
//! tampered registry gives an error, not an image.

use std::fmt;
use std::io::Read as _;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;

use super::{Blobs, OciError, check_tag, hex_sha256, is_sha256_hex};

/// How long one request may take, a connect and a transfer of the largest image included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest manifest or index read; the spec suggests registries accept at least 4 MiB.
pub(super) const MAX_MANIFEST: u64 = 4 << 20;
/// Largest blob read: an image PVH can load, below 4 GiB. Also the most a pull holds in all:
/// its blobs stay in memory until the layout is written.
pub(super) const MAX_BLOB: u64 = 4 << 30;
/// Most manifests an index may list for a pull.
const MAX_MANIFESTS: usize = 64;
/// Most referrers (SBOMs, signatures, attestations) a pull takes of one manifest.
const MAX_REFERRERS: usize = 1024;

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
                    .map(str::to_ascii_lowercase)
                    .filter(|hex| is_sha256_hex(hex))
                    .ok_or_else(|| bad("a digest is sha256: and 64 hex digits"))?;
                (repository, format!("sha256:{hex}"))
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

/// What a client asks a token service for: pulling, or pulling and pushing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

impl Access {
    fn actions(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        }
    }
}

/// A `WWW-Authenticate: Bearer ...` challenge (RFC 6750), as the distribution spec's token
/// authentication uses it: where to get a token and for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub service: Option<String>,
    pub scope: Option<String>,
}

impl Challenge {
    /// The Bearer challenge of a `WWW-Authenticate` value; `None` for another scheme (Basic)
    /// or one without a realm.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim_start();
        let (scheme, rest) = header.split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut params: Vec<(String, String)> = Vec::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                chars.next();
            }
            let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
            if key.is_empty() || chars.next() != Some('=') {
                break;
            }
            let mut value = String::new();
            if chars.next_if_eq(&'"').is_some() {
                // A quoted string: `\` escapes the next character.
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => value.extend(chars.next()),
                        c => value.push(c),
                    }
                }
            } else {
                value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
            }
            params.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        Some(Challenge {
            realm: get("realm").filter(|r| !r.is_empty())?,
            service: get("service"),
            scope: get("scope"),
        })
    }
}

/// `text` percent-encoded for a URL's query, everything but RFC 3986's unreserved characters.
fn query_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A client for one registry.
pub struct Registry {
    agent: ureq::Agent,
    base: String,
    insecure: bool,
    access: Access,
    /// `Basic <base64>` from the usual sources: sent to the registry, and to its token
    /// service when it asks for a token.
    basic: Option<String>,
    /// The token the registry's token service gave, once it asked for one.
    bearer: std::cell::RefCell<Option<String>>,
    reference: Reference,
}

impl Registry {
    pub fn new(
        reference: &Reference,
        insecure: bool,
        access: Access,
    ) -> Result<Registry, OciError> {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .new_agent();
        let scheme = if insecure { "http" } else { "https" };
        Ok(Registry {
            agent,
            base: format!(
                "{scheme}://{}/v2/{}",
                reference.registry, reference.repository
            ),
            insecure,
            access,
            basic: credentials(&reference.registry)?,
            bearer: std::cell::RefCell::new(None),
            reference: reference.clone(),
        })
    }

    fn failed(&self, what: &str, detail: impl fmt::Display) -> OciError {
        OciError::Registry {
            reference: self.reference.to_string(),
            message: format!("{what}: {detail}"),
        }
    }

    /// The digest a descriptor from the registry names, checked to be a SHA-256 digest
    /// before it goes into a URL or a file name.
    fn digest_of(&self, descriptor: &serde_json::Value, what: &str) -> Result<String, OciError> {
        let digest = descriptor["digest"].as_str().unwrap_or_default();
        if digest.strip_prefix("sha256:").is_some_and(is_sha256_hex) {
            Ok(digest.to_owned())
        } else {
            Err(self.failed(what, format!("`{digest}` is no SHA-256 digest")))
        }
    }

    /// An error for an unexpected status, with what to do about refused credentials.
    fn status(&self, what: &str, status: ureq::http::StatusCode) -> OciError {
        let hint = match status.as_u16() {
            401 | 403 => {
                " (set UNIKLINK_REGISTRY_USERNAME and UNIKLINK_REGISTRY_PASSWORD, or log in \
                 with `docker login`)"
            }
            _ => "",
        };
        self.failed(what, format!("{status}{hint}"))
    }

    /// One request, with the token or credentials there are. A 401 with a Bearer challenge
    /// fetches a token from the realm it names and sends the request once more.
    fn send(
        &self,
        method: ureq::http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<ureq::http::Response<ureq::Body>, OciError> {
        let attempt = || {
            let mut request = ureq::http::Request::builder()
                .method(method.clone())
                .uri(url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let authorization = match &*self.bearer.borrow() {
                Some(token) => Some(format!("Bearer {token}")),
                None => self.basic.clone(),
            };
            if let Some(value) = authorization {
                request = request.header("Authorization", value);
            }
            let sent = match body {
                Some(bytes) => request
                    .body(bytes)
                    .map(|r| self.agent.run(r))
                    .map_err(|e| self.failed("cannot make a request", e))?,
                None => request
                    .body(())
                    .map(|r| self.agent.run(r))
                    .map_err(|e| self.failed("cannot make a request", e))?,
            };
            sent.map_err(|e| self.failed("cannot reach the registry", e))
        };
        let response = attempt()?;
        if response.status().as_u16() != 401 {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(Challenge::parse);
        let Some(challenge) = challenge else {
            return Ok(response);
        };
        let token = self.token(&challenge)?;
        *self.bearer.borrow_mut() = Some(token);
        attempt()
    }

    /// A token from the challenge's realm for this repository's scope (and the one the
    /// challenge names, when it differs), with Basic credentials when there are any.
    fn token(&self, challenge: &Challenge) -> Result<String, OciError> {
        if challenge.realm.starts_with("http://") && !self.insecure {
            return Err(self.failed(
                "the registry's token service is plain HTTP",
                format!(
                    "{} (--insecure allows it, for a registry on loopback)",
                    challenge.realm
                ),
            ));
        }
        let ours = format!(
            "repository:{}:{}",
            self.reference.repository,
            self.access.actions()
        );
        let mut query = Vec::new();
        if let Some(service) = &challenge.service {
            query.push(format!("service={}", query_encode(service)));
        }
        query.push(format!("scope={}", query_encode(&ours)));
        for scope in challenge.scope.iter().flat_map(|s| s.split(' ')) {
            if !scope.is_empty() && scope != ours {
                query.push(format!("scope={}", query_encode(scope)));
            }
        }
        let sep = if challenge.realm.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!("{}{sep}{}", challenge.realm, query.join("&"));
        let mut request = self.agent.get(&url);
        if let Some(basic) = &self.basic {
            request = request.header("Authorization", basic);
        }
        let what = format!("getting a token from {}", challenge.realm);
        let mut response = request.call().map_err(|e| self.failed(&what, e))?;
        if !response.status().is_success() {
            return Err(self.status(&what, response.status()));
        }
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST)
            .read_to_vec()
            .map_err(|e| self.failed(&what, e))?;
        let body: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| self.failed(&what, e))?;
        // The token spec names it `token`; OAuth 2 clients know it as `access_token`.
        body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| self.failed(&what, "the answer has no `token`"))
    }

    /// Whether the registry has the blob already.
    fn has_blob(&self, digest: &str) -> Result<bool, OciError> {
        let response = self.send(
            ureq::http::Method::HEAD,
            &format!("{}/blobs/{digest}", self.base),
            &[],
            None,
        )?;
        Ok(response.status().is_success())
    }

    fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), OciError> {
        if self.has_blob(digest)? {
            return Ok(());
        }
        let response = self.send(
            ureq::http::Method::POST,
            &format!("{}/blobs/uploads/", self.base),
            &[],
            None,
        )?;
        if response.status().as_u16() != 202 {
            return Err(self.status("starting an upload", response.status()));
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| self.failed("starting an upload", "no Location header"))?;
        let origin = self.base.split("/v2/").next().unwrap_or_default();
        let location = upload_url(origin, location).ok_or_else(|| {
            self.failed(
                "starting an upload",
                format!("the upload location `{location}` is not on {origin}"),
            )
        })?;
        let sep = if location.contains('?') { '&' } else { '?' };
        let response = self.send(
            ureq::http::Method::PUT,
            &format!("{location}{sep}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            Some(bytes),
        )?;
        if response.status().as_u16() != 201 {
            return Err(self.status(&format!("uploading {digest}"), response.status()));
        }
        Ok(())
    }

    /// Puts a manifest; returns whether the registry said it indexed its `subject` (the
    /// `OCI-Subject` header of a registry with the referrers API).
    fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<bool, OciError> {
        let response = self.send(
            ureq::http::Method::PUT,
            &format!("{}/manifests/{reference}", self.base),
            &[("Content-Type", media_type)],
            Some(bytes),
        )?;
        if !response.status().is_success() {
            return Err(self.status(&format!("putting manifest {reference}"), response.status()));
        }
        Ok(response.headers().contains_key("oci-subject"))
    }

    /// A manifest or index by tag or digest: its bytes, checked against `digest` when given;
    /// `None` when the registry has none by that name.
    fn find_manifest(
        &self,
        reference: &str,
        digest: Option<&str>,
    ) -> Result<Option<Vec<u8>>, OciError> {
        let mut response = self.send(
            ureq::http::Method::GET,
            &format!("{}/manifests/{reference}", self.base),
            &[("Accept", MANIFEST_TYPES)],
            None,
        )?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            _ => {
                return Err(
                    self.status(&format!("getting manifest {reference}"), response.status())
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
        Ok(Some(bytes))
    }

    /// A manifest or index that must be there.
    fn get_manifest(&self, reference: &str, digest: Option<&str>) -> Result<Vec<u8>, OciError> {
        self.find_manifest(reference, digest)?
            .ok_or_else(|| self.failed(&format!("no manifest `{reference}`"), "not found"))
    }

    /// The blob `digest`, of at most `limit` bytes (its descriptor's size).
    fn get_blob(&self, digest: &str, limit: u64) -> Result<Vec<u8>, OciError> {
        let mut response = self.send(
            ureq::http::Method::GET,
            &format!("{}/blobs/{digest}", self.base),
            &[],
            None,
        )?;
        if !response.status().is_success() {
            return Err(self.status(&format!("getting blob {digest}"), response.status()));
        }
        let mut bytes = Vec::new();
        response
            .body_mut()
            .with_config()
            .limit(limit)
            .reader()
            .read_to_end(&mut bytes)
            .map_err(|e| self.failed("reading a blob", e))?;
        verify(&self.reference, digest, &bytes)?;
        Ok(bytes)
    }

    /// The descriptors of the manifests that refer to `digest`: from the referrers API, or,
    /// where the registry has none (404, as distribution 2.x), from the referrers tag schema's
    /// index (`sha256-<hex>`), as the distribution spec says clients fall back.
    fn referrers(&self, digest: &str) -> Result<Vec<serde_json::Value>, OciError> {
        let mut response = self.send(
            ureq::http::Method::GET,
            &format!("{}/referrers/{digest}", self.base),
            &[("Accept", super::INDEX_MEDIA_TYPE)],
            None,
        )?;
        let index = match response.status().as_u16() {
            200 => response
                .body_mut()
                .with_config()
                .limit(MAX_MANIFEST)
                .read_to_vec()
                .map_err(|e| self.failed("reading a referrers list", e))?,
            404 => match self.find_manifest(&referrers_tag(digest), None)? {
                Some(bytes) => bytes,
                None => return Ok(Vec::new()),
            },
            _ => {
                return Err(
                    self.status(&format!("listing referrers of {digest}"), response.status())
                );
            }
        };
        let index: serde_json::Value = serde_json::from_slice(&index)
            .map_err(|e| self.failed(&format!("the referrers of {digest}"), e))?;
        Ok(index["manifests"].as_array().cloned().unwrap_or_default())
    }

    /// Adds `referrer` to the referrers tag schema's index of `subject`, unless it is listed.
    fn tag_referrer(&self, subject: &str, referrer: &serde_json::Value) -> Result<(), OciError> {
        let tag = referrers_tag(subject);
        let mut manifests = match self.find_manifest(&tag, None)? {
            Some(bytes) => {
                let index: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| self.failed(&format!("the referrers index {tag}"), e))?;
                if index["mediaType"] != super::INDEX_MEDIA_TYPE {
                    return Err(self.failed(
                        &format!("the referrers tag {tag}"),
                        "names something other than an image index; not replacing it",
                    ));
                }
                index["manifests"].as_array().cloned().unwrap_or_default()
            }
            None => Vec::new(),
        };
        if manifests.iter().any(|m| m["digest"] == referrer["digest"]) {
            return Ok(());
        }
        manifests.push(referrer.clone());
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": super::INDEX_MEDIA_TYPE,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec(&index).expect("a JSON value serialises");
        self.put_manifest(&tag, super::INDEX_MEDIA_TYPE, &bytes)?;
        Ok(())
    }
}

/// The referrers tag schema's tag for `digest`: `<algorithm>-<hex>`.
fn referrers_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
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

/// `Basic <base64>` from the environment or the Docker config file, for `registry`; none
/// where neither has any. A config file that is there but cannot be read or parsed is an
/// error naming it, not a silent anonymous request the registry then refuses.
fn credentials(registry: &str) -> Result<Option<String>, OciError> {
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
        return Ok(Some(basic(&format!("{user}:{password}"))));
    }
    let Some(dir) = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker")))
    else {
        return Ok(None);
    };
    let path = dir.join("config.json");
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(OciError::DockerConfig {
                path,
                message: format!("cannot be read: {error}"),
            });
        }
    };
    let config: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| OciError::DockerConfig {
            path: path.clone(),
            message: e.to_string(),
        })?;
    Ok(config["auths"][registry]["auth"]
        .as_str()
        .map(|auth| format!("Basic {auth}")))
}

/// Pushes the manifest `digest` of the layout and the blobs it references; returns whether
/// the registry indexed its `subject`.
fn push_manifest(
    registry: &Registry,
    blobs: &Blobs,
    layout: &Path,
    digest: &str,
    media_type: &str,
) -> Result<(serde_json::Value, bool), OciError> {
    let bytes = blobs.get(digest, layout)?;
    let parsed: serde_json::Value = parse_json(&bytes, layout)?;
    for blob in referenced_blobs(&parsed) {
        registry.put_blob(blob, &blobs.get(blob, layout)?)?;
    }
    let indexed = registry.put_manifest(digest, media_type, &bytes)?;
    Ok((parsed, indexed))
}

/// Where an upload the registry at `origin` (`scheme://host[:port]`) started goes on: its
/// `Location`, a path on the registry or a URL on the same origin. The upload carries the
/// registry's credentials, so a URL elsewhere is `None`.
fn upload_url(origin: &str, location: &str) -> Option<String> {
    if location.starts_with('/') && !location.starts_with("//") {
        return Some(format!("{origin}{location}"));
    }
    // scheme, host and port, the port spelled out or the scheme's default
    let parts = |url: &str| {
        let uri: ureq::http::Uri = url.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let default = if scheme == "https" { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default);
        Some((scheme, uri.host()?.to_ascii_lowercase(), port))
    };
    (parts(location)? == parts(origin)?).then(|| location.to_owned())
}

/// The descriptors of a manifest's config and layers.
fn referenced_descriptors(
    manifest: &serde_json::Value,
) -> impl Iterator<Item = &serde_json::Value> {
    std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().into_iter().flatten())
}

/// The digests of a manifest's config and layers.
fn referenced_blobs(manifest: &serde_json::Value) -> impl Iterator<Item = &str> {
    referenced_descriptors(manifest).map(|blob| blob["digest"].as_str().unwrap_or_default())
}

/// Pushes the layout at `layout` (its index tagged `tag`) to `reference`, and the manifests
/// that refer to its images (an SBOM): to a registry without the referrers API, each is also
/// added to its subject's referrers tag schema index.
pub fn push(
    layout: &Path,
    tag: &str,
    reference: &Reference,
    insecure: bool,
) -> Result<String, OciError> {
    let registry = Registry::new(reference, insecure, Access::Push)?;
    let blobs = Blobs::read_layout(layout)?;
    let index_digest = blobs.tagged(tag, layout)?;
    let index_bytes = blobs.get(&index_digest, layout)?;
    let index: serde_json::Value = parse_json(&index_bytes, layout)?;
    for manifest in index["manifests"].as_array().into_iter().flatten() {
        push_manifest(
            &registry,
            &blobs,
            layout,
            manifest["digest"].as_str().unwrap_or_default(),
            manifest["mediaType"]
                .as_str()
                .unwrap_or(super::MANIFEST_MEDIA_TYPE),
        )?;
    }
    registry.put_manifest(&reference.reference, super::INDEX_MEDIA_TYPE, &index_bytes)?;
    for referrer in Blobs::referrers(layout)? {
        let digest = referrer["digest"].as_str().unwrap_or_default();
        let (manifest, indexed) = push_manifest(
            &registry,
            &blobs,
            layout,
            digest,
            super::MANIFEST_MEDIA_TYPE,
        )?;
        let Some(subject) = manifest["subject"]["digest"].as_str() else {
            continue;
        };
        if !indexed {
            registry.tag_referrer(subject, &referrer_descriptor(digest, &manifest, &blobs))?;
        }
    }
    Ok(index_digest)
}

/// A referrers list's descriptor of the manifest `digest`, as the distribution spec wants it:
/// its `artifactType` (else its config's media type) and all its annotations.
fn referrer_descriptor(
    digest: &str,
    manifest: &serde_json::Value,
    blobs: &Blobs,
) -> serde_json::Value {
    let artifact_type = manifest["artifactType"]
        .as_str()
        .or_else(|| manifest["config"]["mediaType"].as_str())
        .unwrap_or_default();
    let mut descriptor = serde_json::json!({
        "mediaType": super::MANIFEST_MEDIA_TYPE,
        "digest": digest,
        "size": blobs.size(digest),
        "artifactType": artifact_type,
    });
    if manifest["annotations"].is_object() {
        descriptor["annotations"] = manifest["annotations"].clone();
    }
    descriptor
}

/// Pulls `reference` into a layout at `out`, every blob checked against its digest, the
/// index tagged `tag`, with the manifests that refer to its images; returns the index's
/// digest.
pub fn pull(
    reference: &Reference,
    out: &Path,
    tag: &str,
    insecure: bool,
) -> Result<String, OciError> {
    let registry = Registry::new(reference, insecure, Access::Pull)?;
    let expected = reference
        .reference
        .starts_with("sha256:")
        .then_some(reference.reference.as_str());
    let top = registry.get_manifest(&reference.reference, expected)?;
    let top_digest = format!("sha256:{}", hex_sha256(&top));
    let parsed: serde_json::Value = parse_json(&top, out)?;
    let mut blobs = Blobs::default();
    // A uniklink image is an index of one manifest per architecture; a reference to one of
    // those manifests (its digest) would make a layout whose index.json calls it an index.
    // The media type is optional in an index; its `manifests` and no `config` make one.
    let is_index = match parsed["mediaType"].as_str() {
        Some(media_type) => media_type == super::INDEX_MEDIA_TYPE,
        None => parsed["manifests"].is_array() && parsed["config"].is_null(),
    };
    if !is_index {
        return Err(registry.failed(
            "pulling",
            format!(
                "it names a {}, not an image index: pull a tag or the index's digest",
                parsed["mediaType"]
                    .as_str()
                    .unwrap_or("document without a media type")
            ),
        ));
    }
    let listed = parsed["manifests"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if listed.len() > MAX_MANIFESTS {
        return Err(registry.failed(
            "the index",
            format!("{} manifests, more than {MAX_MANIFESTS}", listed.len()),
        ));
    }
    let manifests: Vec<(String, Vec<u8>)> = listed
        .iter()
        .map(|m| {
            let digest = registry.digest_of(m, "a manifest of the index")?;
            let bytes = registry.get_manifest(&digest, Some(&digest))?;
            Ok((digest, bytes))
        })
        .collect::<Result<_, OciError>>()?;
    let mut referrers = Vec::new();
    let mut pulled = Vec::new();
    // Everything the pull holds, counted as it arrives: manifests, referrers, then blobs.
    let mut total: u64 = manifests.iter().map(|(_, bytes)| bytes.len() as u64).sum();
    for (digest, bytes) in manifests {
        let listed = registry.referrers(&digest)?;
        if listed.len() > MAX_REFERRERS {
            return Err(registry.failed(
                &format!("the referrers of {digest}"),
                format!("{}, more than {MAX_REFERRERS}", listed.len()),
            ));
        }
        for descriptor in listed {
            let referrer = registry.digest_of(&descriptor, "a referrer")?;
            let bytes = registry.get_manifest(&referrer, Some(&referrer))?;
            total += bytes.len() as u64;
            if total > MAX_BLOB {
                return Err(registry.failed(
                    &format!("referrer {referrer}"),
                    format!("it takes the pull past {MAX_BLOB} bytes"),
                ));
            }
            let manifest: serde_json::Value = parse_json(&bytes, out)?;
            // A referrers list is the registry's word; the manifest itself must name the
            // image as its subject.
            if manifest["subject"]["digest"].as_str() != Some(digest.as_str()) {
                return Err(registry.failed(
                    &format!("referrer {referrer}"),
                    format!("it does not refer to {digest}"),
                ));
            }
            let mut listed = serde_json::json!({
                "mediaType": super::MANIFEST_MEDIA_TYPE,
                "digest": referrer,
                "size": bytes.len(),
            });
            if let Some(artifact_type) = manifest["artifactType"].as_str() {
                listed["artifactType"] = artifact_type.into();
            }
            referrers.push(
                serde_json::from_value(listed)
                    .map_err(|e| registry.failed(&format!("referrer {referrer}"), e))?,
            );
            pulled.push((referrer, bytes));
        }
        pulled.push((digest, bytes));
    }
    // Each blob once, however many manifests name it, its stated size checked before it is
    // fetched and against what arrives, and all of them together within MAX_BLOB.
    for (digest, bytes) in &pulled {
        let manifest: serde_json::Value = parse_json(bytes, out)?;
        let what = format!("a blob of {digest}");
        for descriptor in referenced_descriptors(&manifest) {
            let blob = registry.digest_of(descriptor, &what)?;
            if blobs.size(&blob) > 0 {
                continue;
            }
            let size = descriptor["size"]
                .as_u64()
                .filter(|size| total.saturating_add(*size) <= MAX_BLOB)
                .ok_or_else(|| {
                    registry.failed(
                        &format!("blob {blob}"),
                        format!(
                            "its size {} is no size, or takes the pull past {MAX_BLOB} bytes",
                            descriptor["size"]
                        ),
                    )
                })?;
            let fetched = registry.get_blob(&blob, size)?;
            if fetched.len() as u64 != size {
                return Err(registry.failed(
                    &format!("blob {blob}"),
                    format!("{} bytes where its manifest says {size}", fetched.len()),
                ));
            }
            total += size;
            blobs.insert(&blob, fetched);
        }
    }
    for (digest, bytes) in pulled {
        blobs.insert(&digest, bytes);
    }
    blobs.insert(&top_digest, top);
    let top_index = super::tag_index(&top_digest, tag, blobs.size(&top_digest), referrers)?;
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
    fn uploads_stay_on_the_registry() {
        let origin = "http://127.0.0.1:5000";
        let on = |location| upload_url(origin, location);
        assert_eq!(
            on("/v2/app/blobs/uploads/1?_state=x").as_deref(),
            Some("http://127.0.0.1:5000/v2/app/blobs/uploads/1?_state=x")
        );
        assert_eq!(
            on("http://127.0.0.1:5000/v2/app/blobs/uploads/1").as_deref(),
            Some("http://127.0.0.1:5000/v2/app/blobs/uploads/1")
        );
        assert_eq!(
            upload_url(
                "https://registry.example",
                "HTTPS://Registry.example:443/v2/x"
            )
            .as_deref(),
            Some("HTTPS://Registry.example:443/v2/x")
        );
        for elsewhere in [
            "http://evil.example/v2/app/blobs/uploads/1",
            "http://127.0.0.1:50000/v2/app/blobs/uploads/1",
            "http://127.0.0.1:5000.evil.example/v2/x",
            "https://127.0.0.1:5000/v2/x",
            "//evil.example/v2/x",
            "v2/app/blobs/uploads/1",
        ] {
            assert_eq!(on(elsewhere), None, "{elsewhere}");
        }
    }

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

    #[test]
    fn bearer_challenges_parse_as_registries_send_them() {
        let docker_hub = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            docker_hub,
            Challenge {
                realm: "https://auth.docker.io/token".to_owned(),
                service: Some("registry.docker.io".to_owned()),
                scope: Some("repository:samalba/my-app:pull,push".to_owned()),
            }
        );
        // Distribution adds `error`; spaces after commas, a lowercase scheme, unquoted and
        // escaped values all occur.
        let c = Challenge::parse(
            r#"bearer realm="http://127.0.0.1:1/t?a=b", service=reg,scope="repository:a/b:pull repository:c:pull",error="insufficient_scope""#,
        )
        .unwrap();
        assert_eq!(c.realm, "http://127.0.0.1:1/t?a=b");
        assert_eq!(c.service.as_deref(), Some("reg"));
        assert_eq!(
            c.scope.as_deref(),
            Some("repository:a/b:pull repository:c:pull")
        );
        let escaped = Challenge::parse(r#"Bearer realm="https://x/\"q\"""#).unwrap();
        assert_eq!(escaped.realm, r#"https://x/"q""#);
        assert_eq!(escaped.service, None);
        for not_bearer in [
            r#"Basic realm="Registry Realm""#,
            "Bearer",
            r#"Bearer service="x""#,
            r#"Bearer realm="""#,
            "",
        ] {
            assert_eq!(Challenge::parse(not_bearer), None, "{not_bearer}");
        }
    }

    #[test]
    fn token_queries_are_percent_encoded() {
        assert_eq!(
            query_encode("repository:apps/hello:pull,push"),
            "repository%3Aapps%2Fhello%3Apull%2Cpush"
        );
        assert_eq!(query_encode("a-b_c.d~e f"), "a-b_c.d~e%20f");
        assert_eq!(
            referrers_tag(&format!("sha256:{}", "ab".repeat(32))),
            format!("sha256-{}", "ab".repeat(32))
        );
    }
}
