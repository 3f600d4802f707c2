//! The data files: the hashed-secret file core (`hashfile`) and the two files on it, API keys
//! (`keys`) and invites (`invites`).

pub mod hashfile;
pub mod invites;
pub mod keys;
