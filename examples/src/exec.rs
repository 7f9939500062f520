//! The programs that call a function of a shared library through the runtime: `exec`,
//! `exec_generic`, `exec_with_resource`, `exec_serialized` (all `<lib_file> [iterations]`,
//! calling `libmytestlib.so`'s functions), and `mbench` (`<time_ms> <lib_file> [iterations]`).
//!
//! With the exec plugin the library really runs (`mytestfunc` doubles 10 into 20, and prints
//! its own lines); with the noop plugin the write argument receives a copy of the read one.

use std::ffi::OsString;

use vaccel::{Arg, ArgType, Error, OpType, PluginType, Resource, ResourceType};

use crate::{Cli, Failure};

/// The function of `libmytestlib.so` that doubles an `int32`.
pub const MYTESTFUNC: &str = "mytestfunc";
/// The function of `libmytestlib.so` that reverses a serialized `mydata`.
pub const MYTESTFUNC_NONSER: &str = "mytestfunc_nonser";
/// The input every exec program sends to `mytestfunc`.
pub const INPUT: i32 = 10;
/// The custom argument type id of `mydata` in `exec_serialized`.
pub const MYDATA_TYPE_ID: u32 = 100;
/// The `mydata` elements `exec_serialized` sends.
pub const MYDATA: [u32; 6] = [0, 2, 4, 6, 8, 10];

/// Usage line of the `<lib_file> [iterations]` programs.
const LIB_USAGE: &str = "<lib_file> [iterations]";

/// `exec <lib_file> [iterations]`: `vaccel_exec` of `mytestfunc` with `INT32 10`, printing
/// `output: <out>` per iteration.
pub fn exec(raw: Vec<OsString>) -> Result<(), Failure> {
    let cli = Cli::parse("exec", LIB_USAGE, raw, 1, 1)?;
    let lib = cli.required(0)?;
    let iterations = cli.iterations(1)?;
    crate::with_runtime(cli.program(), |rt, region| {
        let sess = crate::new_session(rt, PluginType::DEBUG.bits())?;
        for _ in 0..iterations {
            let mut out = 0i32;
            {
                let _timed = region.enter();
                sess.exec(
                    lib,
                    MYTESTFUNC,
                    &[Arg::scalar(INPUT)],
                    &mut [Arg::out_scalar(&mut out)],
                )
                .map_err(Failure::Op)?;
            }
            say!("output: {out}");
        }
        Ok(())
    })
}

/// `exec_generic <lib_file> [iterations]`: the same call through the generic operation, read
/// `[UINT8 1, STRING lib, STRING "mytestfunc", INT32 10]`, write `[INT32 out]`.
pub fn exec_generic(raw: Vec<OsString>) -> Result<(), Failure> {
    let cli = Cli::parse("exec_generic", LIB_USAGE, raw, 1, 1)?;
    let lib = cli.required(0)?;
    let iterations = cli.iterations(1)?;
    crate::with_runtime(cli.program(), |rt, region| {
        let sess = crate::new_session(rt, PluginType::DEBUG.bits())?;
        let read = [
            Arg::scalar(OpType::Exec.value()),
            Arg::string(lib).map_err(|e| Failure::Op(Error::arg(1, e)))?,
            Arg::string(MYTESTFUNC).map_err(|e| Failure::Op(Error::arg(2, e)))?,
            Arg::scalar(INPUT),
        ];
        for _ in 0..iterations {
            let mut out = 0i32;
            {
                let _timed = region.enter();
                sess.genop(&read, &mut [Arg::out_scalar(&mut out)])
                    .map_err(Failure::Op)?;
            }
            say!("output: {out}");
        }
        Ok(())
    })
}

/// `exec_with_resource <lib_file> [iterations]`: two `LIB` resources of the same library, one
/// from its path and one from its bytes (persisted as `lib.so`), both registered; each
/// iteration calls `mytestfunc` of both and prints `output1: <out>` and `output2: <out>`.
pub fn exec_with_resource(raw: Vec<OsString>) -> Result<(), Failure> {
    let cli = Cli::parse("exec_with_resource", LIB_USAGE, raw, 1, 1)?;
    let lib = cli.required(0)?;
    let iterations = cli.iterations(1)?;
    crate::with_runtime(cli.program(), |rt, region| {
        let sess = crate::new_session(rt, 0)?;
        let from_path = Resource::new(rt, lib, ResourceType::Lib)
            .map_err(|e| Failure::step("Could not create library resource", e))?;
        let bytes = crate::read_file(lib, "library file")?;
        let from_buf = Resource::from_buf(rt, bytes, ResourceType::Lib, Some("lib.so"), false)
            .map_err(|e| Failure::step("Could not create library resource from buffer", e))?;
        for res in [&from_path, &from_buf] {
            sess.register(res)
                .map_err(|e| Failure::step("Could not register library resource", e))?;
        }
        for _ in 0..iterations {
            let mut outputs = [0i32; 2];
            for (res, out) in [&from_path, &from_buf].into_iter().zip(&mut outputs) {
                let _timed = region.enter();
                sess.exec_with_resource(
                    res,
                    MYTESTFUNC,
                    &[Arg::scalar(INPUT)],
                    &mut [Arg::out_scalar(out)],
                )
                .map_err(Failure::Op)?;
            }
            let [output1, output2] = outputs;
            say!("output1: {output1}");
            say!("output2: {output2}");
        }
        Ok(())
    })
}

/// `exec_serialized <lib_file> [iterations]`: `mytestfunc_nonser` of a `LIB` resource with a
/// serialized `mydata` (`CUSTOM`, type id 100) in and out, printing `Input: 0 2 4 6 8 10 `
/// before and `Output: ...` after each call.
pub fn exec_serialized(raw: Vec<OsString>) -> Result<(), Failure> {
    let cli = Cli::parse("exec_serialized", LIB_USAGE, raw, 1, 1)?;
    let lib = cli.required(0)?;
    let iterations = cli.iterations(1)?;
    crate::with_runtime(cli.program(), |rt, region| {
        let sess = crate::new_session(rt, PluginType::DEBUG.bits())?;
        let res = Resource::new(rt, lib, ResourceType::Lib)
            .map_err(|e| Failure::step("Could not create library resource", e))?;
        sess.register(&res)
            .map_err(|e| Failure::step("Could not register library resource", e))?;
        let input = mytestlib::serialize_mydata(&MYDATA);
        for _ in 0..iterations {
            say!("Input: {}", format_mydata(&MYDATA));
            let mut write = [Arg::zeroed(ArgType::Custom, input.len())
                .map_err(|e| Failure::Op(Error::arg(0, e)))?
                .with_custom_id(MYDATA_TYPE_ID)];
            {
                let _timed = region.enter();
                sess.exec_with_resource(
                    &res,
                    MYTESTFUNC_NONSER,
                    &[Arg::custom(MYDATA_TYPE_ID, &input)],
                    &mut write,
                )
                .map_err(Failure::Op)?;
            }
            let output = write
                .first()
                .and_then(|arg| mytestlib::deserialize_mydata(arg.bytes()))
                .ok_or_else(|| {
                    Failure::Op(Error::invalid(
                        "the function did not return a valid serialized mydata",
                    ))
                })?;
            say!("Output: {}", format_mydata(&output));
        }
        Ok(())
    })
}

/// Upstream's `mydata` print format: every element followed by a space.
pub fn format_mydata(values: &[u32]) -> String {
    values.iter().map(|v| format!("{v} ")).collect()
}

/// `mbench <time_ms> <lib_file> [iterations]`: `vaccel_exec` of library and symbol `mbench`
/// with read `[STRING time_ms, BUFFER <file bytes>]` and no write arguments; the mbench
/// plugin busy-waits `time_ms` milliseconds per call.
pub fn mbench(raw: Vec<OsString>) -> Result<(), Failure> {
    let cli = Cli::parse("mbench", "<time_ms> <lib_file> [iterations]", raw, 2, 1)?;
    let time_ms = cli.required(0)?;
    let file = cli.required(1)?;
    let iterations = cli.iterations(2)?;
    crate::with_runtime(cli.program(), |rt, region| {
        let sess = crate::new_session(rt, 0)?;
        let bytes = crate::read_file(file, "file")?;
        let read = [
            Arg::string(time_ms).map_err(|e| Failure::Op(Error::arg(0, e)))?,
            Arg::buffer(&bytes).map_err(|e| Failure::Op(Error::arg(1, e)))?,
        ];
        for _ in 0..iterations {
            let _timed = region.enter();
            sess.exec("mbench", "mbench", &read, &mut [])
                .map_err(Failure::Op)?;
        }
        Ok(())
    })
}
