//! `#mnt`: the 9P client that makes a 9P server's files part of a namespace (`mount`).
//! Not written yet: `mount` fails with "not implemented" until it is.

use crate::error::KResult;
use crate::ns::chan::Chan;
use alloc::sync::Arc;

/// Attaches to the 9P server on `fd`'s channel with attach name `aname`.
pub fn attach(_fd: Arc<Chan>, _aname: &str) -> KResult<Chan> {
    Err(abi::errors::ENOTIMPL.into())
}
