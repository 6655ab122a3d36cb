//! Layout, relocation per architecture, glue generation and image writers.
