//! Project chores that are not part of the tool: `cargo xtask bench ...`.

fn main() {
    eprintln!("usage: cargo xtask bench <link|boot>");
    std::process::exit(2);
}
