//! The `rpc` transport plugin: forwards vAccel sessions, resources and operations to a
//! `vaccel-rpc-agent`, which runs them on the machine that has the accelerator.
//!
//! Selected with `VACCEL_PLUGINS=rpc` (or `libvaccel-rpc.so`); the agent's address comes from
//! `VACCEL_RPC_ADDRESS` (deprecated alias `VACCEL_RPC_ADDR`), default `tcp://127.0.0.1:65500`.
//! Loading never touches the network: the connection is made when the first session is
//! created, so a missing agent fails that session with a message naming the address.
//!
//! ```no_run
//! # fn main() -> vaccel_core::Result<()> {
//! use std::sync::Arc;
//! use vaccel_core::{Runtime, Session};
//! use vaccel_plugin_rpc::RpcPlugin;
//!
//! let addr = "unix:///run/vaccel/vaccel.sock".parse().expect("an address");
//! let rt = Runtime::builder()
//!     .plugin(Arc::new(RpcPlugin::with_address(addr)))
//!     .build()?;
//! let sess = Session::new(&rt, 0)?; // connects, then CreateSession on the agent
//! let mut imgname = [0u8; 256];
//! sess.image_detect(b"jpeg bytes", &mut imgname)?;
//! # Ok(()) }
//! ```
//!
//! # Mapping
//!
//! - Sessions: `CreateSession` / `UpdateSession` / `DestroySession`; the agent's id is the
//!   session's remote id.
//! - Resources: the first registration ships the data (the blobs' bytes; URLs as paths, which
//!   the agent downloads; a directory tree with its structure when the agent has our
//!   extensions, flattened to file names for upstream agents). Registering it with another
//!   session on the same connection sends only its remote id. When the last session
//!   unregisters it, the agent destroys it, so a later registration ships it again.
//! - Operations: TensorFlow, TensorFlow Lite and Torch use their dedicated RPCs; every other
//!   op goes through `Genop` with the layouts of `vaccel_core::genop`.
//!
//! # Extensions
//!
//! What upstream's agent does not have is used only when the agent advertises it
//! (`GetCapabilities`, see `docs/wire.md`); otherwise the plugin sends exactly what upstream's
//! plugin sends:
//!
//! - noop and torch_sgemm go through `Genop` only to an agent whose `genop_ops` list them;
//!   otherwise they fail with `ENOTSUP`, as upstream's plugin (which does not offer them).
//! - Detection returns structured objects only from an agent with `detection_records` (a
//!   second write argument); otherwise it sends upstream's one and reports no objects.
//! - Directory resources keep their tree only with `directory_resources`; otherwise names are
//!   flattened to file names.
//! - Chunked calls and responses only with `chunked` (the client's business).
//! - Shared memory only on unix sockets to an agent with `shared_memory_max`: `Genop`s of
//!   256 KiB or more (large images, tensors) go through a memfd attached once per connection
//!   and reused, one copy of the payload instead of two (the client's business too, see
//!   `vaccel_rpc::client`). `VACCEL_RPC_SHM=0` turns it off.
//!
//! # Connections
//!
//! One connection per plugin instance, shared by all its sessions (the agent treats a TCP
//! connection as one client, so sessions and resources of a process stay together). If the
//! connection breaks, the sessions created on it fail with `EIO` (the agent has released
//! them); the next new session connects again.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod ops;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

use vaccel_core::config::{env_lookup, lookup_with_alias};
use vaccel_core::plugin::{Plugin, PluginInfo};
use vaccel_core::{
    BlobType, BundledPlugin, Error, ErrorCode, Id, OpSet, PathType, PluginType, Resource, Result,
    Session, VACCEL_VERSION,
};
use vaccel_rpc::DEFAULT_ADDRESS;
use vaccel_rpc::addr::Address;
use vaccel_rpc::client::Client;
use vaccel_rpc::proto::vaccel::resource as pr;

/// The variable holding the agent's address.
pub const ENV_RPC_ADDRESS: &str = "VACCEL_RPC_ADDRESS";
/// Its deprecated name.
pub const ENV_RPC_ADDRESS_ALIAS: &str = "VACCEL_RPC_ADDR";

/// `log::debug!` with upstream's `[rpc] ` prefix.
macro_rules! rpc_debug {
    ($($arg:tt)+) => {
        log::debug!("[rpc] {}", format_args!($($arg)+))
    };
}
pub(crate) use rpc_debug;

/// Where a resource was shipped: which connection, its id there, and how many sessions
/// on that connection hold it.
#[derive(Debug)]
struct Shipped {
    client: Weak<Client>,
    remote_id: Id,
    sessions: usize,
}

impl Shipped {
    fn on(&self, client: &Arc<Client>) -> bool {
        std::ptr::eq(self.client.as_ptr(), Arc::as_ptr(client))
    }
}

/// The `rpc` plugin: name `rpc`, type `REMOTE`, every operation.
pub struct RpcPlugin {
    info: PluginInfo,
    address: Address,
    /// The connection new sessions use (made on the first session, remade after a break).
    connection: Mutex<Option<Arc<Client>>>,
    /// The connection each live session was created on, by local session id.
    sessions: RwLock<HashMap<Id, Arc<Client>>>,
    /// Resources shipped to the agent, by local resource id.
    resources: Mutex<HashMap<Id, Shipped>>,
}

impl std::fmt::Debug for RpcPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcPlugin")
            .field("address", &self.address)
            .field("connection", &*lock(&self.connection))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The descriptor the `vaccel` facade registers: `VACCEL_PLUGINS=rpc` selects this plugin,
/// configured from the environment.
pub fn bundled() -> BundledPlugin {
    BundledPlugin {
        name: "rpc",
        create: |_| Ok(Arc::new(RpcPlugin::from_env()?)),
    }
}

impl RpcPlugin {
    /// A plugin for the agent at `address` (nothing is connected until a session needs it).
    pub fn with_address(address: Address) -> RpcPlugin {
        RpcPlugin {
            info: PluginInfo::new("rpc", VACCEL_VERSION, PluginType::REMOTE).remote(),
            address,
            connection: Mutex::new(None),
            sessions: RwLock::new(HashMap::new()),
            resources: Mutex::new(HashMap::new()),
        }
    }

    /// A plugin for the address in `VACCEL_RPC_ADDRESS` (or `VACCEL_RPC_ADDR`), default
    /// `tcp://127.0.0.1:65500`. A malformed address is an error here, at load.
    pub fn from_env() -> Result<RpcPlugin> {
        RpcPlugin::from_lookup(&env_lookup)
    }

    /// [`RpcPlugin::from_env`] with another source of variables.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<RpcPlugin> {
        let (key, value) = if let Some(v) = lookup(ENV_RPC_ADDRESS) {
            (ENV_RPC_ADDRESS, v)
        } else if let Some(v) =
            lookup_with_alias(lookup, ENV_RPC_ADDRESS, Some(ENV_RPC_ADDRESS_ALIAS))
        {
            (ENV_RPC_ADDRESS_ALIAS, v)
        } else {
            (ENV_RPC_ADDRESS, DEFAULT_ADDRESS.to_owned())
        };
        let address = value
            .trim()
            .parse()
            .map_err(|e: vaccel_rpc::addr::AddressError| Error::Config {
                key: key.to_owned(),
                value: value.clone(),
                reason: e.reason,
            })?;
        Ok(RpcPlugin::with_address(address))
    }

    /// The agent's address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The connection for a new session: the current one, or a new one if there is none yet
    /// or it broke.
    fn connection(&self) -> Result<Arc<Client>> {
        let mut slot = lock(&self.connection);
        if let Some(client) = slot.as_ref() {
            if !client.is_broken() {
                return Ok(Arc::clone(client));
            }
            log::warn!(
                "[rpc] The connection to the agent at {} was lost; reconnecting",
                self.address
            );
        }
        let client = Arc::new(Client::connect(&self.address)?);
        log::info!(
            "[rpc] Connected to the vAccel RPC agent at {}",
            self.address
        );
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }

    /// The connection `sess` was created on.
    fn client_for(&self, sess: &Session) -> Result<Arc<Client>> {
        self.sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&sess.id())
            .cloned()
            .ok_or_else(|| {
                Error::backend(
                    "rpc",
                    ErrorCode::EINVAL,
                    format!("session {} has no remote session", sess.id()),
                )
            })
    }

    /// The id of `res` on the agent behind `client`.
    fn remote_resource_id(&self, res: &Resource, client: &Arc<Client>) -> Id {
        lock(&self.resources)
            .get(&res.id())
            .filter(|s| s.on(client))
            .map_or_else(|| res.remote_id(), |s| s.remote_id)
    }

    /// The first registration of `res` on a connection: its data.
    fn shipment(
        &self,
        res: &Resource,
        client: &Client,
        session_id: Id,
    ) -> Result<(pr::RegisterRequest, bool)> {
        let mut req = pr::RegisterRequest {
            resource_type: res.kind().value() as i32,
            session_id,
            ..Default::default()
        };
        if res.path_type() == PathType::RemoteFile {
            // The agent downloads URLs itself.
            req.paths = res.paths().to_vec();
            rpc_debug!(
                "Registering resource {} by its {} URL(s)",
                res.id(),
                req.paths.len()
            );
            return Ok((req, false));
        }
        let directory = res.path_type() == PathType::LocalDir && client.directory_resources();
        let mut total = 0usize;
        for blob in res.blobs() {
            let data = blob.read()?;
            total += data.len();
            let name = if directory {
                blob.name().to_owned()
            } else {
                // Upstream agents (and plain resources) get file names only.
                blob.name()
                    .rsplit('/')
                    .next()
                    .unwrap_or(blob.name())
                    .to_owned()
            };
            // Files travel as MAPPED blobs (the agent keeps a file, as upstream's mmapped
            // files do); FILE would be refused by upstream agents.
            let kind = match blob.kind() {
                BlobType::Buffer => pr::BlobType::Buffer,
                BlobType::File | BlobType::Mapped => pr::BlobType::Mapped,
            };
            req.blobs.push(pr::Blob {
                r#type: kind as i32,
                name,
                size: u32::try_from(data.len()).unwrap_or(u32::MAX),
                data,
            });
        }
        if req.blobs.is_empty() {
            return Err(Error::invalid(format!(
                "resource {} has no data to send to the agent",
                res.id()
            )));
        }
        rpc_debug!(
            "Shipping resource {}: {} blob(s), {total} bytes{}",
            res.id(),
            req.blobs.len(),
            if directory { " (directory tree)" } else { "" }
        );
        Ok((req, directory))
    }
}

impl Plugin for RpcPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn ops(&self) -> OpSet {
        OpSet::ALL
    }

    fn fini(&self) -> Result<()> {
        if let Some(client) = lock(&self.connection).take() {
            client.close();
        }
        Ok(())
    }

    fn session_init(&self, sess: &Session, flags: u32) -> Result<Id> {
        rpc_debug!("Initializing new remote session");
        let client = self.connection()?;
        let remote_id = client.create_session(flags)?;
        rpc_debug!("Initialized remote session {remote_id}");
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sess.id(), client);
        Ok(remote_id)
    }

    fn session_update(&self, sess: &Session, flags: u32) -> Result<()> {
        self.client_for(sess)?
            .update_session(sess.remote_id(), flags)
    }

    fn session_release(&self, sess: &Session) -> Result<()> {
        let client = self
            .sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&sess.id());
        let remote_id = sess.remote_id();
        rpc_debug!("Releasing remote session {remote_id}");
        match client {
            Some(client) if remote_id > 0 => client.destroy_session(remote_id),
            _ => Ok(()),
        }
    }

    fn resource_register(&self, res: &Resource, sess: &Session) -> Result<Id> {
        let client = self.client_for(sess)?;
        let session_id = sess.remote_id();
        let known = lock(&self.resources)
            .get(&res.id())
            .filter(|s| s.on(&client) && s.sessions > 0)
            .map(|s| s.remote_id);
        let (req, directory) = match known {
            Some(remote_id) => (
                pr::RegisterRequest {
                    resource_type: res.kind().value() as i32,
                    resource_id: remote_id,
                    session_id,
                    ..Default::default()
                },
                false,
            ),
            None => self.shipment(res, &client, session_id)?,
        };
        let answered = client.register_resource(&req, directory)?;
        let remote_id = if answered > 0 {
            answered
        } else {
            known.unwrap_or(answered)
        };
        let mut shipped = lock(&self.resources);
        match shipped.get_mut(&res.id()) {
            Some(s) if s.on(&client) && known.is_some() => s.sessions += 1,
            _ => {
                shipped.insert(
                    res.id(),
                    Shipped {
                        client: Arc::downgrade(&client),
                        remote_id,
                        sessions: 1,
                    },
                );
            }
        }
        Ok(remote_id)
    }

    fn resource_unregister(&self, res: &Resource, sess: &Session) -> Result<()> {
        let client = self.client_for(sess)?;
        let remote_id = self.remote_resource_id(res, &client);
        let result = client.unregister_resource(remote_id, sess.remote_id());
        let mut shipped = lock(&self.resources);
        if let Some(s) = shipped.get_mut(&res.id()).filter(|s| s.on(&client)) {
            s.sessions = s.sessions.saturating_sub(1);
            if s.sessions == 0 {
                // The agent destroys a resource no session holds: ship it again next time.
                shipped.remove(&res.id());
            }
        }
        result
    }

    fn resource_sync(&self, res: &Resource, sess: &Session) -> Result<()> {
        let client = self.client_for(sess)?;
        let blobs = client.sync_resource(self.remote_resource_id(res, &client))?;
        let local = res.blobs().len();
        if blobs.len() != local {
            return Err(Error::backend(
                "rpc",
                ErrorCode::EBACKEND,
                format!(
                    "Unexpected blob count: the agent has {} blobs, resource {} has {local}",
                    blobs.len(),
                    res.id()
                ),
            ));
        }
        res.set_blob_data(blobs.into_iter().map(|b| b.data).collect())
    }

    fn noop(&self, sess: &Session) -> Result<()> {
        ops::noop(self, sess)
    }

    fn exec(
        &self,
        sess: &Session,
        library: &str,
        symbol: &str,
        read: &[vaccel_core::Arg<'_>],
        write: &mut [vaccel_core::Arg<'_>],
    ) -> Result<()> {
        ops::exec(self, sess, library, symbol, read, write)
    }

    fn exec_with_resource(
        &self,
        sess: &Session,
        res: &Resource,
        symbol: &str,
        read: &[vaccel_core::Arg<'_>],
        write: &mut [vaccel_core::Arg<'_>],
    ) -> Result<()> {
        ops::exec_with_resource(self, sess, res, symbol, read, write)
    }

    fn image_classify(
        &self,
        sess: &Session,
        image: &[u8],
        out_text: &mut [u8],
        out_imgname: &mut [u8],
    ) -> Result<()> {
        ops::image_classify(self, sess, image, out_text, out_imgname)
    }

    fn image_op(
        &self,
        sess: &Session,
        op: vaccel_core::OpType,
        image: &[u8],
        out_imgname: &mut [u8],
    ) -> Result<()> {
        ops::image_op(self, sess, op, image, out_imgname)
    }

    fn image_detect_objects(
        &self,
        sess: &Session,
        image: &[u8],
        out_imgname: &mut [u8],
    ) -> Result<Vec<vaccel_core::Detection>> {
        ops::image_detect_objects(self, sess, image, out_imgname)
    }

    fn sgemm(
        &self,
        sess: &Session,
        args: &vaccel_core::SgemmArgs<'_>,
        c: &mut [f32],
    ) -> Result<()> {
        ops::sgemm(self, sess, args, c)
    }

    fn fpga_arraycopy(&self, sess: &Session, a: &[i32], out: &mut [i32]) -> Result<()> {
        ops::fpga_arraycopy(self, sess, a, out)
    }

    fn fpga_mmult(&self, sess: &Session, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
        ops::fpga_two_in(self, sess, vaccel_core::OpType::FpgaMmult, a, b, c)
    }

    fn fpga_parallel(
        &self,
        sess: &Session,
        a: &[f32],
        b: &[f32],
        add_out: &mut [f32],
        mult_out: &mut [f32],
    ) -> Result<()> {
        ops::fpga_parallel(self, sess, a, b, add_out, mult_out)
    }

    fn fpga_vadd(&self, sess: &Session, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
        ops::fpga_two_in(self, sess, vaccel_core::OpType::FpgaVectoradd, a, b, c)
    }

    fn minmax(
        &self,
        sess: &Session,
        indata: &[f64],
        low_threshold: i32,
        high_threshold: i32,
        outdata: &mut [f64],
    ) -> Result<(f64, f64)> {
        ops::minmax(self, sess, indata, low_threshold, high_threshold, outdata)
    }

    fn opencv(
        &self,
        sess: &Session,
        read: &[vaccel_core::Arg<'_>],
        write: &mut [vaccel_core::Arg<'_>],
    ) -> Result<()> {
        ops::opencv(self, sess, read, write)
    }

    fn tf_model_load(&self, sess: &Session, model: &Resource) -> Result<vaccel_core::TfStatus> {
        ops::tf_model_load(self, sess, model)
    }

    fn tf_model_unload(&self, sess: &Session, model: &Resource) -> Result<vaccel_core::TfStatus> {
        ops::tf_model_unload(self, sess, model)
    }

    fn tf_model_run(
        &self,
        sess: &Session,
        model: &Resource,
        run_options: Option<&[u8]>,
        in_nodes: &[vaccel_core::TfNode],
        in_tensors: &[vaccel_core::TfTensor<'_>],
        out_nodes: &[vaccel_core::TfNode],
    ) -> Result<vaccel_core::tensor::TfRunOutput> {
        ops::tf_model_run(
            self,
            sess,
            model,
            run_options,
            in_nodes,
            in_tensors,
            out_nodes,
        )
    }

    fn tflite_model_load(&self, sess: &Session, model: &Resource) -> Result<()> {
        ops::tflite_model_load(self, sess, model)
    }

    fn tflite_model_unload(&self, sess: &Session, model: &Resource) -> Result<()> {
        ops::tflite_model_unload(self, sess, model)
    }

    fn tflite_model_run(
        &self,
        sess: &Session,
        model: &Resource,
        inputs: &[vaccel_core::TfLiteTensor<'_>],
        nr_outputs: usize,
    ) -> Result<vaccel_core::tensor::TfLiteRunOutput> {
        ops::tflite_model_run(self, sess, model, inputs, nr_outputs)
    }

    fn torch_model_load(&self, sess: &Session, model: &Resource) -> Result<()> {
        ops::torch_model_load(self, sess, model)
    }

    fn torch_model_run(
        &self,
        sess: &Session,
        model: &Resource,
        run_options: Option<&[u8]>,
        inputs: &[vaccel_core::TorchTensor<'_>],
        nr_outputs: usize,
    ) -> Result<Vec<vaccel_core::TorchTensor<'static>>> {
        ops::torch_model_run(self, sess, model, run_options, inputs, nr_outputs)
    }

    fn torch_sgemm(
        &self,
        sess: &Session,
        a: &vaccel_core::TorchTensor<'_>,
        b: &vaccel_core::TorchTensor<'_>,
        c: &vaccel_core::TorchTensor<'_>,
        m: i32,
        n: i32,
        k: i32,
    ) -> Result<Option<vaccel_core::TorchTensor<'static>>> {
        ops::torch_sgemm(self, sess, [a, b, c], m, n, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn descriptor() {
        let p = RpcPlugin::with_address(DEFAULT_ADDRESS.parse().unwrap());
        assert_eq!(p.info().name, "rpc");
        assert_eq!(p.info().version, VACCEL_VERSION);
        assert_eq!(p.info().vaccel_version, VACCEL_VERSION);
        assert_eq!(p.info().plugin_type, PluginType::REMOTE);
        assert!(p.info().remote);
        assert_eq!(p.ops(), OpSet::ALL);
        assert_eq!(bundled().name, "rpc");
    }

    #[test]
    fn address_from_the_environment() {
        let p = RpcPlugin::from_lookup(&vars(&[])).unwrap();
        assert_eq!(p.address().to_string(), "tcp://127.0.0.1:65500");
        let p = RpcPlugin::from_lookup(&vars(&[(ENV_RPC_ADDRESS, "unix:///tmp/a.sock")])).unwrap();
        assert_eq!(p.address(), &Address::Unix("/tmp/a.sock".into()));
        let p =
            RpcPlugin::from_lookup(&vars(&[(ENV_RPC_ADDRESS_ALIAS, "vsock://2:2048")])).unwrap();
        assert_eq!(p.address(), &Address::Vsock { cid: 2, port: 2048 });
        let p = RpcPlugin::from_lookup(&vars(&[
            (ENV_RPC_ADDRESS, "tcp://localhost:1"),
            (ENV_RPC_ADDRESS_ALIAS, "vsock://2:2048"),
        ]))
        .unwrap();
        assert_eq!(p.address().to_string(), "tcp://localhost:1");
        let e =
            RpcPlugin::from_lookup(&vars(&[(ENV_RPC_ADDRESS_ALIAS, "http://x:1")])).unwrap_err();
        assert_eq!(e.code(), ErrorCode::EINVAL);
        assert!(e.to_string().contains(ENV_RPC_ADDRESS_ALIAS), "{e}");
        assert!(e.to_string().contains("http://x:1"), "{e}");
    }
}
