//! The uniklink manifest: model, profiles, validation, JSON Schema.
