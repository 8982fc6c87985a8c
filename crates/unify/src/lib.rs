//! Unification of guest trees.
//!
//! This crate will own the walk, hash, plan and link steps of `vhashify`-style
//! unification (content store plus hard links owned outside every guest's id
//! range) and reflink deduplication. It depends on `vs-storage` and `vs-sys`.
//! Nothing is implemented yet.
