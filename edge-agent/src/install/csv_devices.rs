//! `device add --csv FILE` (and `setup --devices FILE`): many devices from one CSV file with
//! the header `id,kind,room`, one bundle per device in `OUT/<id>/`.
//!
//! Every row is checked before any bundle is written: the file's size and row count are
//! bounded, each id, kind and room must parse, a room must be one of `[[rooms]]` when
//! `agent.toml` lists rooms, an id may appear once in the file and must not be registered yet,
//! and no bundle directory may hold a bundle. A refusal names the line and writes nothing.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use firmware_protocol::Label;
use shared::ids::DeviceId;

use super::{AddedDevice, BUNDLE_FILES, InstallError, add_device, ensure_no_bundle, io};
use crate::config::Config;
use crate::store::{DB_FILE, DeviceKind, NewDevice, Store};

/// The largest CSV file read.
pub const MAX_CSV_BYTES: u64 = 1024 * 1024;
/// The most devices one CSV file may add.
pub const MAX_CSV_ROWS: usize = 5_000;

/// One row of the file, checked.
#[derive(Debug, Clone)]
pub struct CsvDevice {
    /// The line it is on (1 is the header).
    pub line: u64,
    /// The device.
    pub device: NewDevice,
}

/// What to do with a row whose device is registered already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// Refuse the file (`device add --csv`).
    Refuse,
    /// Skip the row when the device has the same kind and room and its bundle is in place
    /// (a rerun of `setup` that stopped half-way); refuse it otherwise.
    SkipSame,
}

/// What became of one row.
#[derive(Debug, Clone)]
pub enum CsvOutcome {
    /// Registered now; its bundle is in `dir`.
    Added { dir: PathBuf, added: AddedDevice },
    /// Registered before, with the same kind and room; its bundle is in `dir`.
    Kept { dir: PathBuf },
}

/// Reads and checks `path` on its own (ids, kinds, rooms' syntax, duplicates, bounds).
pub fn read_devices_csv(path: &Path) -> Result<Vec<CsvDevice>, InstallError> {
    let bad = |line: u64, reason: String| InstallError::Csv {
        path: path.to_owned(),
        line,
        reason,
    };
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut text = Vec::new();
    file.take(MAX_CSV_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(io(path))?;
    if text.len() as u64 > MAX_CSV_BYTES {
        return Err(bad(
            0,
            format!("the file is larger than {MAX_CSV_BYTES} bytes; split it"),
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_slice());
    let header = reader.headers().map_err(|e| bad(1, e.to_string()))?.clone();
    if header.iter().collect::<Vec<_>>() != ["id", "kind", "room"] {
        return Err(bad(
            1,
            format!(
                "the header must be `id,kind,room`, found `{}`",
                header.iter().collect::<Vec<_>>().join(",")
            ),
        ));
    }
    let mut rows = Vec::new();
    let mut seen: HashSet<DeviceId> = HashSet::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            bad(line, e.to_string())
        })?;
        let line = record.position().map_or(0, csv::Position::line);
        if rows.len() == MAX_CSV_ROWS {
            return Err(bad(
                line,
                format!("more than {MAX_CSV_ROWS} devices; split the file"),
            ));
        }
        let field = |i: usize| record.get(i).unwrap_or_default();
        let id: DeviceId = field(0)
            .parse()
            .map_err(|e| bad(line, format!("id {:?}: {e}", field(0))))?;
        let kind: DeviceKind = field(1).parse().map_err(|e| bad(line, e))?;
        let room =
            Label::new(field(2)).map_err(|e| bad(line, format!("room {:?}: {e}", field(2))))?;
        if !seen.insert(id.clone()) {
            return Err(bad(line, format!("device {id} is listed twice")));
        }
        rows.push(CsvDevice {
            line,
            device: NewDevice {
                id,
                kind,
                room,
                press_map: None,
            },
        });
    }
    if rows.is_empty() {
        return Err(bad(1, "no devices below the header".into()));
    }
    Ok(rows)
}

/// Refuses `rows` if any bundle directory under `out` holds a bundle already: for a new
/// gateway, before anything else is written.
pub fn check_bundle_dirs(path: &Path, rows: &[CsvDevice], out: &Path) -> Result<(), InstallError> {
    for row in rows {
        ensure_no_bundle(&out.join(row.device.id.as_str()), BUNDLE_FILES).map_err(|e| {
            InstallError::Csv {
                path: path.to_owned(),
                line: row.line,
                reason: e.to_string(),
            }
        })?;
    }
    Ok(())
}

/// Checks `rows` against the gateway (rooms, registered devices, bundle directories), then
/// registers each and writes its bundle into `out/<id>/`.
pub fn add_devices(
    data_dir: &Path,
    path: &Path,
    rows: &[CsvDevice],
    out: &Path,
    registered: Registered,
) -> Result<Vec<CsvOutcome>, InstallError> {
    let config = Config::load(data_dir)?;
    let bad = |line: u64, reason: String| InstallError::Csv {
        path: path.to_owned(),
        line,
        reason,
    };
    let existing = Store::open(&data_dir.join(DB_FILE))?.list_devices()?;
    let mut plan = Vec::new();
    for row in rows {
        let device = &row.device;
        if !config.rooms.is_empty() && !config.rooms.iter().any(|r| r.id == device.room) {
            return Err(bad(
                row.line,
                format!(
                    "room {} is not one of agent.toml's [[rooms]] ({}); add it there or fix the row",
                    device.room,
                    config
                        .rooms
                        .iter()
                        .map(|r| r.id.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let dir = out.join(device.id.as_str());
        let found = existing.iter().find(|d| d.id == device.id);
        let keep = match found {
            None => false,
            Some(d)
                if registered == Registered::SkipSame
                    && d.kind == device.kind
                    && d.room == device.room
                    && BUNDLE_FILES.iter().all(|f| dir.join(f).is_file()) =>
            {
                true
            }
            Some(d) => {
                return Err(bad(
                    row.line,
                    format!(
                        "device {} is already registered ({} in room {}, {}); remove the row",
                        d.id,
                        d.kind,
                        d.room,
                        d.state.as_str()
                    ),
                ));
            }
        };
        if !keep {
            ensure_no_bundle(&dir, BUNDLE_FILES).map_err(|e| bad(row.line, e.to_string()))?;
        }
        plan.push((row, dir, keep));
    }
    let mut outcomes = Vec::new();
    for (row, dir, keep) in plan {
        if keep {
            outcomes.push(CsvOutcome::Kept { dir });
        } else {
            let added = add_device(data_dir, &row.device, &dir)?;
            outcomes.push(CsvOutcome::Added { dir, added });
        }
    }
    Ok(outcomes)
}
