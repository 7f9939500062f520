//! ttrpc statuses and their mapping to and from vAccel errors (spec §8.8).
//!
//! Every failure the agent reports carries a `vaccel.Error` in `details[0]`
//! (`type.googleapis.com/vaccel.ProtoError`) with the vAccel code, so upstream clients get
//! the real code (they map anything without it to `EIO`).

use bytes::Bytes;
use prost::Message;
use vaccel_core::{Error, ErrorCode};

use crate::proto::grpc;
use crate::proto::vaccel as pv;

/// `type_url` of the vAccel error detail.
pub const PROTO_ERROR_TYPE_URL: &str = "type.googleapis.com/vaccel.ProtoError";

/// ttrpc (gRPC) status codes.
#[allow(missing_docs)]
pub mod code {
    pub const OK: i32 = 0;
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const NOT_FOUND: i32 = 5;
    pub const ALREADY_EXISTS: i32 = 6;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const ABORTED: i32 = 10;
    pub const OUT_OF_RANGE: i32 = 11;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
    pub const DATA_LOSS: i32 = 15;
    pub const UNAUTHENTICATED: i32 = 16;
}

fn detail(err: &pv::Error) -> grpc::Any {
    grpc::Any {
        type_url: PROTO_ERROR_TYPE_URL.to_owned(),
        value: Bytes::from(err.encode_to_vec()),
    }
}

/// Upstream's shape for a vAccel failure: `INTERNAL`, `"FFI error: <code>"`, and the code in
/// the detail. With `message`, the detail is `FFI_WITH_STATUS` and carries the text too (upstream
/// clients still read the code; TF/TFLite clients also show the message).
pub fn ffi_status(code: ErrorCode, message: Option<&str>) -> grpc::Status {
    let err = pv::Error {
        r#type: if message.is_some() {
            pv::ErrorType::FfiWithStatus as i32
        } else {
            pv::ErrorType::Ffi as i32
        },
        ffi_error: Some(code.as_i32() as u32),
        status: message.map(|m| pv::Status {
            code: code.as_i32() as u32,
            message: m.to_owned(),
        }),
    };
    grpc::Status {
        code: code::INTERNAL,
        message: format!("FFI error: {}", code.as_i32()),
        details: vec![detail(&err)],
    }
}

/// The status for a runtime error: its code in the detail, its text as message detail.
pub fn error_status(e: &Error) -> grpc::Status {
    ffi_status(e.code(), Some(&e.to_string()))
}

/// A status with a gRPC code and message plus a vAccel code in the detail (used for the
/// agent's own errors: unknown ids, malformed requests). Upstream sends these without detail;
/// adding it is wire-compatible and gives upstream clients the real code instead of `EIO`.
pub fn status(grpc_code: i32, message: impl Into<String>, vaccel_code: ErrorCode) -> grpc::Status {
    let message = message.into();
    let err = pv::Error {
        r#type: pv::ErrorType::FfiWithStatus as i32,
        ffi_error: Some(vaccel_code.as_i32() as u32),
        status: Some(pv::Status {
            code: vaccel_code.as_i32() as u32,
            message: message.clone(),
        }),
    };
    grpc::Status {
        code: grpc_code,
        message,
        details: vec![detail(&err)],
    }
}

/// `NOT_FOUND` for an unknown id (`Unknown session 5`).
pub fn not_found(message: impl Into<String>) -> grpc::Status {
    status(code::NOT_FOUND, message, ErrorCode::ENOENT)
}

/// `INVALID_ARGUMENT` for a malformed request.
pub fn invalid_argument(message: impl Into<String>) -> grpc::Status {
    status(code::INVALID_ARGUMENT, message, ErrorCode::EINVAL)
}

/// The vAccel error a failed status stands for, as an upstream client would map it, and
/// better where upstream loses information: a detail's code is kept; without a detail the
/// gRPC code is mapped (`NOT_FOUND` → `ENOENT`, `INVALID_ARGUMENT` → `EINVAL`,
/// `UNIMPLEMENTED` → `ENOTSUP`, anything else → `EIO`).
pub fn status_to_error(st: &grpc::Status) -> Error {
    let remote = |code: ErrorCode, message: String| Error::backend("remote", code, message);
    if let Some(any) = st.details.first()
        && any.type_url.ends_with("vaccel.ProtoError")
        && let Ok(err) = pv::Error::decode(any.value.clone())
    {
        let message = err
            .status
            .as_ref()
            .map(|s| s.message.clone())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| st.message.clone());
        let code = match pv::ErrorType::try_from(err.r#type) {
            Ok(pv::ErrorType::Ffi | pv::ErrorType::FfiWithStatus) => err
                .ffi_error
                .and_then(|c| i32::try_from(c).ok())
                .and_then(ErrorCode::from_i32)
                .unwrap_or(ErrorCode::EBACKEND),
            _ => ErrorCode::EBACKEND,
        };
        return remote(code, message);
    }
    let code = match st.code {
        code::NOT_FOUND => ErrorCode::ENOENT,
        code::INVALID_ARGUMENT => ErrorCode::EINVAL,
        code::UNIMPLEMENTED => ErrorCode::ENOTSUP,
        _ => ErrorCode::EIO,
    };
    remote(code, st.message.clone())
}

/// The detail's status (code and message), if any: what TF/TFLite ops report as their status.
pub fn detail_status(st: &grpc::Status) -> Option<(u32, String)> {
    let any = st.details.first()?;
    let err = pv::Error::decode(any.value.clone()).ok()?;
    err.status.map(|s| (s.code, s.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_survives_the_round_trip() {
        for c in ErrorCode::ALL {
            let e = Error::backend("plugin", c, "boom");
            let st = error_status(&e);
            assert_eq!(st.code, code::INTERNAL);
            assert_eq!(st.message, format!("FFI error: {}", c.as_i32()));
            let back = status_to_error(&st);
            assert_eq!(back.code(), c);
            assert!(back.to_string().contains("boom"), "{back}");
        }
    }

    #[test]
    fn statuses_without_details_map_like_upstream_or_better() {
        let plain = |c: i32| grpc::Status {
            code: c,
            message: "x".into(),
            details: vec![],
        };
        assert_eq!(
            status_to_error(&plain(code::NOT_FOUND)).code(),
            ErrorCode::ENOENT
        );
        assert_eq!(
            status_to_error(&plain(code::INVALID_ARGUMENT)).code(),
            ErrorCode::EINVAL
        );
        assert_eq!(
            status_to_error(&plain(code::UNIMPLEMENTED)).code(),
            ErrorCode::ENOTSUP
        );
        assert_eq!(
            status_to_error(&plain(code::INTERNAL)).code(),
            ErrorCode::EIO
        );
        // Upstream's "invalid id" shape: a detail of another type, no ffi code → EBACKEND.
        let other = pv::Error {
            r#type: pv::ErrorType::InvalidArgument as i32,
            ffi_error: None,
            status: None,
        };
        let st = grpc::Status {
            code: code::INTERNAL,
            message: "Invalid ID".into(),
            details: vec![detail(&other)],
        };
        assert_eq!(status_to_error(&st).code(), ErrorCode::EBACKEND);
        // A garbage detail falls back to the gRPC code.
        let junk = grpc::Status {
            code: code::NOT_FOUND,
            message: "x".into(),
            details: vec![grpc::Any {
                type_url: PROTO_ERROR_TYPE_URL.into(),
                value: Bytes::from_static(&[0xff, 0xff]),
            }],
        };
        assert_eq!(status_to_error(&junk).code(), ErrorCode::ENOENT);
    }

    #[test]
    fn agent_errors_carry_codes() {
        assert_eq!(
            status_to_error(&not_found("Unknown session 9")).code(),
            ErrorCode::ENOENT
        );
        assert_eq!(not_found("Unknown session 9").message, "Unknown session 9");
        assert_eq!(
            status_to_error(&invalid_argument("bad")).code(),
            ErrorCode::EINVAL
        );
        assert_eq!(
            detail_status(&error_status(&Error::invalid("x")))
                .unwrap()
                .0,
            22
        );
    }
}
