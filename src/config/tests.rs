//! Loading through every layer, with files in a temp dir and an injected
//! environment (never the process's).

use super::*;
use std::collections::BTreeMap;
use std::path::Path;

fn repo_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// Options that read nothing from the machine: no env, no device tree.
fn hermetic(dir: &Path) -> LoadOptions {
    LoadOptions {
        env: EnvSource::Vars(BTreeMap::new()),
        device_tree_model: dir.join("no-device-tree"),
        ..LoadOptions::default()
    }
}

fn env(pairs: &[(&str, &str)]) -> EnvSource {
    EnvSource::Vars(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load_err(opts: &LoadOptions) -> String {
    Config::load(opts).unwrap_err().to_string()
}

#[test]
fn each_layer_overrides_the_previous() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "site.toml",
        "device_id = \"lobby\"\n[inference]\nthreads = 2\nqueue_size = 4\n",
    );
    let mut opts = LoadOptions {
        board: Some("rpi4".into()),
        ..hermetic(dir.path())
    };
    let threads = |opts: &LoadOptions| {
        let (config, prov) = Config::load(opts).unwrap();
        let origin = prov.origin_of("inference.threads").unwrap().to_string();
        (config.inference.threads, origin)
    };

    let (defaults, prov) = Config::load(&hermetic(dir.path())).unwrap();
    assert_eq!(defaults.device_id, Config::default().device_id);
    assert_eq!(prov.origin_of("device_id"), Some(&Origin::Default));

    assert_eq!(threads(&opts), (3, "firmware-config/rpi4.toml".into()));

    opts.config_file = Some(file.clone());
    assert_eq!(threads(&opts), (2, file.display().to_string()));

    opts.env = env(&[("MARQUEE__INFERENCE__THREADS", "1")]);
    assert_eq!(
        threads(&opts),
        (1, "environment variable MARQUEE__INFERENCE__THREADS".into())
    );

    opts.overrides = vec![Override::new("inference.threads", 4, "--threads").unwrap()];
    assert_eq!(threads(&opts), (4, "command-line flag --threads".into()));

    // Keys a higher layer does not name keep the lower layer's value.
    let (config, prov) = Config::load(&opts).unwrap();
    assert_eq!(config.device_id, "lobby");
    assert_eq!(config.inference.queue_size, 4);
    assert_eq!(config.inference.variant, Some(ModelVariant::Int8));
    assert_eq!(
        prov.origin_of("inference.variant"),
        Some(&Origin::Board("firmware-config/rpi4.toml".into()))
    );
    assert_eq!(prov.origin_of("mqtt.url"), Some(&Origin::Default));
    assert_eq!(prov.board().how, BoardSelection::Named);
}

#[test]
fn unknown_key_in_a_profile_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    let path = write(&profiles, "rpi4.toml", "[inference]\nthread = 3\n");
    let opts = LoadOptions {
        board: Some("rpi4".into()),
        profile_dir: Some(profiles),
        ..hermetic(dir.path())
    };
    let err = load_err(&opts);
    assert!(err.starts_with(&path.display().to_string()), "{err}");
    assert!(err.contains("`inference.thread`"), "{err}");
    assert!(err.contains("unknown field `thread`"), "{err}");
    assert!(err.contains("expected one of `threads`"), "{err}");
}

#[test]
fn unknown_key_in_the_config_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "site.toml",
        "[mqtt]\nurl = \"mqtt://b\"\nprefix = \"x\"\n",
    );
    let opts = LoadOptions {
        config_file: Some(file.clone()),
        ..hermetic(dir.path())
    };
    let err = load_err(&opts);
    assert!(err.starts_with(&file.display().to_string()), "{err}");
    assert!(
        err.contains("`mqtt.prefix`: unknown field `prefix`"),
        "{err}"
    );
}

#[test]
fn unknown_key_in_the_environment_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (name, key) in [
        ("MARQUEE__MQTT__URLL", "`mqtt.urll`"),
        ("MARQUEE__COLOUR", "`colour`"),
        ("MARQUEE__MQTT__TLS__CA", "`mqtt.tls`"),
    ] {
        let opts = LoadOptions {
            env: env(&[(name, "x")]),
            ..hermetic(dir.path())
        };
        let err = load_err(&opts);
        assert!(
            err.starts_with(&format!("environment variable {name}: {key}")),
            "{err}"
        );
        assert!(err.contains("unknown field"), "{err}");
    }
}

#[test]
fn malformed_value_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "site.toml", "[inference]\nthreads = \"many\"\n");
    let opts = LoadOptions {
        config_file: Some(file),
        ..hermetic(dir.path())
    };
    let err = Config::load(&opts).unwrap_err();
    match &err {
        ConfigError::Schema { key, message, .. } => {
            assert_eq!(key, "inference.threads");
            assert!(
                message.contains("invalid type: string \"many\""),
                "{message}"
            );
        }
        other => panic!("expected a schema error, got {other}"),
    }

    let opts = LoadOptions {
        env: env(&[("MARQUEE__INFERENCE__QUEUE_SIZE", "lots")]),
        ..hermetic(dir.path())
    };
    let err = load_err(&opts);
    assert!(
        err.starts_with(
            "environment variable MARQUEE__INFERENCE__QUEUE_SIZE: `inference.queue_size`"
        ),
        "{err}"
    );

    let file = write(dir.path(), "broken.toml", "[inference\nthreads = 1\n");
    let opts = LoadOptions {
        config_file: Some(file.clone()),
        ..hermetic(dir.path())
    };
    let err = load_err(&opts);
    assert!(
        err.starts_with(&format!("{}: not valid TOML", file.display())),
        "{err}"
    );
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn env_numbers_and_booleans_are_kept_as_text_for_string_keys() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LoadOptions {
        env: env(&[
            ("MARQUEE__DEVICE_ID", "42"),
            ("MARQUEE__MQTT__USERNAME", "true"),
            ("MARQUEE__MQTT__PASSWORD", "1234"),
            ("MARQUEE__MQTT__URL", "mqtts://broker.lan"),
            ("MARQUEE__MQTT__DISCOVERY", "false"),
        ]),
        ..hermetic(dir.path())
    };
    let (config, _) = Config::load(&opts).unwrap();
    assert_eq!(config.device_id, "42");
    assert_eq!(config.mqtt.username.as_deref(), Some("true"));
    assert_eq!(config.mqtt.password.as_deref(), Some("1234"));
    assert!(!config.mqtt.discovery);
    assert!(config.mqtt.broker().unwrap().tls);
}

#[test]
fn validation_problems_name_the_key_and_its_layer() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "site.toml",
        "[mqtt]\ntopic_prefix = \"home/marquee\"\nurl = \"tcp://broker\"\n",
    );
    let opts = LoadOptions {
        config_file: Some(file.clone()),
        overrides: vec![Override::new("inference.queue_size", 0, "--queue-size").unwrap()],
        ..hermetic(dir.path())
    };
    match Config::load(&opts).unwrap_err() {
        ConfigError::Invalid(problems) => {
            let got: Vec<(&str, Option<&str>)> = problems
                .iter()
                .map(|p| (p.key.as_str(), p.origin.as_deref()))
                .collect();
            let file = file.display().to_string();
            assert_eq!(
                got,
                [
                    ("mqtt.url", Some(file.as_str())),
                    ("mqtt.topic_prefix", Some(file.as_str())),
                    (
                        "inference.queue_size",
                        Some("command-line flag --queue-size")
                    ),
                ]
            );
        }
        other => panic!("expected validation problems, got {other}"),
    }
}

/// Every file in firmware-config/ is a built-in profile (and the reverse),
/// and loads and validates both ways.
#[test]
fn every_board_profile_loads_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let folder = repo_dir("firmware-config");
    let on_disk = names_in(&folder).unwrap();
    let mut built_in = builtin_names();
    built_in.sort();
    assert_eq!(
        on_disk, built_in,
        "firmware-config/ and BUILTIN_PROFILES differ"
    );

    for name in on_disk {
        for profile_dir in [None, Some(folder.clone())] {
            let opts = LoadOptions {
                board: Some(name.clone()),
                profile_dir,
                ..hermetic(dir.path())
            };
            let (config, prov) = Config::load(&opts).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(prov.board().name, name);
            assert!(config.inference.effective_threads() >= 1, "{name}");
            let origin = prov.origin_of("inference.threads").unwrap().to_string();
            assert!(
                origin.ends_with(&format!("{name}.toml")),
                "{name}: {origin}"
            );
        }
    }
}

#[test]
fn the_shipped_site_config_loads_on_every_board() {
    let dir = tempfile::tempdir().unwrap();
    for name in builtin_names() {
        let opts = LoadOptions {
            board: Some(name.clone()),
            config_file: Some(repo_dir("systemd/marquee.toml")),
            ..hermetic(dir.path())
        };
        let (config, _) = Config::load(&opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            config.watch.dir,
            Some(PathBuf::from("/var/lib/marquee/inbox"))
        );
    }
}

#[test]
fn the_board_is_detected_from_the_device_tree() {
    let dir = tempfile::tempdir().unwrap();
    let model = write(dir.path(), "model", "Raspberry Pi 5 Model B Rev 1.0\0");
    let opts = LoadOptions {
        device_tree_model: model,
        ..hermetic(dir.path())
    };
    let (config, prov) = Config::load(&opts).unwrap();
    assert_eq!(prov.board().name, "rpi5");
    assert_eq!(config.inference.threads, 3);

    let (_, prov) = Config::load(&hermetic(dir.path())).unwrap();
    assert_eq!(prov.board().name, FALLBACK_BOARD);
}

#[test]
fn unknown_board_and_missing_file_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LoadOptions {
        board: Some("rpi3".into()),
        ..hermetic(dir.path())
    };
    assert!(load_err(&opts).contains("unknown board `rpi3`"));

    let opts = LoadOptions {
        config_file: Some(dir.path().join("absent.toml")),
        ..hermetic(dir.path())
    };
    assert!(load_err(&opts).contains("absent.toml"));
}

#[test]
fn set_assignments_read_toml_or_text() {
    let url = Override::parse_assignment("mqtt.url=mqtts://b:8883").unwrap();
    assert_eq!(url.key(), "mqtt.url");
    let dir = tempfile::tempdir().unwrap();
    let opts = LoadOptions {
        overrides: vec![
            url,
            Override::parse_assignment("inference.threads=2").unwrap(),
        ],
        ..hermetic(dir.path())
    };
    let (config, prov) = Config::load(&opts).unwrap();
    assert_eq!(config.mqtt.url, "mqtts://b:8883");
    assert_eq!(config.inference.threads, 2);
    assert_eq!(
        prov.origin_of("inference.threads").unwrap().to_string(),
        "command-line flag --set inference.threads=2"
    );
    assert!(Override::parse_assignment("no-equals").is_err());
    assert!(Override::parse_assignment("Mqtt.URL=x").is_err());
}

#[test]
fn cameras_are_validated_and_filled_from_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "site.toml",
        "[[camera]]\nname = \"door\"\nsource = \"/dev/video0\"\nfps = 5\n\
         [[camera]]\nname = \"desk\"\nsource = \"/dev/video2\"\nfps = 500\n",
    );
    let opts = LoadOptions {
        board: Some("rpi4".into()),
        config_file: Some(file.clone()),
        ..hermetic(dir.path())
    };
    let err = load_err(&opts);
    assert!(
        err.contains(&format!("`camera[1].fps` (from {})", file.display())),
        "{err}"
    );

    write(
        dir.path(),
        "site.toml",
        "[[camera]]\nname = \"door\"\nsource = \"/dev/video0\"\nfps = 5\n",
    );
    let (config, _) = Config::load(&opts).unwrap();
    let camera = config.cameras[0].resolve(&config.camera_defaults);
    assert_eq!((camera.width, camera.height, camera.fps), (1280, 720, 5));
    assert_eq!(camera.mode, CameraMode::OnDemand);
}

#[test]
fn printed_config_redacts_the_password_and_reads_back() {
    let mut config = Config::default();
    config.mqtt.username = Some("marquee".into());
    config.mqtt.password = Some("hunter2".into());
    config.cameras.push(CameraConfig {
        name: "door".into(),
        source: "/dev/video0".into(),
        ..CameraConfig::default()
    });
    let text = config.to_toml_string().unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    let back: Config = toml::from_str(&text).unwrap();
    assert_eq!(back.mqtt.password.as_deref(), Some("<redacted>"));
    config.mqtt.password = back.mqtt.password.clone();
    assert_eq!(back, config);
}

#[test]
fn printed_config_redacts_passwords_in_urls() {
    let mut config = Config::default();
    config.mqtt.url = "mqtt://marquee:s3cret-broker@broker.lan:1883".into();
    config.cameras.push(CameraConfig {
        name: "door".into(),
        source: "mjpeg+http://admin:hunter2@10.0.0.5/video".into(),
        ..CameraConfig::default()
    });
    let text = config.to_toml_string().unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("s3cret-broker"), "{text}");
    assert!(
        text.contains("mjpeg+http://admin:***@10.0.0.5/video"),
        "{text}"
    );
}

#[test]
fn dashboard_credentials_are_checked_and_never_plain() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "marquee.toml",
        "[dashboard]\npassword_hash = \"hunter2\"\napi_token_sha256 = [\"abc\"]\nauto_accept = 1.5\n",
    );
    let err = load_err(&LoadOptions {
        config_file: Some(file),
        ..hermetic(dir.path())
    });
    assert!(err.contains("dashboard.password_hash"), "{err}");
    assert!(err.contains("hash-password"), "{err}");
    assert!(err.contains("dashboard.api_token_sha256[0]"), "{err}");
    assert!(err.contains("dashboard.auto_accept"), "{err}");

    let file = write(
        dir.path(),
        "ro.toml",
        "[dashboard]\nread_only_without_login = true\n",
    );
    let err = load_err(&LoadOptions {
        config_file: Some(file),
        ..hermetic(dir.path())
    });
    assert!(err.contains("needs dashboard.password_hash"), "{err}");

    let hash = crate::credentials::hash_password("long enough").unwrap();
    let (_, token) = crate::credentials::new_token().unwrap();
    let file = write(
        dir.path(),
        "ok.toml",
        &format!(
            "[dashboard]\npassword_hash = \"{hash}\"\napi_token_sha256 = [\"{token}\"]\nread_only_without_login = true\n"
        ),
    );
    let (config, _) = Config::load(&LoadOptions {
        config_file: Some(file),
        ..hermetic(dir.path())
    })
    .unwrap();
    assert!(config.dashboard.auth_required());
    assert_eq!(config.dashboard.api_token_sha256, vec![token]);
}

#[test]
fn camera_keys_and_values_are_checked_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LoadOptions {
        config_file: Some(dir.path().join("site.toml")),
        ..hermetic(dir.path())
    };
    let camera = "[[camera]]\nname = \"door\"\nsource = \"http://cam/snap.jpg\"\n";
    write(dir.path(), "site.toml", &format!("{camera}settle = 500\n"));
    let err = load_err(&opts);
    assert!(
        err.contains("settle") && err.contains("unknown field"),
        "{err}"
    );

    write(
        dir.path(),
        "site.toml",
        &format!("{camera}roi = [0.5, 0.5, 0.8, 0.2]\nmode = \"continuous\"\n"),
    );
    let err = load_err(&opts);
    assert!(err.contains("`camera[0].roi`"), "{err}");
    assert!(err.contains("runs past the frame"), "{err}");

    write(
        dir.path(),
        "site.toml",
        "[[camera]]\nname = \"door\"\nsource = \"rtsp://cam/stream\"\n\
         [camera_defaults]\nchange_threshold = 5.0\n",
    );
    let err = load_err(&opts);
    assert!(
        err.contains("`camera[0].source`") && err.contains("RTSP"),
        "{err}"
    );
    assert!(err.contains("`camera_defaults.change_threshold`"), "{err}");

    write(
        dir.path(),
        "site.toml",
        &format!("{camera}roi = [0.1, 0.2, 0.5, 0.6]\nsettle_ms = 400\n"),
    );
    let (config, _) = Config::load(&opts).unwrap();
    let camera = config.cameras[0].resolve(&config.camera_defaults);
    assert_eq!(camera.roi, Some([0.1, 0.2, 0.5, 0.6]));
    assert_eq!(camera.settle_ms, 400);
    assert_eq!(
        camera.change_threshold,
        CameraDefaults::default().change_threshold
    );
}

#[test]
fn the_backbone_runtime_keys_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let load = |text: &str| {
        let file = write(dir.path(), "site.toml", text);
        Config::load(&LoadOptions {
            config_file: Some(file),
            ..hermetic(dir.path())
        })
    };
    let (config, _) = load(
        "[inference]\nbackend = \"auto\"\nonnxruntime_library = \"/opt/ort/libonnxruntime.so\"\n\
         onnxruntime_providers = [\"cuda\", \"cpu\"]\nvariant = \"int8-full\"\n",
    )
    .unwrap();
    let runtime = config.inference.runtime_options();
    assert_eq!(runtime.choice, crate::model::backbone::RuntimeChoice::Auto);
    assert_eq!(config.inference.variant, Some(ModelVariant::Int8Full));
    assert_eq!(
        runtime.providers,
        [
            crate::model::backbone::Provider::Cuda,
            crate::model::backbone::Provider::Cpu
        ]
    );
    assert_eq!(runtime.sessions, config.inference.effective_threads());

    let err = load("[inference]\nbackend = \"tensorflow\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("inference.backend"), "{err}");
    assert!(err.contains("onnxruntime"), "lists the choices: {err}");
    let err = load("[inference]\nonnxruntime_providers = [\"gpu\"]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("inference.onnxruntime_providers"), "{err}");
    let err = load("[inference]\nonnxruntime_providers = []\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least one provider"), "{err}");
    let onnxruntime = load("[inference]\nbackend = \"onnxruntime\"\n");
    if cfg!(feature = "onnxruntime") {
        assert!(onnxruntime.is_ok());
    } else {
        let err = onnxruntime.unwrap_err().to_string();
        assert!(err.contains("`onnxruntime` feature"), "{err}");
    }
}
