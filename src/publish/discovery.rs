//! Home Assistant MQTT discovery: one device with a few entities, published
//! retained so HA finds them whenever it starts, and again when HA says
//! `online` on `<discovery_prefix>/status`.

use super::error::PublishError;
use super::options::PublishOptions;
use super::topics::Topics;
use serde_json::{json, Value};

/// One retained discovery config message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// The discovery configs for this device, under `discovery_prefix`.
pub fn announcements(
    discovery_prefix: &str,
    opts: &PublishOptions,
    topics: &Topics,
) -> Result<Vec<Announcement>, PublishError> {
    let dev = &opts.device_id;
    let version = env!("CARGO_PKG_VERSION");
    let sw_version = if opts.model.is_empty() {
        version.to_owned()
    } else {
        format!("{version} ({})", opts.model)
    };
    let device = json!({
        "identifiers": [dev],
        "name": format!("Marquee {dev}"),
        "manufacturer": "Marquee",
        "model": "Marquee poster tagger",
        "sw_version": sw_version,
    });
    let origin = json!({ "name": "marquee", "sw_version": version });
    // Entities that describe the device's output go unavailable with it;
    // the connectivity sensor itself must not, or it could never say "off".
    let available = |mut entity: Value| {
        entity["availability_topic"] = json!(topics.available);
        entity["payload_available"] = json!("online");
        entity["payload_not_available"] = json!("offline");
        entity
    };
    let mut entities = vec![
        (
            "sensor",
            "last_genres",
            available(json!({
                "name": "Last genres",
                "state_topic": topics.last,
                // HA states are short strings: the tags, or the top three
                // labels when no genre passed its threshold.
                "value_template": "{{ (value_json.tags if value_json.tags else \
                    value_json.top3 | map(attribute='label') | list) | join(', ') }}",
                "json_attributes_topic": topics.last,
                "json_attributes_template": "{{ {'id': value_json.id, \
                    'source': value_json.source, 'top3': value_json.top3, \
                    'ts': value_json.ts, 'replayed': value_json.replayed} | tojson }}",
                "icon": "mdi:movie-open",
            })),
        ),
        (
            "sensor",
            "posters_today",
            available(json!({
                "name": "Posters today",
                "state_topic": topics.stats,
                "value_template": "{{ value_json.posters_today }}",
                "unit_of_measurement": "posters",
                // Falls back to 0 at midnight: HA reads a drop as a reset.
                "state_class": "total_increasing",
                "icon": "mdi:counter",
            })),
        ),
        (
            "sensor",
            "outbox_backlog",
            available(json!({
                "name": "Outbox backlog",
                "state_topic": topics.stats,
                "value_template": "{{ value_json.outbox_backlog }}",
                "unit_of_measurement": "messages",
                "state_class": "measurement",
                "entity_category": "diagnostic",
                "icon": "mdi:tray-full",
            })),
        ),
        (
            "sensor",
            "genre_head",
            available(json!({
                "name": "Genre head",
                "state_topic": topics.model,
                "value_template": "{{ value_json.active.name }}",
                "json_attributes_topic": topics.model,
                "json_attributes_template": "{{ {'head': value_json.active.id, \
                    'micro_f1': value_json.active.micro_f1, \
                    'candidate': value_json.candidate.name if value_json.candidate else none, \
                    'candidate_micro_f1': value_json.candidate.micro_f1 if value_json.candidate else none} | tojson }}",
                "entity_category": "diagnostic",
                "icon": "mdi:brain",
            })),
        ),
        (
            "binary_sensor",
            "status",
            json!({
                "name": "Status",
                "state_topic": topics.available,
                "payload_on": "online",
                "payload_off": "offline",
                "device_class": "connectivity",
                "entity_category": "diagnostic",
            }),
        ),
    ];
    for camera in &opts.cameras {
        entities.push((
            "binary_sensor",
            // The object id becomes `camera_<name>` (see `object_suffix`).
            "camera",
            available(json!({
                "name": format!("Camera {camera}"),
                "state_topic": topics.camera_available(camera),
                "payload_on": "online",
                "payload_off": "offline",
                "device_class": "connectivity",
                "icon": "mdi:camera",
                "object_suffix": camera,
            })),
        ));
    }
    entities
        .into_iter()
        .map(|(component, object, mut config)| {
            // A camera's entity is `camera_<name>`.
            let object = match config
                .as_object_mut()
                .and_then(|c| c.remove("object_suffix"))
            {
                Some(Value::String(suffix)) => format!("{object}_{suffix}"),
                _ => object.to_owned(),
            };
            config["unique_id"] = json!(format!("{dev}_{object}"));
            config["device"] = device.clone();
            config["origin"] = origin.clone();
            let payload = serde_json::to_vec(&config).map_err(|source| PublishError::Encode {
                what: "a Home Assistant discovery config",
                source,
            })?;
            Ok(Announcement {
                topic: format!("{discovery_prefix}/{component}/{dev}/{object}/config"),
                payload,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_device_five_entities_unique_ids() {
        let mut opts = PublishOptions::new("lobby", "marquee", "localhost", 1883);
        opts.model = "m/int8".into();
        let topics = Topics::new("marquee", "lobby");
        let all = announcements("homeassistant", &opts, &topics).unwrap();
        let topics_out: Vec<_> = all.iter().map(|a| a.topic.as_str()).collect();
        assert_eq!(
            topics_out,
            [
                "homeassistant/sensor/lobby/last_genres/config",
                "homeassistant/sensor/lobby/posters_today/config",
                "homeassistant/sensor/lobby/outbox_backlog/config",
                "homeassistant/sensor/lobby/genre_head/config",
                "homeassistant/binary_sensor/lobby/status/config",
            ]
        );
        let head: Value = serde_json::from_slice(&all[3].payload).unwrap();
        assert_eq!(head["state_topic"], "marquee/lobby/model");
        for a in &all {
            let v: Value = serde_json::from_slice(&a.payload).unwrap();
            assert_eq!(v["device"]["identifiers"][0], "lobby");
            assert!(v["unique_id"].as_str().unwrap().starts_with("lobby_"));
        }
        let status: Value = serde_json::from_slice(&all[4].payload).unwrap();
        assert!(status.get("availability_topic").is_none());

        opts.cameras = vec!["desk".into()];
        let all = announcements("homeassistant", &opts, &topics).unwrap();
        let camera = all.last().unwrap();
        assert_eq!(
            camera.topic,
            "homeassistant/binary_sensor/lobby/camera_desk/config"
        );
        let v: Value = serde_json::from_slice(&camera.payload).unwrap();
        assert_eq!(v["state_topic"], "marquee/lobby/camera/desk/available");
        assert_eq!(v["unique_id"], "lobby_camera_desk");
        assert!(v.get("object_suffix").is_none());
    }
}
