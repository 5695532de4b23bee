//! `tunegate.lock` types. (Filled in with the lock work.)
