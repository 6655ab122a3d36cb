//! Loading objects and archives, resolving symbols, the section graph and what it keeps.
