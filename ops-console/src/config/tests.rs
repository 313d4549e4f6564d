use std::collections::HashMap;

use super::*;

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

#[test]
fn the_example_config_is_valid_and_equals_the_defaults() {
    let text = include_str!("../../regula.example.toml");
    assert_eq!(parse(text, &no_env()).unwrap(), Config::default());
}

#[test]
fn an_empty_file_gives_the_defaults() {
    assert_eq!(parse("", &no_env()).unwrap(), Config::default());
}

#[test]
fn unknown_key_wrong_type_and_bad_address_are_all_reported_with_lines() {
    let text = "\
[server]
listne = \"127.0.0.1:9000\"
listen = \"localhost-8080\"
shutdown_grace_seconds = \"ten\"
";
    let errors = parse(text, &no_env()).unwrap_err().0;
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_eq!(errors[0].key, "server.listne");
    assert_eq!(errors[0].line, Some(2));
    assert!(
        errors[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("did you mean `listen`?")
    );
    assert_eq!(errors[1].key, "server.listen");
    assert_eq!(errors[1].line, Some(3));
    assert!(
        errors[1].message.contains("socket address"),
        "{}",
        errors[1].message
    );
    assert_eq!(errors[2].key, "server.shutdown_grace_seconds");
    assert_eq!(errors[2].line, Some(4));
    assert!(
        errors[2].message.contains("invalid type"),
        "{}",
        errors[2].message
    );
}

#[test]
fn unknown_sections_and_values_are_reported() {
    let text = "[sever]\nlisten = \"1.2.3.4:80\"\n[log]\nformat = \"xml\"\n";
    let errors = parse(text, &no_env()).unwrap_err().0;
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0].key, "sever");
    assert_eq!(errors[0].line, Some(1));
    assert!(
        errors[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("did you mean `server`?")
    );
    assert_eq!(errors[1].key, "log.format");
    assert!(
        errors[1].message.contains("unknown variant `xml`"),
        "{}",
        errors[1].message
    );
    assert_eq!(errors[1].hint.as_deref(), Some("\"text\" or \"json\""));
}

#[test]
fn a_section_of_the_wrong_type_is_reported_once() {
    let errors = parse("server = 5\n", &no_env()).unwrap_err().0;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].key, "server");
    assert_eq!(errors[0].line, Some(1));
}

#[test]
fn syntax_errors_name_the_line() {
    let errors = parse("[server]\nlisten = \n", &no_env()).unwrap_err().0;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, Some(2));
    assert!(
        errors[0].message.starts_with("not valid TOML"),
        "{}",
        errors[0].message
    );
}

#[test]
fn bad_log_filter_is_refused() {
    let errors = parse("[log]\nfilter = \"info,[[\"\n", &no_env())
        .unwrap_err()
        .0;
    assert_eq!(errors[0].key, "log.filter");
    assert!(
        errors[0].message.contains("invalid log filter"),
        "{}",
        errors[0].message
    );
}

#[test]
fn environment_overrides_the_file_and_is_validated() {
    let mut env = no_env();
    env.insert(ENV_LOG_FORMAT.into(), "JSON".into());
    env.insert(ENV_LOG_FILTER.into(), "debug".into());
    let config = parse("[log]\nformat = \"text\"\n", &env).unwrap();
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.filter.as_str(), "debug");

    env.insert(ENV_LOG_FORMAT.into(), "yaml".into());
    let errors = parse("", &env).unwrap_err().0;
    assert_eq!(errors[0].key, ENV_LOG_FORMAT);
}

#[test]
fn problems_print_key_line_and_hint() {
    let errors = parse("[server]\nlisten = 8080\n", &no_env()).unwrap_err();
    let text = errors.to_string();
    assert!(
        text.starts_with("1 problem in the configuration:"),
        "{text}"
    );
    assert!(text.contains("line 2: `server.listen`"), "{text}");
    assert!(text.contains("hint: an IP address and port"), "{text}");
}

#[test]
fn database_url_comes_from_the_file_then_the_environment_and_is_validated() {
    let config = parse("[store]\ndatabase_url = \"sqlite:/tmp/r.db\"\n", &no_env()).unwrap();
    assert_eq!(
        config.store.database_url.location(),
        crate::store::StoreLocation::Sqlite("/tmp/r.db".into())
    );
    let mut env = no_env();
    env.insert(ENV_DATABASE_URL.into(), "postgres://u:pw@db/regula".into());
    let config = parse("", &env).unwrap();
    assert!(matches!(
        config.store.database_url.location(),
        crate::store::StoreLocation::Postgres(_)
    ));
    assert!(
        !format!("{config:?}").contains("pw@"),
        "passwords stay out of Debug"
    );

    let errors = parse("[store]\ndatabase_url = \"mysql://db\"\n", &no_env())
        .unwrap_err()
        .0;
    assert_eq!(errors[0].key, "store.database_url");
    assert_eq!(errors[0].line, Some(2));
    assert!(
        errors[0].message.contains("unsupported database scheme"),
        "{errors:?}"
    );

    env.insert(ENV_DATABASE_URL.into(), String::new());
    let errors = parse("", &env).unwrap_err().0;
    assert_eq!(errors[0].key, ENV_DATABASE_URL);
}

#[test]
fn dispatch_rules_out_of_range_are_reported_with_their_lines() {
    let text = "[dispatch]\nacceptance_timeout_seconds = 2\nrecommendation_limit = 0\n";
    let errors = parse(&format!("{text}history_days = 0\n"), &no_env())
        .unwrap_err()
        .0;
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors.iter().any(|e| e.key == "dispatch.history_days"));
    let errors = parse(text, &no_env()).unwrap_err().0;
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0].key, "dispatch.acceptance_timeout_seconds");
    assert_eq!(errors[0].line, Some(2));
    assert_eq!(errors[1].key, "dispatch.recommendation_limit");
    let policy = parse("[dispatch]\nacceptance_timeout_seconds = 45\n", &no_env())
        .unwrap()
        .dispatch
        .policy();
    assert_eq!(policy.acceptance_timeout, maps::TravelTime::from_secs(45));
    assert_eq!(
        policy.history_retention,
        maps::TravelTime::from_minutes(7 * 24 * 60)
    );
}

#[test]
fn feeds_need_a_usable_receiver_name_and_a_token_hash_of_their_own() {
    let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let text = format!(
        "[feeds.EPS037]\ntoken_sha256 = \"{hash}\"\n\n[feeds.red_publica]\ntoken_sha256 = \"{}\"\n",
        hash.to_uppercase().replace('9', "8")
    );
    let config = parse(&text, &no_env()).unwrap();
    assert_eq!(config.feeds.len(), 2);
    assert_eq!(config.feeds["EPS037"].token_hash().unwrap()[0], 0x9f);
    assert!(
        !format!("{config:?}").contains("9f86d0"),
        "hashes stay out of Debug"
    );

    let text = format!(
        "[feeds.EPS037]\ntoken_sha256 = \"{hash}\"\n\n[feeds.EPS002]\ntoken_sha256 = \"{hash}\"\n\n\
         [feeds.\"EPS 9\"]\ntoken_sha256 = \"abc\"\n\n[feeds.ED-001]\ntoken = \"x\"\n"
    );
    let errors = parse(&text, &no_env()).unwrap_err().0;
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert!(keys.contains(&"feeds.ED-001.token"), "{errors:#?}");
    let errors = parse(
        &text.replace("[feeds.ED-001]\ntoken = \"x\"\n", ""),
        &no_env(),
    )
    .unwrap_err()
    .0;
    let messages: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.key.as_str(), e.message.as_str()))
        .collect();
    assert!(
        messages.contains(&(
            "feeds.EPS037.token_sha256",
            "the same token is already given to `EPS002`"
        )),
        "{errors:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|(k, m)| *k == "feeds.EPS 9" && m.contains("not a usable receiver name")),
        "{errors:#?}"
    );
    assert!(
        messages.contains(&("feeds.EPS 9.token_sha256", "not 64 hex digits")),
        "{errors:#?}"
    );
}

#[test]
fn sip_and_webhook_sections_are_optional_validated_and_secret() {
    let config = parse("", &no_env()).unwrap();
    assert!(config.sip.is_none() && config.webhook.is_none());
    let text = "[sip]\nlisten = \"127.0.0.1:5070\"\nmax_queued_calls = 0\n\n[webhook]\nsecret = \"short\"\n";
    let errors = parse(text, &no_env()).unwrap_err().0;
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0].key, "sip.max_queued_calls");
    assert_eq!(errors[0].line, Some(3));
    assert_eq!(errors[1].key, "webhook.secret");
    let errors = parse("[sip]\nlisen = \"1.2.3.4:5060\"\n", &no_env())
        .unwrap_err()
        .0;
    assert!(
        errors[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("did you mean `listen`?")
    );

    let mut env = no_env();
    env.insert(ENV_WEBHOOK_SECRET.into(), "0123456789abcdef-secret".into());
    let config = parse(
        "[webhook]\nsecret = \"placeholder-placeholder\"\nreplay_window_seconds = 60\n",
        &env,
    )
    .unwrap();
    let webhook = config.webhook.unwrap();
    assert_eq!(webhook.secret.expose(), "0123456789abcdef-secret");
    assert_eq!(webhook.replay_window_seconds, 60);
    assert!(
        !format!("{webhook:?}").contains("0123456789"),
        "the secret stays out of Debug"
    );
}

#[test]
fn unknown_keys_types_ranges_secrets_and_environment_are_reported_in_one_pass() {
    let text = "\
[server]
listne = \"127.0.0.1:9000\"
shutdown_grace_seconds = \"ten\"
max_connections = 0

[dispatch]
recommendation_limit = 0

[webhook]
secret = \"short\"
";
    let mut env = no_env();
    env.insert(ENV_LOG_FORMAT.into(), "yaml".into());
    let errors = parse(text, &env).unwrap_err().0;
    let keys: Vec<(&str, Option<usize>)> =
        errors.iter().map(|e| (e.key.as_str(), e.line)).collect();
    assert_eq!(
        keys,
        [
            ("server.listne", Some(2)),
            ("server.shutdown_grace_seconds", Some(3)),
            ("server.max_connections", Some(4)),
            ("dispatch.recommendation_limit", Some(7)),
            ("webhook.secret", Some(10)),
            (ENV_LOG_FORMAT, None),
        ],
        "{errors:#?}"
    );
    assert!(errors.iter().all(|e| e.hint.is_some()), "{errors:#?}");
}

#[test]
fn a_secret_typed_as_a_number_is_reported_without_its_value() {
    for (text, key, digits) in [
        (
            "[webhook]\nsecret = 1234567890123456789\n",
            "webhook.secret",
            "1234567890123456789",
        ),
        // Too large for a TOML integer: a syntax error, still named by its key.
        (
            "[webhook]\nsecret = 12345678901234567890\n",
            "webhook.secret",
            "12345678901234567890",
        ),
        (
            "[feeds.EPS037]\ntoken_sha256 = 98765432109876\n",
            "feeds.EPS037.token_sha256",
            "98765432109876",
        ),
    ] {
        let errors = parse(text, &no_env()).unwrap_err();
        assert_eq!(errors.0.len(), 1, "no extra `missing field`: {errors:#?}");
        assert_eq!(errors.0[0].key, key);
        assert_eq!(errors.0[0].line, Some(2));
        assert!(
            errors.0[0].hint.as_deref().unwrap().contains("quotes"),
            "{errors:#?}"
        );
        let shown = format!("{errors} {errors:?}");
        assert!(!shown.contains(digits), "the secret leaked: {shown}");
        assert!(
            !shown.contains(&digits[..8]),
            "part of the secret leaked: {shown}"
        );
    }
}

#[test]
fn relative_paths_in_a_file_are_relative_to_its_directory() {
    let text = "\
[region]
pack = \"../shared/data\"

[routing]
graph = \"bogota.graph\"
profile = \"/etc/regula/profile.toml\"

[store]
database_url = \"sqlite:data/regula.db\"
";
    let base = std::path::Path::new("/srv/regula/conf");
    let config = parse_at(text, &no_env(), base).unwrap();
    assert_eq!(
        config.region.unwrap().pack,
        std::path::Path::new("/srv/regula/conf/../shared/data")
    );
    let routing = config.routing.unwrap();
    assert_eq!(
        routing.graph,
        std::path::Path::new("/srv/regula/conf/bogota.graph")
    );
    assert_eq!(
        routing.profile.unwrap(),
        std::path::Path::new("/etc/regula/profile.toml"),
        "absolute paths stay"
    );
    assert_eq!(
        config.store.database_url.location(),
        crate::store::StoreLocation::Sqlite("/srv/regula/conf/data/regula.db".into())
    );
    // Not written in the file: the default stays in the current directory, and the
    // environment's value is taken as given.
    let config = parse_at("", &no_env(), base).unwrap();
    assert_eq!(
        config.store.database_url.location(),
        crate::store::StoreLocation::Sqlite("regula.db".into())
    );
    let mut env = no_env();
    env.insert(ENV_DATABASE_URL.into(), "here.db".into());
    let config = parse_at(text, &env, base).unwrap();
    assert_eq!(
        config.store.database_url.location(),
        crate::store::StoreLocation::Sqlite("here.db".into())
    );
    // `parse` alone keeps them as written.
    let config = parse(text, &no_env()).unwrap();
    assert_eq!(
        config.routing.unwrap().graph,
        std::path::Path::new("bogota.graph")
    );
}

#[test]
fn http_and_stream_limits_are_range_checked() {
    let text = "[server]\nheader_read_timeout_seconds = 0\nstream_ping_interval_seconds = 30\nstream_dead_peer_seconds = 30\nmax_body_bytes = 10\n";
    let errors = parse(text, &no_env()).unwrap_err().0;
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "server.header_read_timeout_seconds",
            "server.stream_dead_peer_seconds",
            "server.max_body_bytes"
        ],
        "{errors:#?}"
    );
    let limits = parse("[server]\nmax_connections = 7\n", &no_env())
        .unwrap()
        .server
        .http_limits();
    assert_eq!(limits.max_connections, 7);
}
