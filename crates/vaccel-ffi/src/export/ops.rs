//! The op functions the descriptor lists: `vaccel_ffi`'s C op functions (one per op, from the
//! op table) over the sessions and resources attached to the host's, whose runtime holds this
//! library's plugin. So an op reaches the plugin through the same checks as in any runtime.

use std::ffi::c_void;
use std::sync::Arc;

use vaccel_abi::{vaccel_resource, vaccel_session};
use vaccel_core::{OpType, Resource, Result, Session};

use super::attached;

/// Sessions and resources of the host's views, as this library attached them.
#[derive(Debug)]
pub(crate) struct Attached;

impl crate::ops::Resolve for Attached {
    unsafe fn session(sess: *mut vaccel_session) -> Result<Arc<Session>> {
        // SAFETY: forwarded caller guarantee.
        unsafe { attached::session(sess) }
    }

    unsafe fn resource(
        res: *const vaccel_resource,
        sess: *mut vaccel_session,
    ) -> Result<Arc<Resource>> {
        // SAFETY: forwarded caller guarantee; the view is only written by the hooks.
        unsafe { attached::resource(res.cast_mut(), sess) }.map(|(_, r)| r)
    }
}

crate::c_op_functions!(mod table, crate::export::ops::Attached,);

/// The function the descriptor registers for `op`.
pub(crate) fn function(op: OpType) -> *mut c_void {
    table::op_function(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_a_function() {
        for op in OpType::ALL {
            assert!(!function(*op).is_null(), "{op}");
        }
    }
}
