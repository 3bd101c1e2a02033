//! The gateway benchmark (see docs/PERFORMANCE.md).

fn main() {}
