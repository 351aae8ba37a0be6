//! `agent.toml` written back from a [`Config`], with comments for whoever edits it next
//! (`edge-agent init` writes it this way; `enroll` appends the `[cloud]` section).

use std::net::IpAddr;

use super::Config;
use super::press_map::format_press_map;

impl Config {
    /// `agent.toml` for this configuration, with comments for whoever edits it next.
    pub fn to_toml(&self) -> String {
        let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let list = |items: Vec<String>| {
            let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
            format!("[{}]", quoted.join(", "))
        };
        format!(
            "# Hallwatch gateway configuration, written by `edge-agent init`.\n\
             # Unknown keys are refused. Changing hostnames or ips here does not re-issue the\n\
             # gateway's server certificate.\n\n\
             [school]\n\
             # The school's id (letters, digits, '-' and '_'); it is in every device certificate.\n\
             id = {}\n\
             name = {}\n\
             # Students enrolled: the snapshot's absence is this minus those counted present.\n\
             students_total = {}\n\n\
             [gateway]\n\
             # How devices reach this gateway; the first entry goes into provisioning bundles.\n\
             hostnames = {}\n\
             ips = {}\n\n\
             [mqtt]\n\
             # The device-facing MQTT over mutual TLS listener.\n\
             listen = {}\n\n\
             [http]\n\
             # The local dashboard.\n\
             listen = {}\n\n\
             [gate]\n\
             # Device connection limits: connections held at once, still handshaking (in all\n\
             # and per source address), time allowed for the TLS handshake and for the MQTT\n\
             # CONNECT, and the largest MQTT packet a device may send.\n\
             max_connections = {}\n\
             max_pending = {}\n\
             max_pending_per_ip = {}\n\
             handshake_timeout_ms = {}\n\
             connect_timeout_ms = {}\n\
             max_packet_bytes = {}\n\
             # Publishes per second from one device, and from all devices together; beyond\n\
             # them the gate slows its reading (TCP back-pressure), it never drops a frame.\n\
             device_uplinks_per_s = {}\n\
             total_uplinks_per_s = {}\n\n\
             [alerts]\n\
             # An alert nobody acknowledges within escalate_after_s escalates (severity up,\n\
             # announced again). The presser may cancel their own alert within\n\
             # cancel_window_s. press_map: which alert each press pattern raises (panic,\n\
             # medical, fire, lockdown, intruder or ignore); a device may have its own.\n\
             escalate_after_s = {}\n\
             cancel_window_s = {}\n\
             press_map = {}\n\n\
             [health]\n\
             # Devices send a heartbeat every heartbeat_interval_s; one silent for\n\
             # offline_after_s counts as offline (at once if its connection drops with a last\n\
             # will). Below battery_low_mv its battery is reported low.\n\
             heartbeat_interval_s = {}\n\
             offline_after_s = {}\n\
             battery_low_mv = {}\n\n\
             [snapshots]\n\
             # A school snapshot is taken debounce_ms after a change, every heartbeat_s\n\
             # regardless, and in full every full_s. A room whose camera has not reported for\n\
             # stale_after_s is marked stale and left out of the totals.\n\
             debounce_ms = {}\n\
             heartbeat_s = {}\n\
             full_s = {}\n\
             stale_after_s = {}\n\n\
             {}\n\
             # The school's rooms: where each is and how many it holds (a camera counting more\n\
             # than twice the capacity is refused). Devices are registered in these rooms.\n\
             # [[rooms]]\n\
             # id = \"A-101\"\n\
             # building = \"A\"\n\
             # floor = \"1\"\n\
             # capacity = 30\n{}{}",
            quote(self.school_id.as_str()),
            quote(&self.school_name),
            self.occupancy.students_total,
            list(self.hostnames.clone()),
            list(self.ips.iter().map(IpAddr::to_string).collect()),
            quote(&self.mqtt_listen.to_string()),
            quote(&self.http_listen.to_string()),
            self.gate.max_connections,
            self.gate.max_pending,
            self.gate.max_pending_per_ip,
            self.gate.handshake_timeout.as_millis(),
            self.gate.connect_timeout.as_millis(),
            self.gate.max_packet_bytes,
            self.gate.device_uplinks_per_s,
            self.gate.total_uplinks_per_s,
            self.alerts.escalate_after.as_secs(),
            self.alerts.cancel_window.as_secs(),
            quote(&format_press_map(&self.alerts.press_map)),
            self.health.heartbeat_interval.as_secs(),
            self.health.policy.offline_after.as_secs(),
            self.health.policy.battery_low_mv,
            self.snapshots.debounce.as_millis(),
            self.snapshots.heartbeat.as_secs(),
            self.snapshots.full.as_secs(),
            self.occupancy.stale_after.as_secs(),
            self.sync.to_toml(),
            self.rooms_toml(),
            self.cloud
                .as_ref()
                .map(|cloud| format!("\n{}", cloud.to_toml()))
                .unwrap_or_default(),
        )
    }
}

impl Config {
    fn rooms_toml(&self) -> String {
        let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let mut out = String::new();
        for room in &self.rooms {
            out.push_str(&format!("\n[[rooms]]\nid = {}\n", quote(room.id.as_str())));
            if let Some(b) = &room.building {
                out.push_str(&format!("building = {}\n", quote(b)));
            }
            if let Some(f) = &room.floor {
                out.push_str(&format!("floor = {}\n", quote(f)));
            }
            if let Some(c) = room.capacity {
                out.push_str(&format!("capacity = {c}\n"));
            }
        }
        out
    }
}
