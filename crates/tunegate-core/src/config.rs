//! `tunegate.toml`. (Filled in with the CLI work.)
