use super::*;
use crate::domain::{AnomalyKind, EpisodeKey, Parameter, SensorId, SummaryAuthor, Wording};
use chrono::TimeZone;

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_747_649_700 + seconds, 0).unwrap()
}

fn spike(seconds: i64) -> Arc<Anomaly> {
    let episode = EpisodeKey {
        sensor_id: "wtf-pipe-1".into(),
        parameter: "pressure".into(),
        kind: AnomalyKind::Spike,
        started: at(seconds),
    };
    Arc::new(Anomaly::new(&episode, at(seconds), Some(4.5), 4.0, None, &Wording::new("Pressure", "bar")))
}

fn summary(seconds: i64) -> Arc<Summary> {
    Arc::new(Summary {
        summary: format!("summary at {seconds}"),
        timestamp: at(seconds),
        generated_by: SummaryAuthor::Fallback,
        model: Some("llama3.2:1b".into()),
        anomaly_count: 1,
        window_start: at(seconds - 60),
        window_end: at(seconds),
    })
}

fn limits(now: DateTime<Utc>) -> Limits {
    let audit = AuditLimits { now, retention: Duration::from_secs(400 * 86_400), max_entries: 100_000 };
    Limits { now, retention: Duration::from_secs(24 * 3600), max_anomalies: 1_000_000, max_summaries: 100, audit }
}

/// The pipeline's commands as text, e.g. `["ZADD", "wtf:{plant}:anomalies", "…", …]`.
fn commands(pipe: &redis::Pipeline) -> Vec<Vec<String>> {
    pipe.cmd_iter()
        .map(|cmd| {
            cmd.args_iter()
                .map(|arg| match arg {
                    redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                    _ => "<cursor>".into(),
                })
                .collect()
        })
        .collect()
}

fn named<'a>(commands: &'a [Vec<String>], name: &str) -> Vec<&'a Vec<String>> {
    commands.iter().filter(|cmd| cmd[0] == name).collect()
}

/// CRC16/XMODEM of the hash tag, modulo 16384: the slot Redis Cluster gives a key.
fn cluster_slot(key: &str) -> u16 {
    let hashed = match (key.find('{'), key.find('{').and_then(|open| key[open + 1..].find('}'))) {
        (Some(open), Some(len)) if len > 0 => &key[open + 1..open + 1 + len],
        _ => key,
    };
    let mut crc: u16 = 0;
    for byte in hashed.bytes() {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc % 16384
}

#[test]
fn keys_start_with_the_prefix_and_share_one_cluster_slot() {
    let keys = Keys::new("wtf:");
    assert_eq!(keys.anomalies, "wtf:{plant}:anomalies");
    assert_eq!(keys.summary_latest, "wtf:{plant}:summary:latest");
    assert_eq!(keys.summary_claims, "wtf:{plant}:summary:claim:");
    let slot = cluster_slot(&keys.anomalies);
    for key in keys.all() {
        assert!(key.starts_with("wtf:{plant}:"), "{key}");
        assert_eq!(cluster_slot(key), slot, "{key} is in another slot");
    }
    // Known value from the Redis Cluster specification's reference implementation.
    assert_eq!(cluster_slot("123456789"), 0x31C3);
    assert_ne!(Keys::new("other:").anomalies, keys.anomalies);
}

#[test]
fn scores_are_unix_milliseconds_and_the_cutoff_is_retention_before_now() {
    let timestamp = Utc.timestamp_millis_opt(1_747_649_700_123).unwrap();
    assert_eq!(score(timestamp), 1_747_649_700_123);
    assert_eq!(retention_cutoff(at(86_400), Duration::from_secs(86_400)), score(at(0)));
    assert_eq!(retention_cutoff(at(0), Duration::MAX), i64::MIN);
}

#[test]
fn a_batch_is_one_transaction_of_json_members_scored_by_time() {
    let anomalies = vec![spike(0), spike(1)];
    let batch = Batch { anomalies: anomalies.clone(), ..Batch::default() };
    let pipe = batch_pipeline(&Keys::new("wtf:"), &batch, &limits(at(10)));
    assert!(pipe.is_transaction());
    let commands = commands(&pipe);
    let zadds = named(&commands, "ZADD");
    assert_eq!(zadds.len(), 1);
    let zadd = zadds[0];
    assert_eq!(zadd[1], "wtf:{plant}:anomalies");
    assert_eq!(zadd[2], score(at(0)).to_string());
    assert_eq!(zadd[3], serde_json::to_string(anomalies[0].as_ref()).unwrap());
    assert_eq!(zadd[4], score(at(1)).to_string());
    let member: Anomaly = serde_json::from_str(&zadd[5]).unwrap();
    assert_eq!(member, *anomalies[1]);
}

#[test]
fn every_batch_trims_by_age_and_by_count() {
    let mut limits = limits(at(86_400 + 5));
    limits.max_anomalies = 500;
    let pipe = batch_pipeline(&Keys::new("wtf:"), &Batch::default(), &limits);
    let commands = commands(&pipe);
    let by_score = named(&commands, "ZREMRANGEBYSCORE");
    assert_eq!(by_score[0][2..], ["-inf".to_owned(), format!("({}", score(at(5)))]);
    let by_rank = named(&commands, "ZREMRANGEBYRANK");
    assert_eq!(by_rank[0][2..], ["0", "-501"]);
}

#[test]
fn anomalies_already_past_their_retention_are_not_written() {
    let batch = Batch { anomalies: vec![spike(0), spike(100_000)], ..Batch::default() };
    let commands = commands(&batch_pipeline(&Keys::new("wtf:"), &batch, &limits(at(100_001))));
    let zadd = named(&commands, "ZADD")[0];
    assert_eq!(zadd.len(), 4, "only the recent anomaly: {zadd:?}");
    assert_eq!(zadd[2], score(at(100_000)).to_string());
}

#[test]
fn large_batches_are_split_into_bounded_zadds() {
    let anomalies: Vec<_> = (0..2_500).map(|i| spike(i % 1000)).collect();
    let batch = Batch { anomalies, ..Batch::default() };
    let commands = commands(&batch_pipeline(&Keys::new("wtf:"), &batch, &limits(at(2_000))));
    let sizes: Vec<usize> = named(&commands, "ZADD").iter().map(|zadd| (zadd.len() - 2) / 2).collect();
    assert_eq!(sizes, [1_000, 1_000, 500]);
}

#[test]
fn summaries_write_the_latest_and_a_capped_history() {
    let batch = Batch { summaries: Some(vec![summary(120), summary(60)]), ..Batch::default() };
    let mut limits = limits(at(200));
    limits.max_summaries = 10;
    let commands = commands(&batch_pipeline(&Keys::new("wtf:"), &batch, &limits));
    let set = named(&commands, "SET")[0];
    assert_eq!(set[1], "wtf:{plant}:summary:latest");
    assert_eq!(serde_json::from_str::<Summary>(&set[2]).unwrap(), *summary(120));
    let zadd = named(&commands, "ZADD").into_iter().find(|cmd| cmd[1] == "wtf:{plant}:summaries").unwrap();
    assert_eq!(zadd.len(), 6);
    let capped = named(&commands, "ZREMRANGEBYRANK").into_iter().find(|cmd| cmd[1] == "wtf:{plant}:summaries").unwrap();
    assert_eq!(capped[2..], ["0", "-11"]);
}

#[test]
fn readings_replace_the_last_reading_hash_and_append_to_the_stream() {
    let reading = Reading {
        sensor_id: SensorId::new("wtf-pipe-2"),
        timestamp: at(3),
        values: [("temperature", 21.5), ("pressure", 2.0), ("flow", 55.0)]
            .into_iter()
            .map(|(name, value)| (Parameter::new(name), value))
            .collect(),
    };
    let batch =
        Batch { last_readings: Some(vec![reading.clone()]), new_readings: vec![reading.clone()], ..Batch::default() };
    let commands = commands(&batch_pipeline(&Keys::new("wtf:"), &batch, &limits(at(10))));
    let position = |name: &str, key: &str| commands.iter().position(|cmd| cmd[0] == name && cmd[1] == key).unwrap();
    // Field by field, never deleted: a peer's sensors in the same hash stay.
    assert!(!commands.iter().any(|cmd| cmd[0] == "DEL" && cmd[1] == "wtf:{plant}:readings:last"));
    let hset = &commands[position("HSET", "wtf:{plant}:readings:last")];
    assert_eq!(hset[2], "wtf-pipe-2");
    assert_eq!(serde_json::from_str::<Reading>(&hset[3]).unwrap(), reading);
    let xadd = named(&commands, "XADD")[0];
    assert_eq!(xadd[2..6], ["MAXLEN".to_owned(), "~".into(), READINGS_STREAM_MAXLEN.to_string(), "*".into()]);
    assert_eq!(xadd[6..10], ["sensor_id", "wtf-pipe-2", "timestamp", "2025-05-19T10:15:03.000Z"]);
}

#[test]
fn the_status_hash_is_replaced_whole() {
    let redis = RedisHealth {
        state: crate::health::RedisState::Connected,
        backlog: 0,
        dropped: 0,
        mirrored: 7,
        last_error: None,
        left_behind: None,
    };
    let llm = LlmHealth { state: crate::health::LlmState::Disabled, model: "m".into(), ..LlmHealth::default() };
    let mut actors = BTreeMap::new();
    actors.insert(
        "api".to_owned(),
        ActorHealth {
            component: crate::health::Component::Api,
            alive: true,
            restarts: 2,
            last_failure: None,
            last_failure_at: None,
        },
    );
    let fields = status_fields(&actors, &llm, &redis, at(0), at(5));
    let field = |name: &str| fields.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()).unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&field("actor:api")).unwrap()["restarts"], 2);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&field("redis")).unwrap()["state"], "connected");
    assert_eq!(field("updated_at"), "2025-05-19T10:15:05.000Z");
    assert_eq!(field("layout_version"), LAYOUT_VERSION.to_string());

    let batch = Batch { status: Some(fields), ..Batch::default() };
    let commands = commands(&batch_pipeline(&Keys::new("wtf:"), &batch, &limits(at(5))));
    let del = commands.iter().position(|cmd| cmd[0] == "DEL" && cmd[1] == "wtf:{plant}:status").unwrap();
    let hset = commands.iter().position(|cmd| cmd[0] == "HSET" && cmd[1] == "wtf:{plant}:status").unwrap();
    assert!(del < hset);
}

#[test]
fn the_backlog_drops_its_oldest_when_full_and_counts_them() {
    let mut backlog = Backlog::new(3);
    for item in 1..=5 {
        backlog.push(item);
    }
    assert_eq!(backlog.len(), 3);
    assert_eq!(backlog.dropped(), 2);
    assert_eq!(backlog.take(10), [3, 4, 5]);
    assert!(backlog.is_empty());
}

#[test]
fn a_failed_batch_goes_back_in_front_and_overflow_still_drops_the_oldest() {
    let mut backlog = Backlog::new(4);
    for item in 1..=4 {
        backlog.push(item);
    }
    let batch = backlog.take(2);
    assert_eq!(batch, [1, 2]);
    backlog.push(5);
    backlog.push(6);
    // 1 and 2 failed to write; with 3..=6 queued meanwhile, there is room for none of them.
    assert_eq!(backlog.requeue(batch), 2);
    assert_eq!(backlog.take(10), [3, 4, 5, 6]);
    assert_eq!(backlog.dropped(), 2);

    backlog.push(7);
    let batch = backlog.take(1);
    assert_eq!(backlog.requeue(batch), 0);
    assert_eq!(backlog.take(10), [7]);
}

#[test]
fn a_backlog_holds_at_least_one() {
    let mut backlog = Backlog::new(0);
    backlog.push('a');
    assert_eq!(backlog.len(), 1);
}

#[test]
fn the_mirror_reads_ahead_a_little_while_redis_answers_and_everything_while_it_does_not() {
    assert_eq!(pull_budget(true, 0, 100_000, 5_000), 10_000);
    assert_eq!(pull_budget(true, 7_000, 100_000, 5_000), 3_000);
    assert_eq!(pull_budget(true, 12_000, 100_000, 5_000), 0);
    assert_eq!(pull_budget(true, 0, 10, 5_000), 10);
    assert_eq!(pull_budget(false, 12_000, 100_000, 5_000), 100_000);
}

#[test]
fn shards_own_their_keys_and_share_the_registry() {
    let one = Keys::new("wtf:").for_shard("wtf:", 1, 0);
    assert_eq!(one, Keys::new("wtf:"));
    let keys = Keys::every_shard("wtf:", 3);
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[2].anomalies, "wtf:{plant-2}:anomalies");
    assert_eq!(keys[2].journal, "wtf:{plant-2}:journal");
    assert_eq!(keys[2].peers, "wtf:{plant}:peers");
    assert_eq!(Keys::new("wtf:").for_instance("wtf-a").status, "wtf:{plant}:status:wtf-a");
}

#[test]
fn alarms_audit_and_episodes_are_written_and_deleted_field_by_field() {
    let anomaly = spike(1);
    let mut book = crate::alarms::AlarmBook::default();
    let alarm = Arc::new(book.raise(&anomaly, crate::alarms::Priority::High, "bar").remove(0));
    let entry = Arc::new(crate::audit::AuditEntry {
        at: at(2),
        actor: "night-shift".into(),
        action: crate::audit::AuditAction::Ack,
        target: alarm.id.to_string(),
        detail: String::new(),
    });
    let sensor = (SensorId::new("wtf-pipe-1"), Parameter::new("pressure"));
    let records = Records {
        alarms: vec![(alarm.id.clone(), Some(Arc::clone(&alarm))), (spike(0).id.clone(), None)],
        audit: vec![Arc::clone(&entry)],
        episodes: vec![(sensor.clone(), None)],
    };
    let batch = Batch { records, ..Batch::default() };
    let commands = commands(&batch_pipeline(&Keys::new("wtf:"), &batch, &limits(at(10))));
    let named = |name: &str, key: &str| {
        commands.iter().find(|command| command[0] == name && command[1] == key).cloned().unwrap_or_default()
    };
    let hset = named("HSET", "wtf:{plant}:alarms");
    assert_eq!(hset[2], alarm.id.as_str());
    assert_eq!(hset[3], serde_json::to_string(alarm.as_ref()).unwrap(), "as /alarms serves it");
    assert_eq!(named("HDEL", "wtf:{plant}:alarms").len(), 3, "an alarm gone is deleted");
    let zadd = named("ZADD", "wtf:{plant}:audit");
    assert_eq!(zadd[2..4], [score(at(2)).to_string(), serde_json::to_string(entry.as_ref()).unwrap()]);
    assert_eq!(named("HDEL", "wtf:{plant}:episodes")[2], "wtf-pipe-1/pressure", "an idle detector is deleted");
    assert_eq!(records::parse_episode_field("a/b/pressure"), Some((SensorId::new("a/b"), Parameter::new("pressure"))));
}
