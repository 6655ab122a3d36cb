//! "Did you mean" for keys, enum values and component names.

/// Below this Jaro-Winkler similarity a suggestion is more confusing than helpful.
const MIN_SIMILARITY: f64 = 0.75;

/// The candidate most similar to `input`, if any is similar enough. Case and the `-`/`_`
/// distinction are ignored, since both are the usual slips in hand-written YAML.
pub(crate) fn closest<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let normalize = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let wanted = normalize(input);
    candidates
        .into_iter()
        .map(|candidate| {
            (
                strsim::jaro_winkler(&wanted, &normalize(candidate)),
                candidate,
            )
        })
        .filter(|(score, _)| *score >= MIN_SIMILARITY)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn finds_typos_and_ignores_noise() {
        let keys = ["name", "app", "arch", "platform", "profile", "memory"];
        assert_eq!(closest("platfrom", keys), Some("platform"));
        assert_eq!(closest("memroy", keys), Some("memory"));
        assert_eq!(closest("Profile", keys), Some("profile"));
        assert_eq!(closest("zzzzzz", keys), None);
        assert_eq!(
            closest("qemu_microvm", ["qemu-microvm", "qemu-q35"]),
            Some("qemu-microvm")
        );
    }
}
