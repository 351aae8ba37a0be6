//! Provisioning simulated devices: registering the new ones with real certificates, reusing
//! those an earlier run registered (their bundles live under `DATA_DIR/sim/<id>/`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use firmware_protocol::Label;
use shared::ids::DeviceId;

use super::{SimulateError, SimulateOptions};
use crate::install;
use crate::store::{DeviceKind, DeviceState, NewDevice};

/// A simulated device and where its bundle lives.
#[derive(Debug)]
pub(super) struct Planned {
    pub(super) id: DeviceId,
    pub(super) kind: DeviceKind,
    pub(super) room: Label,
    pub(super) bundle: PathBuf,
}

pub(super) fn plan(options: &SimulateOptions) -> Result<Vec<Planned>, SimulateError> {
    let kinds = [
        (DeviceKind::Button, "btn", options.buttons),
        (DeviceKind::Camera, "cam", options.cameras),
    ];
    let mut planned = Vec::new();
    for (kind, prefix, count) in kinds {
        for n in 1..=count {
            let name = format!("sim-{prefix}-{n:04}");
            let id: DeviceId = name
                .parse()
                .map_err(|e| SimulateError::Invalid(format!("{name}: {e}")))?;
            let room = Label::new(&format!("SIM-{n:03}"))
                .map_err(|e| SimulateError::Invalid(format!("room of {name}: {e}")))?;
            let bundle = options.data_dir.join("sim").join(&name);
            planned.push(Planned {
                id,
                kind,
                room,
                bundle,
            });
        }
    }
    Ok(planned)
}

/// Registers the devices that are not registered yet; reuses the others with the bundles an
/// earlier run wrote. Returns the devices and how many were registered now.
pub(super) fn provision(
    data_dir: &Path,
    planned: Vec<Planned>,
) -> Result<(Vec<Planned>, usize), SimulateError> {
    let registered: HashMap<DeviceId, (DeviceKind, DeviceState)> = install::list_devices(data_dir)?
        .into_iter()
        .map(|row| (row.id, (row.kind, row.state)))
        .collect();
    let mut added = 0;
    for device in &planned {
        let refuse = |reason: String| {
            Err(SimulateError::Device {
                id: device.id.clone(),
                reason,
            })
        };
        match registered.get(&device.id) {
            None => {
                let new = NewDevice {
                    id: device.id.clone(),
                    kind: device.kind,
                    room: device.room,
                    press_map: None,
                };
                install::add_device(data_dir, &new, &device.bundle)?;
                added += 1;
            }
            Some((_, DeviceState::Revoked)) => {
                return refuse("it is revoked; use another data directory".into());
            }
            Some((kind, _)) if *kind != device.kind => {
                return refuse(format!(
                    "it is registered as a {kind}, not a {}",
                    device.kind
                ));
            }
            Some(_) if !device.bundle.join("device.key").is_file() => {
                return refuse(format!(
                    "it is registered but its bundle {} is missing (its key exists nowhere \
                     else); use another data directory",
                    device.bundle.display()
                ));
            }
            Some(_) => {}
        }
    }
    Ok((planned, added))
}
